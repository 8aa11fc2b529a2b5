// The lab's path from this machine into the guest: the guest side of test/lab.sh runs in a
// VM whose API port is forwarded to 127.0.0.1 here; what curl would see must be what
// ibv_devinfo -v printed inside the guest.
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';

import type { Device } from '../control/src/schema.js';
import { parseDevinfo } from './guest/devinfo.js';

const top = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

t.test('the lab serves rxe0 on 127.0.0.1 as the guest sees it', async (t) => {
  const port = await freePort();
  const vm = spawn('bash', [path.join(top, 'test/vm/run.sh'), '--timeout', '300', '--forward', String(port),
    '6.1', '--', 'test/vm/lab-guest.sh', String(port)], { cwd: top, detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  vm.stdout.setEncoding('utf8');
  vm.stdout.on('data', (chunk: string) => { out += chunk; });
  const exited = new Promise<void>((resolve) => vm.on('close', () => resolve()));
  t.teardown(async () => {
    if (vm.pid) process.kill(-vm.pid, 'SIGTERM');
    await exited;
  });

  let device: Device | undefined;
  for (let i = 0; i < 240 && !device; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v1/devices/rxe0`);
      if (res.ok) device = (await res.json()) as Device;
    } catch {
      // the guest is still booting
    }
    if (!device) await sleep(500);
  }
  if (!device) {
    t.fail('the API answered on the forwarded port within 120 s', { guest: out.slice(-2000) });
    return;
  }
  t.match(out, /modules pfnic rdma_rxe/, 'the guest loaded pfnic.ko and rxe');
  const [seen] = parseDevinfo(out.slice(out.indexOf('hca_id:')));
  t.ok(seen, 'the guest printed ibv_devinfo -v');
  if (!seen) return;
  t.equal(device.node_guid, seen.fields.get('node_guid')?.value, 'node_guid as ibv_devinfo shows it');
  t.equal(device.limits.max_qp, Number(seen.fields.get('max_qp')?.value), 'max_qp as ibv_devinfo shows it');
  t.same(device.ports[0]?.gids.map(({ index, gid, type }) => ({ index, gid, type })), seen.ports[0]?.gids,
    'the GID table as ibv_devinfo shows it');
});
