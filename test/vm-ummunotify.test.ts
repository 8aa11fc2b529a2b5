// /dev/ummunotify on every kernel of the matrix, each group in a fresh guest: the interface
// against what a program does to its memory (every unmapping call, page migration on a
// two-node guest, fork, exec, threads, a million ranges, bad input), and the registration
// cache built on it, over rxe's and pfnic's pinned MRs, moving and verifying data while
// memory churns. Then the benchmark, shrunk (--quick): a benchmark passes or fails on
// whether it could measure, never on speed; its figures are printed as comments.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

import { runGroups, type Group } from './vm/groups.js';
import { matrixKernels } from './vm/matrix.js';

const top = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tests = path.join(top, 'build/cmake/tests');
const built = (name: string): { needs: string[] } => ({ needs: [`build/cmake/tests/${name}`] });
const releaseKernels = new Set(matrixKernels(top, { debug: false }));

const groups: Group[] = [
  {
    name: '/dev/ummunotify against every way of changing memory',
    options: ['--numa'],
    command: 'test/vm/guest ummunotify && exec build/cmake/tests/ummunotify',
    ...built('ummunotify'),
  },
  {
    name: 'the registration cache over rxe0, every byte checked while memory churns',
    options: [],
    command: 'test/vm/guest rxe >/dev/null && test/vm/guest ummunotify && exec build/cmake/tests/regcache_churn -d rxe0 -g 1',
    ...built('regcache_churn'),
  },
  {
    name: 'the registration cache over pfnic0\'s pinned MRs',
    options: [],
    command: 'test/vm/guest rxe >/dev/null && test/vm/guest pfnic netdev=d0 && test/vm/guest ummunotify && '
      + 'exec build/cmake/tests/regcache_churn -d pfnic0 -g 1 -n 2000',
    ...built('regcache_churn'),
  },
];

// ummunotify_bench --quick in a guest (with cgroup v2 mounted, for memory per range as its
// memory cgroup counts it): exit status, output.
function bench(kernel: string): Promise<{ status: number; out: string }> {
  return new Promise((resolve) => {
    execFile('bash', [path.join(top, 'test/vm/run.sh'), '--mem', '3G', '--timeout', '300', kernel, '--',
      'sh', '-c', 'test/vm/guest ummunotify && { mountpoint -q /sys/fs/cgroup || '
        + 'mount -t cgroup2 cgroup2 /sys/fs/cgroup; } && exec build/cmake/tests/ummunotify_bench --quick'],
    { cwd: top, maxBuffer: 16 << 20 }, (error, stdout) => {
      resolve({ status: error ? (typeof error.code === 'number' ? error.code : 1) : 0, out: stdout });
    });
  });
}

for (const kernel of matrixKernels(top, { debug: true })) {
  t.test(`kernel ${kernel}`, async (t) => {
    await runGroups(t, top, kernel, groups);
    // the debug kernel's checkers make its figures meaningless: it runs the tests only
    if (!releaseKernels.has(kernel)) return;
    const name = 'the benchmark measures every figure (ummunotify_bench --quick)';
    if (!existsSync(path.join(tests, 'ummunotify_bench'))) {
      t.fail(`${name}: ummunotify_bench is not built`);
      return;
    }
    const started = Date.now();
    await t.test(name, async (t) => {
      const { status, out } = await bench(kernel);
      const figures = out.split('\n').filter((l) => l.startsWith('# bench: '));
      for (const line of figures) t.comment(line.slice(2));
      t.equal(status, 0, 'it measured everything it set out to');
      t.ok(figures.length >= 20, `it printed its figures (${figures.length} lines)`);
      t.notMatch(out, /not measured/, 'no figure is missing');
    });
    t.comment(`kernel ${kernel}: the benchmark took ${Math.round((Date.now() - started) / 1000)} s`);
  });
}
