// The /dev/ummunotify suite of one kernel, each group in a fresh guest: the interface against
// what a program does to its memory (every unmapping call, page migration on a two-node
// guest, fork, exec, threads, a million ranges, bad input), and the registration cache built
// on it, over rxe's and pfnic's pinned MRs, moving and verifying data while memory churns;
// then, on a release kernel, the benchmark, shrunk (--quick). Run by vm-ummunotify.test.ts
// and, without the benchmark, by vm-debug.test.ts.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';

import { runGroups, type Group } from './groups.js';

const built = (name: string): { needs: string[] } => ({ needs: [`build/cmake/tests/${name}`] });

const groups: Group[] = [
  {
    name: '/dev/ummunotify against every way of changing memory',
    options: ['--numa'],
    setup: ['ummunotify'],
    command: 'build/cmake/tests/ummunotify',
    // a tenth of the million watched ranges under the checkers: ten minutes otherwise, for
    // counting that is the same on every kernel
    debugCommand: 'build/cmake/tests/ummunotify -n 100000',
    ...built('ummunotify'),
    debugBundle: 'ummunotify',
  },
  {
    name: 'the registration cache over rxe0, every byte checked while memory churns',
    options: [],
    setup: ['rxe', 'ummunotify'],
    command: 'build/cmake/tests/regcache_churn -d rxe0 -g 1',
    ...built('regcache_churn'),
    // under the checkers this would test rxe: the cache's own paths run over pfnic0 there
    releaseOnly: true,
  },
  {
    name: 'the registration cache over pfnic0\'s pinned MRs',
    options: [],
    setup: ['rxe', 'pfnic', 'ummunotify'],
    command: 'build/cmake/tests/regcache_churn -d pfnic0 -g 1 -n 2000',
    ...built('regcache_churn'),
    debugBundle: 'ummunotify',
  },
];

// ummunotify_bench --quick in a guest (with cgroup v2 mounted, for memory per range as its
// memory cgroup counts it): exit status, output.
function bench(top: string, kernel: string): Promise<{ status: number; out: string }> {
  return new Promise((resolve) => {
    execFile('bash', [path.join(top, 'test/vm/run.sh'), '--mem', '3G', '--timeout', '300', kernel, '--',
      'sh', '-c', 'test/vm/guest ummunotify && { mountpoint -q /sys/fs/cgroup || '
        + 'mount -t cgroup2 cgroup2 /sys/fs/cgroup; } && exec build/cmake/tests/ummunotify_bench --quick'],
    { cwd: top, maxBuffer: 16 << 20 }, (error, stdout) => {
      resolve({ status: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out: stdout });
    });
  });
}

/** Runs the suite in guests of @p kernel; with @p withBench the benchmark too. */
export async function ummunotifySuite(t: Test, top: string, kernel: string, withBench: boolean): Promise<void> {
  await runGroups(t, top, kernel, groups);
  if (!withBench) return;
  const name = 'the benchmark measures every figure (ummunotify_bench --quick)';
  if (!existsSync(path.join(top, 'build/cmake/tests/ummunotify_bench'))) {
    t.fail(`${name}: ummunotify_bench is not built`);
    return;
  }
  const started = Date.now();
  await t.test(name, async (t) => {
    const { status, out } = await bench(top, kernel);
    const figures = out.split('\n').filter((l) => l.startsWith('# bench: '));
    for (const line of figures) t.comment(line.slice(2));
    t.equal(status, 0, 'it measured everything it set out to');
    t.ok(figures.length >= 20, `it printed its figures (${figures.length} lines)`);
    t.notMatch(out, /not measured/, 'no figure is missing');
  });
  t.comment(`kernel ${kernel}: the benchmark took ${Math.round((Date.now() - started) / 1000)} s`);
}
