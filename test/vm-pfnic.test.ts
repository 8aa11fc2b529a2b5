// pfnic on every kernel of the matrix, each group in a fresh guest with rxe0 and pfnic0 on
// the same dummy netdev: unmodified verbs peers (ibv_rc_pingpong, perftest) with and
// without ODP, the project's data-verifying traffic suite on a two-node guest, what rdma
// netlink shows of MRs, bad input of every kind, and the device and module going away
// under live users.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const top = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const matrix = JSON.parse(readFileSync(path.join(top, 'test/vm/kernels.json'), 'utf8')) as { name: string }[];
const only = process.env.PFNIC_KERNELS?.split(',').filter(Boolean);
const setup = 'test/vm/guest rxe >/dev/null && test/vm/guest pfnic netdev=d0';
const traffic = path.join(top, 'build/cmake/tests/pfnic_traffic');

const groups: { name: string; options: string[]; command: string; skip?: string }[] = [
  { name: 'unmodified peers on pfnic0', options: [], command: `${setup} && exec test/guest/peers.sh pfnic0` },
  {
    name: 'data-verifying traffic on pfnic0',
    options: ['--numa'],
    command: `${setup} && exec build/cmake/tests/pfnic_traffic -d pfnic0 -g 1`,
    ...(existsSync(traffic) ? {} : { skip: 'pfnic_traffic is not built' }),
  },
  {
    name: 'MR state and counters through rdma netlink',
    options: ['--numa'],
    command: `${setup} && exec build/cmake/tests/pfnic_mrstate -d pfnic0 -g 1`,
  },
  {
    name: 'bad input gets the spec\'s errors',
    options: [],
    command: `${setup} && exec build/cmake/tests/pfnic_badinput -d pfnic0 -g 1`,
  },
  { name: 'removal under live users', options: [], command: `${setup} && exec test/guest/lifecycle.sh` },
];

for (const { name: kernel } of matrix) {
  if (only && !only.includes(kernel)) continue;
  t.test(`kernel ${kernel}`, async (t) => {
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
  });
}
