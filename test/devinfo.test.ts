// The ibv_devinfo reader the in-VM suite relies on, against real output of rdma-core 44's
// ibv_devinfo -v for rxe on Linux 7.2 (captured in a guest of the rig).
import { readFileSync } from 'node:fs';
import t from 'tap';

import { devinfoNumber, nameAndCode, parseDevinfo } from './guest/devinfo.js';

const text = readFileSync(new URL('./fixtures/ibv_devinfo-v-rxe-linux7.2.txt', import.meta.url), 'utf8');

t.test('parseDevinfo reads every part of ibv_devinfo -v', async (t) => {
  const devices = parseDevinfo(text);
  t.equal(devices.length, 1, 'one device');
  const [dev] = devices;
  if (!dev) return;
  t.equal(dev.name, 'rxe0', 'its name');
  t.equal(dev.fields.get('fw_ver')?.value, '0.0.0', 'a plain field');
  t.equal(devinfoNumber(dev.fields.get('max_mr_size')?.value ?? ''), 0xffffffffffffffffn, 'a 64-bit hex field');
  t.equal(devinfoNumber(dev.fields.get('max_raw_ipv6_qp')?.value ?? ''), 0n, 'a name with digits');
  t.same(nameAndCode(dev.fields.get('atomic_cap')?.value ?? ''), { name: 'ATOMIC_HCA', code: 1 }, 'name (code)');
  t.same(dev.fields.get('device_cap_flags')?.items.slice(0, 2), ['BAD_PKEY_CNTR', 'BAD_QKEY_CNTR'], 'flag names');
  t.same(dev.fields.get('rc_odp_caps')?.items.slice(-2), ['SUPPORT_SRQ', 'Unknown flags: 0xC0'], 'unknown flags');
  t.same(dev.fields.get('uc_odp_caps')?.items, ['NO SUPPORT'], 'no support');
  t.ok(dev.fields.has('core clock not supported'), 'sentences are kept as fields');
  t.equal(devinfoNumber(dev.fields.get('max_tso')?.value ?? ''), 0n, 'sub-block fields');
  t.equal(dev.ports.length, 1, 'one port');
  const [port] = dev.ports;
  t.equal(port?.fields.get('link_layer')?.value, 'Ethernet', 'a port field');
  t.equal(port?.fields.size, 21, 'every port field');
  t.same(port?.gids, [
    { index: 0, gid: 'fe80::45c:60ff:feab:6420', type: 'RoCE v2' },
    { index: 1, gid: '::ffff:192.0.2.1', type: 'RoCE v2' },
  ], 'the GID table');
});
