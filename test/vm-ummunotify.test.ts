// /dev/ummunotify on every kernel of the matrix, each group in a fresh guest: the interface
// against what a program does to its memory (every unmapping call, page migration on a
// two-node guest, fork, exec, threads, a million ranges, bad input), and the registration
// cache built on it, over rxe's and pfnic's pinned MRs, moving and verifying data while
// memory churns. Then the benchmark, shrunk (--quick): a benchmark passes or fails on
// whether it could measure, never on speed; its figures are printed as comments.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

import { matrixKernels } from './vm/matrix.js';
import { ummunotifySuite } from './vm/ummunotify-suite.js';

const top = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// the release kernels; the debug kernel's run is vm-debug.test.ts, beside this one
for (const kernel of matrixKernels(top, { debug: false })) {
  t.test(`kernel ${kernel}`, (t) => ummunotifySuite(t, top, kernel, true));
}
