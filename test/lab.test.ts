// The lab's path from this machine into the guest: the guest side of test/lab.sh runs in a
// VM whose API port is forwarded to 127.0.0.1 here; what curl would see must be what
// ibv_devinfo -v printed inside the guest.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

import type { Device } from '../control/src/schema.js';
import { parseDevinfo } from './guest/devinfo.js';
import { startForwardedGuest } from './vm/forwarded.js';

const top = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

t.test('the lab serves rxe0 on 127.0.0.1 as the guest sees it', async (t) => {
  const guest = await startForwardedGuest(t, top, ['--timeout', '300'], '6.1', ['test/vm/lab-guest.sh', '{port}'],
    '/v1/devices/rxe0');
  if (!guest) return;
  const device = (await (await fetch(`http://127.0.0.1:${guest.port}/v1/devices/rxe0`)).json()) as Device;
  const out = guest.output();
  t.match(out, /modules pfnic rdma_rxe/, 'the guest loaded pfnic.ko and rxe');
  const [seen] = parseDevinfo(out.slice(out.indexOf('hca_id:')));
  t.ok(seen, 'the guest printed ibv_devinfo -v');
  if (!seen) return;
  t.equal(device.node_guid, seen.fields.get('node_guid')?.value, 'node_guid as ibv_devinfo shows it');
  t.equal(device.limits.max_qp, Number(seen.fields.get('max_qp')?.value), 'max_qp as ibv_devinfo shows it');
  t.same(device.ports[0]?.gids.map(({ index, gid, type }) => ({ index, gid, type })), seen.ports[0]?.gids,
    'the GID table as ibv_devinfo shows it');
});
