// Boots the release kernels of the matrix (test/vm/kernels.json; in the default tier the
// oldest and the newest), creates rxe0 inside, and runs
// test/guest/foundation.ts there: pfnic.ko loads and unloads, and the API started in the
// guest reports rxe0 and pfnic0 exactly as ibv_devinfo -v and `rdma` do; then, in one
// two-node guest with a DIMM, test/guest/mrs.ts: the API's MRs against `rdma resource show mr
// -dd` and `rdma statistic mr`; test/guest/memory.ts: memory blocks against sysfs, taken
// offline and online through the API; and test/guest/events.ts: the kernel's events on the
// API's stream and history. The guests print TAP, which becomes subtests per kernel here.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

import { setupCommand, shellQuote } from './vm/groups.js';
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
    // the other three share a two-node guest with a DIMM, each a subtest of its own: booting
    // and starting Node.js in a guest cost more than each takes alone
    const bundleStarted = Date.now();
    const bundle = [
      ['the API\'s MRs of rxe0 and pfnic0 against rdma resource and rdma statistic', 'exec node dist/test/guest/mrs.js'],
      ['memory blocks through the API: offline and online with the token, audited; a pinned MR refused',
        'exec node dist/test/guest/memory.js'],
      ['the kernel\'s events on the API\'s SSE stream and history, replayed with Last-Event-ID', 'exec node dist/test/guest/events.js'],
    ].flatMap(([title, command]) => [shellQuote(title!), shellQuote(command!)]);
    await t.spawn('bash', [
      path.join(top, 'test/vm/run.sh'), '--timeout', '600', '--numa', '--dimm', '384M', name, '--',
      'sh', '-c', `${devices} && exec test/guest/subtests.sh ${bundle.join(' ')}`,
    ], { cwd: top }, 'the API\'s MRs, memory blocks and events (one guest)');
    t.comment(`kernel ${name}: MR, memory-block and event suites took ${Math.round((Date.now() - bundleStarted) / 1000)} s`);
  });
}
