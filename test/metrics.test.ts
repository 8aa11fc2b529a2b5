// /metrics: the text exposition format, well formed line by line (HELP and TYPE once before
// each family's samples, names, labels, values) in prom-client's content type; what this
// host has (memory blocks, no RDMA, the process's own metrics); and on made-up inputs (this
// host has no RDMA): each family's type (levels are gauges, counts are counters), the ports'
// sysfs counters under node_exporter's names with data in bytes, port state as a value, a
// failing source leaving the rest of the scrape standing, and per-MR series bounded however
// many MRs there are.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify from 'fastify';
import { Registry } from 'prom-client';
import t, { type Test } from 'tap';

import { buildApp } from '../api/src/app.js';
import { metricsRoutes } from '../api/src/routes/metrics.js';
import {
  EventHub, HostModel, RdmaMetrics, UmmunotifyView, sysfsPortCounters, type Device, type MemoryBlock, type MetricsOptions, type MetricsSources, type Mr,
  type PortCounters, type Port,
} from '../control/src/index.js';

interface Exposition {
  /** Samples by "name{labels}" as written. */
  samples: Map<string, number>;
  /** Each family's declared type. */
  types: Map<string, string>;
}

/** Checks the exposition format (every line, HELP and TYPE once per family, before its samples). */
function parse(t: Test, text: string): Exposition {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  const helped = new Set<string>();
  const bad: string[] = [];
  const familyOf = (name: string): string | undefined => {
    if (types.has(name)) return name;
    // histograms and summaries write name_bucket, name_sum, name_count
    const base = /^(.*)_(bucket|sum|count)$/.exec(name)?.[1];
    return base !== undefined && ['histogram', 'summary'].includes(types.get(base) ?? '') ? base : undefined;
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (m) {
      const [, what, name, rest] = m as unknown as [string, string, string, string];
      if (what === 'HELP') {
        if (helped.has(name)) bad.push(`${line} (a second HELP)`);
        helped.add(name);
      } else {
        if (!['gauge', 'counter', 'histogram', 'summary'].includes(rest) || types.has(name) || !helped.has(name)) bad.push(line);
        types.set(name, rest);
      }
      continue;
    }
    // prom-client writes NaN as "Nan" (a process metric before its first sample); Prometheus
    // reads floats' special values in any case
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\n"])*",?)*\})? (-?\d+(?:\.\d+)?(?:e[+-]?\d+)?|NaN|Nan|[+-]Inf)$/.exec(line);
    const family = m ? familyOf(m[1]!) : undefined;
    if (!m || family === undefined) { bad.push(line); continue; }
    if (types.get(family) === 'counter' && !m[1]!.endsWith('_total')) bad.push(`${line} (a counter not named _total)`);
    if (samples.has(`${m[1]}${m[2] ?? ''}`)) bad.push(`${line} (twice)`);
    samples.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]));
  }
  t.same(bad, [], 'every line is well formed, every sample declared once');
  return { samples, types };
}

/** The samples of one family, by their labels ("{a=\"1\"}" or ""). */
const family = (e: Exposition, name: string): Map<string, number> =>
  new Map([...e.samples].filter(([k]) => k === name || k.startsWith(`${name}{`)).map(([k, v]) => [k.slice(name.length), v]));

const port = (n: number, state: string, physState = 'LINK_UP'): Port => ({
  port: n, state, phys_state: physState, link_layer: 'Ethernet', max_mtu: 4096, active_mtu: 1024, active_width: '1X',
  active_speed: '2.5 Gbps', lid: 0, sm_lid: 0, lmc: 0, sm_sl: 0, max_vl_num: 1, max_msg_sz: 1 << 30, bad_pkey_cntr: 0,
  qkey_viol_cntr: 0, pkey_tbl_len: 1, gid_tbl_len: 1, subnet_timeout: 0, init_type_reply: 0,
  port_cap_flags: { value: '0x0', names: [], unknown: '0x0' }, port_cap_flags2: { value: '0x0', names: [], unknown: '0x0' },
  netdev: 'd0', netdev_index: 2, gids: [],
});

const device = (name: string, ports: Port[]): Device => {
  const flags = { value: '0x0', names: [], unknown: '0x0' };
  return {
    name, index: 0, node_type: 'ca', transport: 'InfiniBand', fw_ver: '1.0', node_guid: '0000:0000:0000:0001',
    sys_image_guid: '0000:0000:0000:0001', vendor_id: 0, vendor_part_id: 0, hw_ver: 0, phys_port_cnt: ports.length,
    num_comp_vectors: 1, max_mr_size: '0x1000', page_size_cap: '0x1000', atomic_cap: 'ATOMIC_NONE',
    device_cap_flags: flags, device_cap_flags_ex: flags, completion_timestamp_mask: '0x0', hca_core_clock: '0x0',
    odp: { general_caps: flags, rc_odp_caps: flags, uc_odp_caps: flags, ud_odp_caps: flags, xrc_odp_caps: flags },
    limits: {} as Device['limits'], ports,
  };
};

const mr = (mrn: number, counters: Record<string, number>, more: Partial<Mr> = {}): Mr => ({
  device: 'pfnic0', mrn, kind: 'explicit', length: '0x2000', iova: null, lkey: '0x1', rkey: '0x1', pdn: 0,
  pid: 100, owner: 'app "x"\\y', state: 'active', mapped_pages: 1, suspended_pages: 0, translation_tables: 1,
  last_invalidation: 'none', pinned_blocks: null, counters, details: {}, ...more,
});

const block = (n: number, state: string): MemoryBlock => ({
  block: n, state, online: state === 'online', zone: state === 'online' ? 'Normal' : null, valid_zones: [], node: 0,
  removable: true, start: '0x0', size: '0x8000000',
});

const noCounters = async (): Promise<PortCounters> => ({ counters: new Map(), hwCounters: new Map() });

function metricsOf(sources: Partial<MetricsSources>, more: Partial<MetricsOptions> = {}): RdmaMetrics {
  return new RdmaMetrics({
    sources: { devices: async () => [], mrs: async () => [], blocks: async () => [], portCounters: noCounters, ...sources },
    events: () => new Map(), channelUp: () => true, perMrLimit: 50, processMetrics: false, ...more,
  });
}

t.test('/metrics on this host', async (t) => {
  const app = await buildApp({ events: new EventHub({ path: '/nonexistent/pfnic-events' }) });
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'GET', url: '/metrics' });
  t.equal(res.statusCode, 200, 'GET /metrics answers 200');
  t.equal(res.headers['content-type'], Registry.PROMETHEUS_CONTENT_TYPE, `in prom-client's text format (${Registry.PROMETHEUS_CONTENT_TYPE})`);
  const e = parse(t, res.body);
  const blocks = [...family(e, 'rdma_memory_blocks').values()].reduce((n, v) => n + v, 0);
  const list = (await app.inject({ method: 'GET', url: '/v1/memory/blocks' })).json() as unknown[];
  t.equal(blocks, list.length, `rdma_memory_blocks counts every block (${list.length})`);
  t.equal(e.samples.get('rdma_scrape_error{source="memory_blocks"}'), 0, 'the memory blocks were read');
  t.equal(e.samples.get('pfnic_event_channel_up'), 0, 'no pfnic here: the event channel is down');
  for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds',
    'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
    t.ok(e.types.has(name) && family(e, name).size > 0, `the process's own metrics: ${name}`);
  }
  t.ok((e.samples.get('process_resident_memory_bytes') ?? 0) > 1 << 20, 'with real values (resident memory over 1 MiB)');
});

t.test('each family has the type of what it counts', async (t) => {
  const sysfs = mkdtempSync(path.join(tmpdir(), 'pfnic-metrics-'));
  t.teardown(() => rmSync(sysfs, { recursive: true, force: true }));
  const write = (rel: string, value: string): void => {
    mkdirSync(path.dirname(path.join(sysfs, rel)), { recursive: true });
    writeFileSync(path.join(sysfs, rel), `${value}\n`);
  };
  // a port with InfiniBand's standard counters (a hardware HCA) and one with only its driver's
  write('mlx5_0/ports/1/counters/port_xmit_data', '1000');
  write('mlx5_0/ports/1/counters/port_rcv_data', '250');
  write('mlx5_0/ports/1/counters/port_xmit_packets', '17');
  write('mlx5_0/ports/1/counters/port_rcv_packets', '19');
  write('mlx5_0/ports/1/counters/symbol_error', '3');
  write('mlx5_0/ports/1/counters/VL15_dropped', '2');
  write('mlx5_0/ports/1/counters/port_local_physical_errors', '5');
  write('mlx5_0/ports/1/counters/port_xmit_wait', 'N/A (no PMA)');
  write('mlx5_0/ports/1/hw_counters/out_of_sequence', '7');
  write('mlx5_0/ports/1/hw_counters/lifespan', '10');
  write('mlx5_0/ports/1/hw_counters/active_qps', '4');
  write('pfnic0/ports/1/hw_counters/page_faults', '40');
  write('pfnic0/ports/1/hw_counters/sent_pkts', '9');
  const metrics = metricsOf({
    devices: async () => [device('mlx5_0', [port(1, 'ACTIVE')]), device('pfnic0', [port(1, 'ACTIVE')])],
    mrs: async () => [mr(1, { page_faults: 30, page_invalidations: 20, migrations: 2, suspended_pages: 6 },
      { mapped_pages: 2, suspended_pages: 6 })],
    blocks: async () => [block(0, 'online'), block(1, 'offline')],
    portCounters: sysfsPortCounters(sysfs),
  }, { events: () => new Map([['invalidate unmap', { type: 'invalidate' as const, reason: 'unmap', count: 5 }]]) });
  const e = parse(t, await metrics.metrics());

  const mlx = '{device="mlx5_0",port="1"}';
  t.equal(e.samples.get(`node_infiniband_port_data_transmitted_bytes_total${mlx}`), 4000,
    'port_xmit_data counts 4-byte words: exported in bytes under node_exporter\'s name');
  t.equal(e.samples.get(`node_infiniband_port_data_received_bytes_total${mlx}`), 1000, 'and port_rcv_data');
  t.equal(e.samples.get(`node_infiniband_port_packets_transmitted_total${mlx}`), 17, 'packets as they are');
  t.equal(e.samples.get(`node_infiniband_port_packets_received_total${mlx}`), 19, 'both ways');
  t.equal(e.samples.get(`node_infiniband_symbol_error_total${mlx}`), 3, 'errors under node_exporter\'s names');
  t.equal(e.samples.get(`node_infiniband_vl15_dropped_total${mlx}`), 2, 'VL15_dropped too');
  t.same([...family(e, 'rdma_port_counter_total')], [['{device="mlx5_0",port="1",counter="port_local_physical_errors"}', 5]],
    'a standard counter node_exporter has no name for stays under ours, and only it');
  t.notOk(family(e, 'node_infiniband_port_transmit_wait_total').size, 'a counter that reads "N/A" is left out');
  t.equal(e.samples.get('rdma_port_hw_counter_total{device="mlx5_0",port="1",counter="out_of_sequence"}'), 7, 'hardware counters by name');
  t.equal(e.samples.get('rdma_port_hw_counter_total{device="pfnic0",port="1",counter="page_faults"}'), 40, 'of every device');
  t.notOk([...e.samples.keys()].some((k) => k.includes('lifespan')), 'hw_counters/lifespan, a setting, is no counter');
  t.equal(e.samples.get('rdma_port_hw_gauge{device="mlx5_0",port="1",name="active_qps"}'), 4, 'objects in use are a gauge');

  t.equal(e.samples.get('rdma_mr_pages{device="pfnic0",mrn="1",state="suspended"}'), 6, 'an MR\'s suspended pages, a level');
  t.equal(e.samples.get('rdma_mr_pages{device="pfnic0",mrn="1",state="mapped"}'), 2, 'and its mapped pages');
  t.equal(e.samples.get('rdma_mr_counter_total{device="pfnic0",mrn="1",counter="page_faults"}'), 30, 'its faults, a count');
  t.equal(e.samples.get('rdma_mr_counter_total{device="pfnic0",mrn="1",counter="migrations"}'), 2, 'its migrations');
  t.equal(e.samples.get('rdma_mr_length_bytes{device="pfnic0",mrn="1"}'), 0x2000, 'its length, a value');

  const expected: Record<string, string> = {
    rdma_scrape_error: 'gauge', rdma_device_info: 'gauge', rdma_port_info: 'gauge', rdma_port_state_id: 'gauge',
    rdma_port_physical_state_id: 'gauge', rdma_port_active_mtu_bytes: 'gauge', rdma_port_counter_total: 'counter',
    rdma_port_hw_counter_total: 'counter', rdma_port_hw_gauge: 'gauge', rdma_mrs: 'gauge', rdma_mr_bytes: 'gauge',
    rdma_mr_mapped_pages: 'gauge', rdma_mr_suspended_pages: 'gauge', rdma_mr_counter_sum: 'gauge', rdma_mr_info: 'gauge',
    rdma_mr_length_bytes: 'gauge', rdma_mr_counter_total: 'counter', rdma_mr_pages: 'gauge', rdma_mr_series_left_out: 'gauge',
    rdma_memory_blocks: 'gauge', pfnic_events_total: 'counter', pfnic_event_channel_up: 'gauge',
    pfnic_ummunotify_loaded: 'gauge', pfnic_ummunotify_files: 'gauge', pfnic_ummunotify_processes: 'gauge',
    pfnic_ummunotify_ranges: 'gauge', pfnic_ummunotify_watched_bytes: 'gauge', pfnic_ummunotify_changed_ranges: 'gauge',
    pfnic_ummunotify_range_changes_total: 'counter', pfnic_ummunotify_events_read_total: 'counter',
  };
  t.same(Object.fromEntries([...e.types].filter(([n]) => !n.startsWith('node_infiniband_'))), expected, 'every family of ours, and its type');
  t.ok([...e.types].filter(([n]) => n.startsWith('node_infiniband_')).every(([n, type]) => type === 'counter' && n.endsWith('_total')),
    'node_infiniband_* families are counters');
  const levels = /(?:counter|name)="(suspended_pages|mapped_pages|active_qps|lifespan)"/;
  const countedLevels = [...e.samples.keys()].filter((k) => e.types.get(k.replace(/\{.*$/, '')) === 'counter' && levels.test(k));
  t.same(countedLevels, [], 'no level is exported as a counter');
  t.same([...family(e, 'rdma_mr_counter_sum')].map(([k]) => k).sort(),
    ['{device="pfnic0",counter="migrations"}', '{device="pfnic0",counter="page_faults"}', '{device="pfnic0",counter="page_invalidations"}'],
    'the per-device sums add up counts only');
  t.equal(e.samples.get('pfnic_events_total{type="invalidate",reason="unmap"}'), 5, 'events by type and reason');
});

t.test('a port\'s state is a value, not a label: its info series stays the same', async (t) => {
  let state = 'ACTIVE';
  let physState = 'LINK_UP';
  const metrics = metricsOf({ devices: async () => [device('rxe0', [port(1, state, physState)])] });
  const before = parse(t, await metrics.metrics());
  state = 'DOWN';
  physState = 'POLLING';
  const after = parse(t, await metrics.metrics());
  t.same([...family(after, 'rdma_port_info').keys()], [...family(before, 'rdma_port_info').keys()],
    'rdma_port_info has one series, the same before and after the port went down');
  t.same([...family(after, 'rdma_port_info').keys()], ['{device="rxe0",port="1",link_layer="Ethernet",netdev="d0"}'], 'with no state label');
  t.equal(before.samples.get('rdma_port_state_id{device="rxe0",port="1"}'), 4, 'rdma_port_state_id: 4 while active');
  t.equal(after.samples.get('rdma_port_state_id{device="rxe0",port="1"}'), 1, 'then 1, down');
  t.equal(before.samples.get('rdma_port_physical_state_id{device="rxe0",port="1"}'), 5, 'the physical state: 5, link up');
  t.equal(after.samples.get('rdma_port_physical_state_id{device="rxe0",port="1"}'), 2, 'then 2, polling');
  const changing = [...after.samples.keys()].filter((k) => /_info\{/.test(k) && /\b(state|phys_state)="/.test(k));
  t.same(changing, [], 'no info metric has a state label');
});

t.test('a source that fails leaves the rest of the scrape standing', async (t) => {
  let mrsFail = false;
  const failures: string[] = [];
  const metrics = metricsOf({
    devices: async () => [device('good0', [port(1, 'ACTIVE')]), device('bad0', [port(1, 'ACTIVE')])],
    mrs: async () => { if (mrsFail) throw new Error('netlink said no'); return [mr(1, { page_faults: 1 })]; },
    blocks: async () => [block(0, 'online')],
    portCounters: async (dev) => {
      if (dev === 'bad0') throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
      return { counters: new Map(), hwCounters: new Map([['sent_pkts', 3]]) };
    },
  }, { onSourceError: ({ source, device: dev, error }) => failures.push(`${source} ${dev ?? ''} ${(error as Error).message}`) });

  const first = parse(t, await metrics.metrics());
  t.equal(first.samples.get('rdma_scrape_error{source="port_counters",device="bad0"}'), 1, 'one device\'s port counters failed: flagged for that device');
  t.equal(first.samples.get('rdma_scrape_error{source="port_counters",device="good0"}'), 0, 'the other\'s were read');
  t.equal(first.samples.get('rdma_port_hw_counter_total{device="good0",port="1",counter="sent_pkts"}'), 3, 'and exported');
  t.equal(first.samples.get('rdma_port_state_id{device="bad0",port="1"}'), 4, 'the failing device itself is still there');
  t.equal(first.samples.get('rdma_mrs{device="pfnic0",kind="explicit"}'), 1, 'MRs are read');
  t.same(failures, ['port_counters bad0 EIO: i/o error'], 'the failure is told to the caller (to log it)');

  mrsFail = true;
  const second = parse(t, await metrics.metrics());
  t.equal(second.samples.get('rdma_scrape_error{source="mrs"}'), 1, 'then the MRs cannot be read: rdma_scrape_error{source="mrs"} 1');
  t.notOk(family(second, 'rdma_mrs').size, 'their series are gone, not left at the last values');
  t.notOk(family(second, 'rdma_mr_series_left_out').size, 'none left out is not claimed either');
  t.equal(second.samples.get('rdma_scrape_error{source="devices"}'), 0, 'the devices were read');
  t.equal(second.samples.get('rdma_device_info{device="good0",node_guid="0000:0000:0000:0001",fw_ver="1.0",transport="InfiniBand",node_type="ca"}'), 1,
    'and exported');
  t.equal(second.samples.get('rdma_memory_blocks{state="online",zone="Normal",node="0"}'), 1, 'and the memory blocks');

  const app = Fastify();
  t.teardown(() => app.close());
  // a host with nothing on it, for the model's own families
  const model = new HostModel({ devices: async () => [], mrs: async () => [], mr: async () => null });
  t.teardown(() => model.stop());
  await app.register(metricsRoutes, {
    hub: new EventHub({ path: '/nonexistent/pfnic-events' }), model, perMrLimit: 5,
    ummunotify: new UmmunotifyView({ scan: async () => ({ loaded: false, files: [], unreadable: 0 }) }),
    sources: { devices: async () => { throw new Error('no verbs'); }, mrs: async () => [], blocks: async () => [block(0, 'online')] },
  });
  const res = await app.inject({ method: 'GET', url: '/metrics' });
  t.equal(res.statusCode, 200, 'GET /metrics answers 200 though the devices cannot be read');
  const routed = parse(t, res.body);
  t.equal(routed.samples.get('rdma_scrape_error{source="devices"}'), 1, 'it says which source failed');
  t.equal(routed.samples.get('rdma_memory_blocks{state="online",zone="Normal",node="0"}'), 1, 'and serves the rest');
});

t.test('scrapes at once do not mix their values', async (t) => {
  let call = 0;
  const metrics = metricsOf({
    devices: async () => {
      const n = call++;
      await sleep(n === 0 ? 50 : 0); // the first answers last
      return [device(`dev${n}`, [port(1, 'ACTIVE')])];
    },
  });
  const [a, b] = await Promise.all([metrics.metrics(), metrics.metrics()]);
  const devicesOf = (text: string): string[] => [...family(parse(t, text), 'rdma_port_state_id').keys()];
  t.same(devicesOf(a), ['{device="dev0",port="1"}'], 'the first scrape has its own device only');
  t.same(devicesOf(b), ['{device="dev1",port="1"}'], 'the second its own');
});

t.test('the MR families are made again only for another list of MRs', async (t) => {
  let list: Mr[] = [mr(1, { page_faults: 3 }), mr(2, { page_faults: 5 })];
  let failing = false;
  const metrics = metricsOf({ mrs: async () => { if (failing) throw new Error('no dump'); return list; } });
  const mrLines = (text: string): string[] => text.split('\n').filter((l) => /^rdma_mr/.test(l));
  const first = mrLines(await metrics.metrics());
  t.ok(first.some((l) => l.startsWith('rdma_mr_counter_total{device="pfnic0",mrn="2",counter="page_faults"} 5')), 'the busiest MR\'s series');
  t.same(mrLines(await metrics.metrics()), first, 'the same list: the same MR series, kept rather than set again');
  list = [mr(2, { page_faults: 9 })];
  const third = mrLines(await metrics.metrics());
  t.ok(third.some((l) => l.startsWith('rdma_mr_counter_total{device="pfnic0",mrn="2",counter="page_faults"} 9')), 'another list: its values');
  t.notOk(third.some((l) => l.includes('mrn="1"')), 'and an MR gone leaves no series');
  failing = true;
  const fourth = await metrics.metrics();
  t.same(mrLines(fourth), [], 'a list that cannot be read: no MR series at all, not the last ones');
  failing = false;
  t.ok(mrLines(await metrics.metrics()).length > 0, 'and they come back with it');
});

t.test('bad options are refused with a clear error', async (t) => {
  for (const perMrLimit of [-1, 1.5, Number.NaN]) {
    t.throws(() => metricsOf({}, { perMrLimit }), { name: 'RangeError', message: /perMrLimit must be a whole number of MRs/ },
      `perMrLimit ${perMrLimit}`);
  }
});

t.test('sysfs port counters: a port without counters/ has none; an unreadable one fails', async (t) => {
  const sysfs = mkdtempSync(path.join(tmpdir(), 'pfnic-metrics-'));
  t.teardown(() => rmSync(sysfs, { recursive: true, force: true }));
  mkdirSync(path.join(sysfs, 'rxe0/ports/1/hw_counters'), { recursive: true });
  writeFileSync(path.join(sysfs, 'rxe0/ports/1/hw_counters/rcvd_pkts'), '12\n');
  const read = sysfsPortCounters(sysfs);
  const rxe = await read('rxe0', 1);
  t.same([...rxe.counters], [], 'no counters/ (a software device): no standard counters, no error');
  t.same([...rxe.hwCounters], [['rcvd_pkts', 12]], 'its hardware counters');
  mkdirSync(path.join(sysfs, 'odd0/ports/1'), { recursive: true });
  writeFileSync(path.join(sysfs, 'odd0/ports/1/counters'), 'not a directory');
  await t.rejects(read('odd0', 1), { code: 'ENOTDIR' }, 'a counters/ that cannot be read is an error, not an empty port');
});

t.test('per-MR series stay bounded', async (t) => {
  const mrs = Array.from({ length: 200 }, (_, i) => mr(i, { page_faults: (i * 37) % 200, page_invalidations: 1 }));
  const e = parse(t, await metricsOf({ mrs: async () => mrs }, { perMrLimit: 10 }).metrics());
  const infos = [...family(e, 'rdma_mr_info').keys()];
  t.equal(infos.length, 10, '200 MRs, a limit of 10: 10 MRs get series of their own');
  t.equal(new Set([...family(e, 'rdma_mr_counter_total').keys()].map((k) => /mrn="(\d+)"/.exec(k)?.[1])).size, 10, 'and counters of their own');
  t.equal(e.samples.get('rdma_mr_series_left_out'), 190, 'the other 190 are counted');
  const top = [...mrs].sort((a, b) => b.counters.page_faults! - a.counters.page_faults!).slice(0, 10).map((m) => m.mrn);
  t.ok(top.every((n) => infos.some((k) => k.includes(`mrn="${n}"`))), 'they are the busiest (most faults and invalidations)');
  t.equal(e.samples.get('rdma_mrs{device="pfnic0",kind="explicit"}'), 200, 'the aggregate counts all 200');
  t.equal(e.samples.get('rdma_mr_counter_sum{device="pfnic0",counter="page_invalidations"}'), 200, 'and sums their counters');
  t.ok(infos.every((k) => k.includes('owner="app \\"x\\"\\\\y"')), 'label values are escaped');
});
