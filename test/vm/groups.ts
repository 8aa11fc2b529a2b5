// The in-VM suites' groups: each a command run in a fresh guest of one kernel, whose TAP
// output becomes a subtest, with how long it took.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';

import { timeScale } from './matrix.js';

/** @p needs: programs (paths from the top of the tree) the command runs; one not built fails the group. */
export interface Group { name: string; options: string[]; command: string; needs?: string[] }

/** Runs each group in its own guest of @p kernel (test/vm/run.sh), one after the other. */
export async function runGroups(t: Test, top: string, kernel: string, groups: Group[]): Promise<void> {
  for (const g of groups) {
    const missing = (g.needs ?? []).filter((p) => !existsSync(path.join(top, p)));
    if (missing.length) {
      t.fail(`${g.name}: ${missing.join(', ')} not built`);
      continue;
    }
    const started = Date.now();
    await t.spawn('bash', [path.join(top, 'test/vm/run.sh'), '--timeout', String(300 * timeScale(top, kernel)), ...g.options,
      kernel, '--', 'sh', '-c', g.command], { cwd: top }, g.name);
    t.comment(`kernel ${kernel}: ${g.name} took ${Math.round((Date.now() - started) / 1000)} s`);
  }
}
