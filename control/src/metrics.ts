// The host's RDMA state in Prometheus's text format: devices and ports (with their hardware
// counters from sysfs), MRs (per device and kind, and per MR for the busiest few, so that
// the number of series stays bounded however many MRs there are), memory blocks, and the
// events the control plane has seen. Names follow node_exporter's and rdma exporters' ways:
// labels device and port, counters end in _total, constant facts are _info gauges of 1.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

import type { Device, Event, MemoryBlock, Mr } from './schema.js';

type Labels = Record<string, string | number>;

/** One metric family: its help, its type, its samples. */
class Family {
  readonly samples: { labels: Labels; value: number }[] = [];
  constructor(readonly name: string, readonly type: 'gauge' | 'counter', readonly help: string) {}
  add(labels: Labels, value: number): this {
    this.samples.push({ labels, value });
    return this;
  }
}

const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
const escapeHelp = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');

function render(families: Family[]): string {
  const out: string[] = [];
  for (const f of families) {
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels).map(([k, v]) => `${k}="${escapeLabel(String(v))}"`).join(',');
      const value = Number.isFinite(s.value) ? String(s.value) : s.value > 0 ? '+Inf' : s.value < 0 ? '-Inf' : 'NaN';
      out.push(`${f.name}${labels ? `{${labels}}` : ''} ${value}`);
    }
  }
  return `${out.join('\n')}\n`;
}

/** A port's counters as sysfs has them: counters/ (the IB standard ones) and hw_counters/. */
async function portCounters(device: string, port: number): Promise<{ hw: Map<string, number>; std: Map<string, number> }> {
  const read = async (dir: string): Promise<Map<string, number>> => {
    const m = new Map<string, number>();
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return m;
    }
    await Promise.all(names.map(async (n) => {
      try {
        const v = Number((await readFile(path.join(dir, n), 'utf8')).trim());
        if (Number.isFinite(v)) m.set(n, v);
      } catch {
        // some counters refuse reads (unsupported on this port): left out
      }
    }));
    return m;
  };
  const base = path.join('/sys/class/infiniband', device, 'ports', String(port));
  const [hw, std] = await Promise.all([read(path.join(base, 'hw_counters')), read(path.join(base, 'counters'))]);
  return { hw, std };
}

export interface MetricsInput {
  devices: Device[];
  mrs: Mr[];
  blocks: MemoryBlock[];
  /** Events seen since the server started, by type and reason. */
  events: Map<string, { type: Event['type']; reason: string; count: number }>;
  channelUp: boolean;
  /** At most this many MRs get series of their own (the most faulted and invalidated). */
  perMrLimit: number;
}

const PORT_STATES: Record<string, number> = { NOP: 0, DOWN: 1, INIT: 2, ARMED: 3, ACTIVE: 4, ACTIVE_DEFER: 5 };

/** Every metric, in the text exposition format (version 0.0.4). */
export async function renderMetrics(input: MetricsInput): Promise<string> {
  const devInfo = new Family('rdma_device_info', 'gauge', 'An RDMA device of this host (value 1): its node GUID, firmware, transport and node type');
  const portInfo = new Family('rdma_port_info', 'gauge', 'A port (value 1): its state, physical state, link layer and netdev');
  const portState = new Family('rdma_port_state_id', 'gauge', 'Port state as a number: 1 down, 2 init, 3 armed, 4 active');
  const portMtu = new Family('rdma_port_active_mtu_bytes', 'gauge', 'The port\'s active MTU');
  const hwCounter = new Family('rdma_port_hw_counter_total', 'counter', 'A hardware counter of the port (sysfs hw_counters), by name');
  const stdCounter = new Family('rdma_port_counter_total', 'counter', 'A standard InfiniBand port counter (sysfs counters), by name');
  for (const d of input.devices) {
    devInfo.add({ device: d.name, node_guid: d.node_guid, fw_ver: d.fw_ver, transport: d.transport, node_type: d.node_type }, 1);
    for (const p of d.ports) {
      const labels = { device: d.name, port: p.port };
      portInfo.add({ ...labels, state: p.state, phys_state: p.phys_state, link_layer: p.link_layer, netdev: p.netdev ?? '' }, 1);
      portState.add(labels, PORT_STATES[p.state] ?? -1);
      portMtu.add(labels, p.active_mtu);
      const { hw, std } = await portCounters(d.name, p.port);
      for (const [name, v] of [...hw].sort()) hwCounter.add({ ...labels, counter: name }, v);
      for (const [name, v] of [...std].sort()) stdCounter.add({ ...labels, counter: name }, v);
    }
  }

  const mrCount = new Family('rdma_mrs', 'gauge', 'Memory regions, by device and kind (pinned, explicit or implicit ODP, unknown)');
  const mrBytes = new Family('rdma_mr_bytes', 'gauge', 'Bytes registered in MRs, by device and kind (implicit MRs, which span all memory, left out)');
  const mrMapped = new Family('rdma_mr_mapped_pages', 'gauge', 'Pages MRs map now, by device and kind');
  const mrSuspended = new Family('rdma_mr_suspended_pages', 'gauge', 'Pages of ODP MRs taken by the kernel and not faulted back yet, by device');
  const mrCounterSum = new Family('rdma_mr_counter_sum', 'gauge', 'The sum of a per-MR counter over the device\'s live MRs (falls when an MR goes)');
  const perMr = new Family('rdma_mr_counter_total', 'counter', 'A per-MR counter, for the MRs with the most faults and invalidations');
  const perMrInfo = new Family('rdma_mr_info', 'gauge', 'An MR with series of its own (value 1): its kind, owner and length');
  const perMrLeftOut = new Family('rdma_mr_series_left_out', 'gauge', 'MRs with no series of their own, over the limit');
  const agg = new Map<string, { device: string; kind: string; count: number; bytes: number; mapped: number; suspended: number }>();
  const sums = new Map<string, number>();
  for (const m of input.mrs) {
    const key = `${m.device}\u0000${m.kind}`;
    const a = agg.get(key) ?? { device: m.device, kind: m.kind, count: 0, bytes: 0, mapped: 0, suspended: 0 };
    a.count++;
    if (m.kind !== 'implicit' && m.length !== null) a.bytes += Number(BigInt(m.length));
    a.mapped += m.mapped_pages ?? 0;
    a.suspended += m.suspended_pages ?? 0;
    agg.set(key, a);
    for (const [name, v] of Object.entries(m.counters)) {
      const k = `${m.device}\u0000${name}`;
      sums.set(k, (sums.get(k) ?? 0) + v);
    }
  }
  for (const a of agg.values()) {
    const labels = { device: a.device, kind: a.kind };
    mrCount.add(labels, a.count);
    mrBytes.add(labels, a.bytes);
    mrMapped.add(labels, a.mapped);
    mrSuspended.add(labels, a.suspended);
  }
  for (const [k, v] of [...sums].sort()) {
    const [device, counter] = k.split('\u0000') as [string, string];
    mrCounterSum.add({ device, counter }, v);
  }
  const activity = (m: Mr): number => (m.counters.page_faults ?? 0) + (m.counters.page_invalidations ?? 0);
  const busiest = [...input.mrs].sort((x, y) => activity(y) - activity(x) || x.mrn - y.mrn).slice(0, input.perMrLimit);
  for (const m of busiest) {
    const labels = { device: m.device, mrn: m.mrn };
    perMrInfo.add({ ...labels, kind: m.kind, pid: m.pid ?? '', owner: m.owner ?? '', length: m.length ?? '' }, 1);
    for (const [name, v] of Object.entries(m.counters)) perMr.add({ ...labels, counter: name }, v);
  }
  perMrLeftOut.add({}, input.mrs.length - busiest.length);

  const blocks = new Family('rdma_memory_blocks', 'gauge', 'Memory blocks of the host, by state, zone and NUMA node');
  const blockAgg = new Map<string, { state: string; zone: string; node: string; n: number }>();
  for (const b of input.blocks) {
    const labels = { state: b.state, zone: b.zone ?? '', node: b.node === null ? '' : String(b.node) };
    const k = `${labels.state}\u0000${labels.zone}\u0000${labels.node}`;
    const e = blockAgg.get(k) ?? { ...labels, n: 0 };
    e.n++;
    blockAgg.set(k, e);
  }
  for (const e of [...blockAgg.values()].sort((x, y) => `${x.node}${x.zone}${x.state}`.localeCompare(`${y.node}${y.zone}${y.state}`))) {
    blocks.add({ state: e.state, zone: e.zone, node: e.node }, e.n);
  }

  const events = new Family('pfnic_events_total', 'counter', 'Events from pfnic\'s event channel since the control plane started, by type and reason');
  for (const e of [...input.events.values()].sort((x, y) => `${x.type}${x.reason}`.localeCompare(`${y.type}${y.reason}`))) {
    events.add({ type: e.type, reason: e.reason }, e.count);
  }
  const channel = new Family('pfnic_event_channel_up', 'gauge', '1 while the control plane reads pfnic\'s event channel');
  channel.add({}, input.channelUp ? 1 : 0);

  return render([devInfo, portInfo, portState, portMtu, hwCounter, stdCounter, mrCount, mrBytes, mrMapped,
    mrSuspended, mrCounterSum, perMrInfo, perMr, perMrLeftOut, blocks, events, channel]);
}
