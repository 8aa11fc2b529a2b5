// The control plane's benchmark (test/guest/api-bench.ts) in a guest of the matrix's newest
// kernel: GET /v1/mrs and /metrics with 10,000 MRs, events delivered on the SSE stream, and
// pfnic traffic while the API is polled, each as a ratio against a trivial route measured in
// the same run. It passes or fails on whether everything could be measured and was complete
// (every MR listed, every event delivered or reported lost), never on speed; its "bench:"
// figures are printed as comments. It runs in the full tier (PFNIC_TIER=full), three rounds,
// and in test/bench/run.sh; the default tier (CI) leaves it out for time: the API's own suites
// (test/vm-foundation.test.ts) check what it lists against the kernel.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

import { fullTier, newestKernel } from './vm/matrix.js';

const top = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const only = process.env.PFNIC_KERNELS?.split(',').filter(Boolean);
const kernel = newestKernel(top);
const rounds = 3;

if (!fullTier()) {
  t.pass('the control plane\'s benchmark runs in the full tier (PFNIC_TIER=full) and in test/bench/run.sh');
} else if (only && !only.includes(kernel)) {
  t.pass(`the benchmark runs on kernel ${kernel} only, which PFNIC_KERNELS leaves out`);
} else {
  t.test(`kernel ${kernel}`, async (t) => {
    const started = Date.now();
    await t.spawn('bash', [
      path.join(top, 'test/vm/run.sh'), '--timeout', '600', kernel, '--', 'sh', '-c',
      'test/vm/guest rxe >/dev/null && test/vm/guest pfnic netdev=d0 >/dev/null && '
        + `PFNIC_BENCH_ROUNDS=${rounds} exec node dist/test/guest/api-bench.js`,
    ], { cwd: top }, 'the control plane\'s benchmark');
    t.comment(`kernel ${kernel}: the control plane's benchmark took ${Math.round((Date.now() - started) / 1000)} s`);
  });
}
