// The in-VM suites' groups: each a command run in a fresh guest of one kernel, whose TAP
// output becomes a subtest, with how long it took. On a debug kernel, where a boot costs most
// (its checkers at boot, kmemleak's scan at the end: some 45 s a guest under TCG), groups of
// one bundle share a guest (test/guest/subtests.sh), each still a subtest of its own.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';

import { fullTier, groupSeconds, isDebugKernel, newestKernel, timeScale } from './matrix.js';

/** Set-up steps in the guest (test/vm/guest), done in this order and each done once. */
export type Step = 'rxe' | 'pfnic' | 'ummunotify' | 'zram';

const stepCommands: Record<Step, string> = {
  rxe: 'test/vm/guest rxe >/dev/null',
  pfnic: 'test/vm/guest pfnic netdev=d0',
  ummunotify: 'test/vm/guest ummunotify',
  // swap on zram, for the safety case whose pages must be swapped out and in
  zram: 'test/vm/guest zram-swap',
};
const stepOrder: Step[] = ['rxe', 'pfnic', 'ummunotify', 'zram'];

/**
 * A group: @p setup steps, then @p command (its TAP is the group's subtest), in a guest run
 * with @p options (test/vm/run.sh). @p needs: programs (paths from the top of the tree) the
 * command runs; one not built fails the group. @p debugCommand: the command on a debug kernel,
 * where the checkers make some cases minutes long. @p debugBundle: groups next to each other
 * with the same bundle share a guest on a debug kernel. @p releaseOnly: not run on a debug
 * kernel. @p newestOnly: in the default tier, run on the newest of the release kernels only
 * (what it tests of the kernel, the other groups test on every kernel), and on the debug
 * kernel unless @p releaseOnly; the full tier runs it on each. @p debugFullTier: on a debug
 * kernel, in the full tier only. @p everyKernel: in the default tier, the release kernels
 * but the newest run only the groups that say so (what meets the kernel's memory management
 * and its RDMA core there); the rest of the driver's paths they run under the debug kernel's
 * checkers, built from the oldest's source. The full tier runs every group on them.
 */
export interface Group {
  name: string;
  options: string[];
  setup: Step[];
  command: string;
  needs?: string[];
  debugCommand?: string;
  debugBundle?: string;
  releaseOnly?: boolean;
  newestOnly?: boolean;
  debugFullTier?: boolean;
  everyKernel?: boolean;
}

/** The shell command that does @p steps in the guest. */
export function setupCommand(steps: Step[]): string {
  return stepOrder.filter((s) => steps.includes(s)).map((s) => stepCommands[s]).join(' && ');
}

function guestCommand(setup: Step[], command: string): string {
  return setup.length ? `${setupCommand(setup)} && ${command}` : command;
}

// Consecutive groups of one bundle, in order; a group without one is a run of its own.
function runsOf(groups: Group[], bundled: boolean): Group[][] {
  const runs: Group[][] = [];
  for (const g of groups) {
    const last = runs[runs.length - 1];
    if (bundled && g.debugBundle && last?.[0]?.debugBundle === g.debugBundle) last.push(g);
    else runs.push([g]);
  }
  return runs;
}

/** @p s as one word of sh. */
export const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** Runs the groups in guests of @p kernel (test/vm/run.sh), one guest after the other. */
export async function runGroups(t: Test, top: string, kernel: string, groups: Group[]): Promise<void> {
  const debug = isDebugKernel(top, kernel);
  const timeout = groupSeconds * timeScale(top, kernel);
  const newest = kernel === newestKernel(top);
  const older = !debug && !newest;
  let skipped = 0;
  const chosen = groups.filter((g) => {
    if (debug && g.releaseOnly) return false;
    if (older && !g.everyKernel && !fullTier() && !g.newestOnly) {
      skipped++;
      return false;
    }
    if (debug && g.debugFullTier && !fullTier()) {
      t.comment(`kernel ${kernel}: "${g.name}" runs on the debug kernel in the full tier only (PFNIC_TIER=full)`);
      return false;
    }
    if (g.newestOnly && !debug && !newest && !fullTier()) {
      t.comment(`kernel ${kernel}: "${g.name}" runs on ${newestKernel(top)} only in this tier (PFNIC_TIER=full runs it here)`);
      return false;
    }
    return true;
  });
  if (skipped) {
    t.comment(`kernel ${kernel}: ${skipped} groups run on ${newestKernel(top)} and under the debug kernel's checkers only in this tier (PFNIC_TIER=full runs them here)`);
  }
  for (const run of runsOf(chosen, debug)) {
    const ready = run.filter((g) => {
      const missing = (g.needs ?? []).filter((p) => !existsSync(path.join(top, p)));
      if (missing.length) t.fail(`${g.name}: ${missing.join(', ')} not built`);
      return !missing.length;
    });
    if (!ready.length) continue;
    const command = (g: Group): string => (debug && g.debugCommand) || g.command;
    const options = [...new Set(ready.flatMap((g) => g.options))];
    const started = Date.now();
    if (ready.length === 1) {
      const g = ready[0]!;
      await t.spawn('bash', [path.join(top, 'test/vm/run.sh'), '--timeout', String(timeout), ...options,
        kernel, '--', 'sh', '-c', guestCommand(g.setup, `exec ${command(g)}`)], { cwd: top }, g.name);
      t.comment(`kernel ${kernel}: ${g.name} took ${Math.round((Date.now() - started) / 1000)} s`);
      continue;
    }
    // One guest: each group sets up what it needs (the steps are idempotent: a group before
    // it may have unloaded a module), and prints its own "took" line.
    const name = `${ready.map((g) => g.name).join('; ')} (one guest)`;
    const pairs = ready.flatMap((g) => [shellQuote(g.name), shellQuote(guestCommand(g.setup, command(g)))]);
    await t.spawn('bash', [path.join(top, 'test/vm/run.sh'), '--timeout', String(timeout * ready.length), ...options,
      kernel, '--', 'sh', '-c', `exec test/guest/subtests.sh ${pairs.join(' ')}`], { cwd: top }, name);
    t.comment(`kernel ${kernel}: ${ready.length} groups in one guest took ${Math.round((Date.now() - started) / 1000)} s`);
  }
}
