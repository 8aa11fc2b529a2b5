// The in-VM suites' groups: each a command run in a fresh guest of one kernel, whose TAP
// output becomes a subtest, with how long it took.
import path from 'node:path';
import type { Test } from 'tap';

export interface Group { name: string; options: string[]; command: string; skip?: string }

/** Runs each group in its own guest of @p kernel (test/vm/run.sh), one after the other. */
export async function runGroups(t: Test, top: string, kernel: string, groups: Group[]): Promise<void> {
  for (const g of groups) {
    if (g.skip) {
      t.test(g.name, { skip: g.skip }, async () => {});
      continue;
    }
    const started = Date.now();
    await t.spawn('bash', [path.join(top, 'test/vm/run.sh'), '--timeout', '300', ...g.options,
      kernel, '--', 'sh', '-c', g.command], { cwd: top }, g.name);
    t.comment(`kernel ${kernel}: ${g.name} took ${Math.round((Date.now() - started) / 1000)} s`);
  }
}
