// Runs inside a guest of the matrix (the vm-*.test.ts files boot it), prints TAP.
// foundation.js [--no-module] DEVICE...: pfnic.ko must load and unload on this kernel
// (unless --no-module), and for each DEVICE, already created, the control plane's API
// started here must report what rdma-core's ibv_devinfo -v and iproute2's rdma report,
// field by field; then what a process watches through /dev/ummunotify, as its fdinfo says.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import path from 'node:path';
import t, { type Test } from 'tap';

import type { Device, Flags, Port } from '../../control/src/schema.js';
import { startApi } from './api-server.js';
import { devinfoNumber, nameAndCode, parseDevinfo, type DevinfoField } from './devinfo.js';

const run = promisify(execFile);
const top = process.env.PFNIC_TOP ?? process.cwd();
// TCG guests are slow, the more so on a busy host; the rig's own time limit bounds the run
t.setTimeout(10 * 60_000);
const kernel = process.env.PFNIC_KERNEL ?? 'unknown';
const args = process.argv.slice(2);
const withModule = !args.includes('--no-module');
const devices = args.filter((a) => !a.startsWith('--'));
if (devices.length === 0) devices.push('rxe0');
const apiPort = 18080;

async function sh(cmd: string, args: string[]): Promise<string> {
  const { stdout } = await run(cmd, args, { maxBuffer: 16 << 20 });
  return stdout;
}

if (withModule) t.test('pfnic.ko loads and unloads', async (t) => {
  const ko = path.join(top, 'build/driver', kernel, 'pfnic.ko');
  t.ok(existsSync(ko), `built for ${kernel}: ${ko}`);
  await sh('insmod', [ko]);
  t.ok(existsSync('/sys/module/pfnic'), 'the module is listed in /sys/module');
  const version = (await sh('cat', ['/sys/module/pfnic/version'])).trim();
  t.match(version, /^\d+\.\d+\.\d+$/, `it reports its version (${version})`);
  await sh('rmmod', ['pfnic']);
  t.notOk(existsSync('/sys/module/pfnic'), 'rmmod removes it');
  if (devices.some((d) => d.startsWith('pfnic'))) {
    // and again with a device on the rig's dummy netdev, for the comparisons below
    await sh('insmod', [ko, 'netdev=d0']);
    t.ok(existsSync('/sys/class/infiniband/pfnic0'), 'netdev=d0 creates pfnic0');
  }
});

// One API server for all devices, stopped when the whole run ends.
const root = t;
let apiBase: Promise<string> | undefined;

for (const IBDEV of devices) t.test(`the API reports ${IBDEV} as ibv_devinfo and rdma do (kernel ${kernel})`, async (t) => {
  apiBase ??= startApi(root, top, apiPort);
  const base = await apiBase;
  const listRes = await fetch(`${base}/v1/devices`);
  t.equal(listRes.status, 200, 'GET /v1/devices answers 200');
  const list = (await listRes.json()) as Device[];
  const dev = list.find((d) => d.name === IBDEV);
  if (!dev) {
    t.fail(`${IBDEV} is in /v1/devices`, { found: list.map((d) => d.name) });
    return;
  }
  const oneRes = await fetch(`${base}/v1/devices/${IBDEV}`);
  t.equal(oneRes.status, 200, `GET /v1/devices/${IBDEV} answers 200`);
  const one = (await oneRes.json()) as Device;
  // Port counters may tick between the two queries; everything else must agree.
  t.same({ ...one, ports: one.ports.length }, { ...dev, ports: dev.ports.length },
    'the single-device route agrees with the list');
  const missing = await fetch(`${base}/v1/devices/nosuchdev0`);
  t.equal(missing.status, 404, 'an unknown device is 404');
  t.match(await missing.json(), { statusCode: 404, message: /nosuchdev0/ }, 'the 404 names the device');
  const bad = await fetch(`${base}/v1/devices/${encodeURIComponent('bad/name')}`);
  t.equal(bad.status, 400, 'a malformed name is 400');

  const [parsed] = parseDevinfo(await sh('ibv_devinfo', ['-v', '-d', IBDEV]));
  if (!parsed) {
    t.fail('ibv_devinfo -v printed a device');
    return;
  }
  compareDevice(t, dev, parsed.fields);
  // rxe gained ODP in Linux 6.15: from there on its capabilities must show, not just match.
  // pfnic has them on every kernel.
  const [major = 0, minor = 0] = (await sh('uname', ['-r'])).split('.').map(Number);
  if (IBDEV.startsWith('pfnic') || major > 6 || (major === 6 && minor >= 15)) {
    t.ok(dev.odp.general_caps.names.includes('ODP_SUPPORT'), `${IBDEV} on this kernel reports ODP_SUPPORT`);
    t.ok(dev.odp.rc_odp_caps.names.includes('SUPPORT_WRITE'), 'and RC ODP for RDMA WRITE');
  } else {
    t.same(dev.odp.general_caps.names, [], `${IBDEV} on this kernel reports no ODP`);
  }
  t.equal(dev.ports.length, parsed.ports.length, 'same number of ports');
  for (const p of parsed.ports) {
    const mine = dev.ports.find((x) => x.port === p.port);
    if (!mine) {
      t.fail(`port ${p.port} is reported`);
      continue;
    }
    comparePort(t, mine, p.fields);
    t.same(mine.gids.map((g) => ({ index: g.index, gid: g.gid, type: g.type })), p.gids,
      `port ${p.port}: the GID table matches ibv_devinfo (${p.gids.length} GIDs)`);
  }

  const rdmaDev = (JSON.parse(await sh('rdma', ['-j', 'dev', 'show', IBDEV])) as Record<string, unknown>[])[0];
  t.ok(rdmaDev, 'rdma -j dev shows the device');
  if (rdmaDev) {
    t.equal(dev.index, rdmaDev.ifindex, 'rdma dev: index');
    t.equal(dev.name, rdmaDev.ifname, 'rdma dev: name');
    t.equal(dev.node_type, rdmaDev.node_type, 'rdma dev: node_type');
    t.equal(dev.node_guid, rdmaDev.node_guid, 'rdma dev: node_guid');
    t.equal(dev.sys_image_guid, rdmaDev.sys_image_guid, 'rdma dev: sys_image_guid');
    if (rdmaDev.fw !== undefined) t.equal(dev.fw_ver, rdmaDev.fw, 'rdma dev: fw');
  }
  const links = JSON.parse(await sh('rdma', ['-j', 'link', 'show'])) as Record<string, unknown>[];
  const mine = links.filter((l) => l.ifname === IBDEV);
  t.equal(mine.length, dev.ports.length, 'rdma link lists every port');
  for (const l of mine) {
    const p = dev.ports.find((x) => x.port === l.port);
    t.ok(p, `rdma link: port ${String(l.port)} is reported`);
    if (!p) continue;
    t.equal(p.state, l.state, `rdma link: port ${p.port} state`);
    t.equal(p.phys_state, l.physical_state, `rdma link: port ${p.port} physical_state`);
    t.equal(p.netdev, l.netdev ?? null, `rdma link: port ${p.port} netdev`);
    t.equal(p.netdev_index, l.netdev_index ?? null, `rdma link: port ${p.port} netdev_index`);
  }
});

/** ibv_devinfo's flag list ("NAME" lines, "Unknown flags: 0x..", "NO SUPPORT") as a mask. */
function devinfoMask(field: DevinfoField | undefined, bitOf: (name: string) => number | undefined): bigint {
  let mask = 0n;
  for (const item of field?.items ?? []) {
    const unknown = /^Unknown flags:\s*(0x[0-9a-f]+)/i.exec(item);
    if (unknown?.[1]) mask |= BigInt(unknown[1].toLowerCase());
    else if (item !== 'NO SUPPORT') {
      const bit = bitOf(item);
      if (bit === undefined) throw new Error(`ibv_devinfo printed a flag this test does not know: ${item}`);
      mask |= 1n << BigInt(bit);
    }
  }
  return mask;
}

// ibv_devinfo's spelling of the ODP bits (it says SUPPORT_SRQ for SRQ_RECV).
const DEVINFO_ODP_TRANSPORT = ['SUPPORT_SEND', 'SUPPORT_RECV', 'SUPPORT_WRITE', 'SUPPORT_READ',
  'SUPPORT_ATOMIC', 'SUPPORT_SRQ'];
const DEVINFO_ODP_GENERAL = ['ODP_SUPPORT', 'ODP_SUPPORT_IMPLICIT'];

/** Limits the model carries that ibv_devinfo does not print. */
const NOT_PRINTED = new Set(['max_map_per_fmr']);

/** Fields ibv_devinfo prints that the model does not carry (yet), each with the reason. */
const NOT_MODELLED = new Set([
  'max_tso', 'max_rwq_indirection_tables', 'max_rwq_indirection_table_size', 'rx_hash_function',
  'rx_hash_fields_mask', 'tso_caps', 'rss_caps', 'packet_pacing_caps', 'qp_rate_limit_min',
  'qp_rate_limit_max', 'tag matching not supported', // offload caps: no RDMA-on-VM meaning yet
]);

function compareDevice(t: Test, dev: Device, f: Map<string, DevinfoField>): void {
  const checked = new Set<string>();
  const field = (key: string): DevinfoField | undefined => {
    checked.add(key);
    return f.get(key);
  };
  const num = (key: string, mine: number | string): void => {
    const v = field(key);
    t.ok(v, `ibv_devinfo prints ${key}`);
    if (v) t.equal(BigInt(mine).toString(), devinfoNumber(v.value).toString(), `device ${key}`);
  };
  const flags = (key: string, mine: Flags, names: readonly string[] | undefined, label = key): void => {
    const v = field(key);
    t.ok(v, `ibv_devinfo prints ${key}`);
    if (!v) return;
    if (names) {
      const mask = devinfoMask(v, (n) => { const i = names.indexOf(n); return i < 0 ? undefined : i; });
      t.equal(BigInt(mine.value).toString(16), mask.toString(16), `${label}: same bits`);
    } else {
      t.equal(BigInt(mine.value).toString(16), devinfoNumber(v.value).toString(16), `${label}: same value`);
    }
  };

  t.equal(dev.transport, nameAndCode(field('transport')?.value ?? '').name, 'device transport');
  t.equal(dev.fw_ver, field('fw_ver')?.value, 'device fw_ver');
  t.equal(dev.node_guid, field('node_guid')?.value, 'device node_guid');
  t.equal(dev.sys_image_guid, field('sys_image_guid')?.value, 'device sys_image_guid');
  num('vendor_id', dev.vendor_id);
  num('vendor_part_id', dev.vendor_part_id);
  num('hw_ver', dev.hw_ver);
  num('phys_port_cnt', dev.phys_port_cnt);
  num('max_mr_size', dev.max_mr_size);
  num('page_size_cap', dev.page_size_cap);
  num('num_comp_vectors', dev.num_comp_vectors);
  for (const [key, value] of Object.entries(dev.limits)) {
    // ibv_devinfo prints the SRQ limits only for devices that have SRQs
    const unprinted = NOT_PRINTED.has(key) || (dev.limits.max_srq === 0 && key.startsWith('max_srq_'));
    if (!unprinted) num(key, value);
  }
  t.equal(dev.atomic_cap, nameAndCode(field('atomic_cap')?.value ?? '').name, 'device atomic_cap');

  flags('device_cap_flags', dev.device_cap_flags, undefined);
  const capNames = field('device_cap_flags')?.items ?? [];
  t.same(dev.device_cap_flags.names, capNames.filter((n) => !n.startsWith('Unknown')),
    'device_cap_flags: the same names, in order');
  flags('device_cap_flags_ex', dev.device_cap_flags_ex, undefined);
  flags('general_odp_caps', dev.odp.general_caps, DEVINFO_ODP_GENERAL);
  flags('rc_odp_caps', dev.odp.rc_odp_caps, DEVINFO_ODP_TRANSPORT);
  flags('uc_odp_caps', dev.odp.uc_odp_caps, DEVINFO_ODP_TRANSPORT);
  flags('ud_odp_caps', dev.odp.ud_odp_caps, DEVINFO_ODP_TRANSPORT);
  flags('xrc_odp_caps', dev.odp.xrc_odp_caps, DEVINFO_ODP_TRANSPORT);

  if (field('completion_timestamp_mask not supported')) {
    t.equal(dev.completion_timestamp_mask, '0x0', 'completion_timestamp_mask: not supported');
  } else {
    num('completion_timestamp_mask', dev.completion_timestamp_mask);
  }
  if (field('core clock not supported')) t.equal(dev.hca_core_clock, '0x0', 'hca_core_clock: not supported');
  else num('hca_core_clock', dev.hca_core_clock);

  const unchecked = [...f.keys()].filter((k) => !checked.has(k) && !NOT_MODELLED.has(k));
  t.same(unchecked, [], 'every device field ibv_devinfo prints was compared');
  t.ok(checked.size >= 45, `compared ${checked.size} device fields`);
}

function comparePort(t: Test, p: Port, f: Map<string, DevinfoField>): void {
  const checked = new Set<string>();
  const field = (key: string): string => {
    checked.add(key);
    const v = f.get(key);
    t.ok(v, `port ${p.port}: ibv_devinfo prints ${key}`);
    return v?.value ?? '';
  };
  const label = (key: string): string => `port ${p.port} ${key}`;
  t.equal(`PORT_${p.state}`, nameAndCode(field('state')).name, label('state'));
  t.equal(p.max_mtu, Number(nameAndCode(field('max_mtu')).name), label('max_mtu'));
  t.equal(p.active_mtu, Number(nameAndCode(field('active_mtu')).name), label('active_mtu'));
  t.equal(BigInt(p.sm_lid), devinfoNumber(field('sm_lid')), label('sm_lid'));
  t.equal(BigInt(p.lid), devinfoNumber(field('port_lid')), label('lid'));
  t.equal(BigInt(p.lmc), devinfoNumber(field('port_lmc')), label('lmc'));
  t.equal(p.link_layer, field('link_layer'), label('link_layer'));
  t.equal(BigInt(p.max_msg_sz), devinfoNumber(field('max_msg_sz')), label('max_msg_sz'));
  t.equal(BigInt(p.port_cap_flags.value), devinfoNumber(field('port_cap_flags')), label('port_cap_flags'));
  t.equal(BigInt(p.port_cap_flags2.value), devinfoNumber(field('port_cap_flags2')), label('port_cap_flags2'));
  t.equal(p.max_vl_num, nameAndCode(field('max_vl_num')).code, label('max_vl_num'));
  t.equal(BigInt(p.bad_pkey_cntr), devinfoNumber(field('bad_pkey_cntr')), label('bad_pkey_cntr'));
  t.equal(BigInt(p.qkey_viol_cntr), devinfoNumber(field('qkey_viol_cntr')), label('qkey_viol_cntr'));
  t.equal(BigInt(p.sm_sl), devinfoNumber(field('sm_sl')), label('sm_sl'));
  t.equal(BigInt(p.pkey_tbl_len), devinfoNumber(field('pkey_tbl_len')), label('pkey_tbl_len'));
  t.equal(BigInt(p.gid_tbl_len), devinfoNumber(field('gid_tbl_len')), label('gid_tbl_len'));
  t.equal(BigInt(p.subnet_timeout), devinfoNumber(field('subnet_timeout')), label('subnet_timeout'));
  t.equal(BigInt(p.init_type_reply), devinfoNumber(field('init_type_reply')), label('init_type_reply'));
  t.equal(p.active_width, nameAndCode(field('active_width')).name, label('active_width'));
  t.equal(p.active_speed, nameAndCode(field('active_speed')).name, label('active_speed'));
  t.equal(p.phys_state, nameAndCode(field('phys_state')).name, label('phys_state'));
  const unchecked = [...f.keys()].filter((k) => !checked.has(k));
  t.same(unchecked, [], `port ${p.port}: every field ibv_devinfo prints was compared`);
}

// What a process watches through /dev/ummunotify, as the API and /metrics show it: the
// program's own account of it, and its fdinfo, read here.
if (withModule) t.test(`the API shows what a process watches through /dev/ummunotify, as its fdinfo says (kernel ${kernel})`, async (t) => {
  if (!/ummunotify$/m.test(await readFile('/proc/misc', 'utf8'))) {
    await sh('insmod', [path.join(top, 'build/driver', kernel, 'ummunotify.ko')]);
  }
  apiBase ??= startApi(root, top, apiPort);
  const base = await apiBase;
  const holder = spawn(path.join(top, 'build/cmake/tests/ummunotify'), ['--hold', '64'], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.teardown(() => { holder.kill(); });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    holder.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    holder.on('exit', (code) => reject(new Error(`the holder exited (${code}) before it was ready: ${out}`)));
  });
  const said = Object.fromEntries([...line.matchAll(/(\w+)=(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
  t.match(line, /^ready /, `the holder watches its ranges: ${line}`);

  type State = { loaded: boolean; files: { pid: number; holders: number[]; command: string | null; ranges: number;
    watched_bytes: number; changed: number; range_changes: number; events_read: number; id: number }[];
  totals: { range_changes: number; files: number } };
  const get = async (): Promise<State> => {
    const res = await fetch(`${base}/v1/ummunotify`, { headers: { 'cache-control': 'no-cache' } });
    t.equal(res.status, 200, 'GET /v1/ummunotify answers 200');
    return (await res.json()) as State;
  };
  // a walk is spaced from the last by its duty cycle: ask until one is new enough
  let state = await get();
  for (let i = 0; i < 30 && !state.files.some((f) => f.pid === holder.pid); i++) {
    await new Promise((r) => setTimeout(r, 1000));
    state = await get();
  }
  t.equal(state.loaded, true, 'the module is loaded');
  const file = state.files.find((f) => f.pid === holder.pid);
  if (!file) {
    t.fail('the holder\'s file is listed', { files: state.files });
    return;
  }
  t.same({ ranges: file.ranges, watched_bytes: file.watched_bytes, changed: file.changed, range_changes: file.range_changes,
    events_read: file.events_read },
  { ranges: said.ranges, watched_bytes: said.watched_bytes, changed: said.changed, range_changes: said.range_changes,
    events_read: said.events_read },
  'its ranges, bytes, changes unread and ever, and records read are what the program did');
  t.same(file.holders, [holder.pid], 'held by the program alone');
  t.equal(file.command, 'ummunotify', 'named by its command');
  const fdinfo = await readFile(`/proc/${holder.pid}/fdinfo/${said.fd}`, 'utf8');
  t.match(fdinfo, new RegExp(`^ummunotify-id:\\s+${file.id}$`, 'm'), 'the file\'s id is its fdinfo\'s');
  t.match(fdinfo, new RegExp(`^ummunotify-ranges:\\s+${file.ranges}$`, 'm'), 'and so are its ranges');

  const metrics = await (await fetch(`${base}/metrics`)).text();
  t.match(metrics, /^pfnic_ummunotify_loaded 1$/m, '/metrics: the module is loaded');
  t.match(metrics, /^pfnic_ummunotify_ranges \d+$/m, '/metrics: the ranges watched');
  const before = state.totals.range_changes;

  holder.stdin.end();
  await new Promise((r) => holder.once('exit', r));
  for (let i = 0; i < 30 && state.files.some((f) => f.pid === holder.pid); i++) {
    await new Promise((r) => setTimeout(r, 1000));
    state = await get();
  }
  t.notOk(state.files.some((f) => f.pid === holder.pid), 'once the program has exited, its file is gone');
  t.ok(state.totals.range_changes >= before, `the total of range changes keeps what it counted (${before}, now ${state.totals.range_changes})`);
});
