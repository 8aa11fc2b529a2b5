// Boots the release kernels of the matrix (test/vm/kernels.json; in the default tier the
// oldest and the newest), creates rxe0 inside, and runs
// test/guest/foundation.ts there: pfnic.ko loads and unloads, and the API started in the
// guest reports rxe0 and pfnic0 exactly as ibv_devinfo -v and `rdma` do; then, in another
// guest, test/guest/mrs.ts: the API's MRs against `rdma resource show mr -dd` and `rdma
// statistic mr`; and in a two-node guest with a DIMM, test/guest/memory.ts: memory blocks
// against sysfs, taken offline and online through the API, and test/guest/events.ts: the
// kernel's events on the API's stream and history. The guests print TAP, which becomes
// subtests per kernel here.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

import { setupCommand } from './vm/groups.js';
import { edgeKernels, matrixKernels } from './vm/matrix.js';

const top = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const devices = setupCommand(['rxe', 'pfnic']);

// The control plane's suites run on the release kernels (the debug kernel checks the driver):
// in the default tier on the oldest and the newest, in the full tier on each.
const kernels = edgeKernels(top);
for (const name of matrixKernels(top, { debug: false }).filter((k) => !kernels.includes(k))) {
  t.comment(`kernel ${name}: the control plane's suites run on ${kernels.join(' and ')} in this tier (PFNIC_TIER=full runs them here)`);
}
for (const name of kernels) {
  t.test(`kernel ${name}`, async (t) => {
    const started = Date.now();
    await t.spawn('bash', [
      path.join(top, 'test/vm/run.sh'), '--timeout', '300', name, '--',
      'sh', '-c', 'test/vm/guest rxe && exec node dist/test/guest/foundation.js rxe0 pfnic0',
    ], { cwd: top }, 'pfnic.ko load/unload; the API on rxe0 and pfnic0');
    t.comment(`kernel ${name}: guest suite took ${Math.round((Date.now() - started) / 1000)} s`);
    const mrsStarted = Date.now();
    await t.spawn('bash', [
      path.join(top, 'test/vm/run.sh'), '--timeout', '300', name, '--',
      'sh', '-c', `${devices} && exec node dist/test/guest/mrs.js`,
    ], { cwd: top }, 'the API\'s MRs of rxe0 and pfnic0 against rdma resource and rdma statistic');
    t.comment(`kernel ${name}: MR suite took ${Math.round((Date.now() - mrsStarted) / 1000)} s`);
    const memStarted = Date.now();
    await t.spawn('bash', [
      path.join(top, 'test/vm/run.sh'), '--timeout', '300', '--numa', '--dimm', '384M', name, '--',
      'sh', '-c', `${devices} && exec node dist/test/guest/memory.js`,
    ], { cwd: top }, 'memory blocks through the API: offline and online with the token, audited; a pinned MR refused');
    t.comment(`kernel ${name}: memory-block suite took ${Math.round((Date.now() - memStarted) / 1000)} s`);
    const evStarted = Date.now();
    await t.spawn('bash', [
      path.join(top, 'test/vm/run.sh'), '--timeout', '300', '--numa', '--dimm', '384M', name, '--',
      'sh', '-c', `${devices} && exec node dist/test/guest/events.js`,
    ], { cwd: top }, 'the kernel\'s events on the API\'s SSE stream and history, replayed with Last-Event-ID');
    t.comment(`kernel ${name}: event suite took ${Math.round((Date.now() - evStarted) / 1000)} s`);
  });
}
