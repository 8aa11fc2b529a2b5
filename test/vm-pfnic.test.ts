// pfnic on every kernel of the matrix, each group in a fresh guest with rxe0 and pfnic0 on
// the same dummy netdev: unmodified verbs peers (ibv_rc_pingpong, perftest) with and
// without ODP, the project's data-verifying traffic suite on a two-node guest, what rdma
// netlink shows of MRs, bad input of every kind, what the driver keeps safe when its
// objects are acted on at bad moments, and the device and module going away under live
// users.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

import { matrixKernels } from './vm/matrix.js';
import { pfnicSuite } from './vm/pfnic-suite.js';

const top = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

// the release kernels; the debug kernel's run is vm-debug.test.ts, beside this one
for (const kernel of matrixKernels(top, { debug: false })) {
  t.test(`kernel ${kernel}`, (t) => pfnicSuite(t, top, kernel));
}
