// The debug kernel of the matrix (lockdep, KASAN, KFENCE, debug objects, DEBUG_VM, kmemleak:
// see test/vm/debug.config): the pfnic suite and the /dev/ummunotify suite, as on the release
// kernels (test/vm/pfnic-suite.ts, test/vm/ummunotify-suite.ts), where the rig fails a guest
// on anything a checker reports. A file of its own, so that it runs beside the release
// kernels' suites.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

import { debugKernels } from './vm/matrix.js';
import { pfnicSuite } from './vm/pfnic-suite.js';
import { ummunotifySuite } from './vm/ummunotify-suite.js';

const top = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const kernels = debugKernels(top);

if (!kernels.length) t.pass('PFNIC_KERNELS leaves the debug kernel out');
for (const kernel of kernels) {
  t.test(`kernel ${kernel}`, async (t) => {
    await t.test('pfnic', (t) => pfnicSuite(t, top, kernel));
    await t.test('/dev/ummunotify', (t) => ummunotifySuite(t, top, kernel, false));
  });
}
