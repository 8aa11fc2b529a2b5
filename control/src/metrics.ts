// The host's RDMA state for Prometheus, through prom-client (a registry of our own): devices
// and ports, the ports' sysfs counters (InfiniBand's standard ones under node_exporter's
// names, data in bytes), MRs (per device and kind, and per MR for the busiest few, so that
// the number of series stays bounded however many MRs there are), memory blocks, the events
// the control plane has seen, and the process's own metrics. Each input comes from a source
// of its own, read once per scrape: one that fails is flagged by rdma_scrape_error and leaves
// out only its own series. Counters are counters, levels are gauges; what changes (a port's
// state) is a value, never a label.
import path from 'node:path';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { Type } from 'typebox';

import { registeredBytes } from './mrs.js';
import { checked, nativeBinding, queryError } from './native.js';

import type { Device, Event, MemoryBlock, Mr, UmmunotifyState } from './schema.js';
import { PHYS_STATES, PORT_STATES } from './verbs-names.js';

/** One port's counters as sysfs has them, by file name. */
export interface PortCounters {
  /** counters/: InfiniBand's PortCounters (port_xmit_data and port_rcv_data in 4-byte words). */
  counters: ReadonlyMap<string, number>;
  /** hw_counters/: the driver's own statistics. */
  hwCounters: ReadonlyMap<string, number>;
}

/** Events seen since the control plane started, by type and reason (EventHub.counts). */
export type EventCounts = ReadonlyMap<string, { type: Event['type']; reason: string; count: number }>;

/** Where each scrape's inputs come from; each may fail on its own. */
export interface MetricsSources {
  devices: () => Promise<readonly Device[]>;
  mrs: () => Promise<readonly Mr[]>;
  blocks: () => Promise<readonly MemoryBlock[]>;
  /** One port's counters (sysfsPortCounters() reads them from sysfs). */
  portCounters: (device: string, port: number) => Promise<PortCounters>;
  /** What processes watch through /dev/ummunotify (none: no series). */
  ummunotify?: () => Promise<UmmunotifyState>;
}

/** A source a scrape could not read: its name (and the device, for port counters). */
export interface SourceFailure {
  source: 'devices' | 'mrs' | 'memory_blocks' | 'port_counters' | 'ummunotify';
  device?: string;
  error: unknown;
}

export interface MetricsOptions {
  sources: MetricsSources;
  /** The event counts and the event channel's state, as they are at the scrape. */
  events: () => EventCounts;
  channelUp: () => boolean;
  /** At most this many MRs get series of their own (the most faulted and invalidated). */
  perMrLimit: number;
  /** The process's own metrics (process_*, nodejs_*): on unless false. */
  processMetrics?: boolean;
  /** Told of each source a scrape could not read (to log it). */
  onSourceError?: (failure: SourceFailure) => void;
}

const CounterDirs = Type.Array(Type.Union([Type.Array(Type.Tuple([Type.String(), Type.Number()])), Type.Null()]));

/**
 * Reads ports' counters from a sysfs class directory (by default the host's): both of a
 * port's directories in one call to the addon, whose worker reads every file (through the
 * file system's thread pool, a file was four trips, and the port counters most of a scrape).
 * Without the addon the source fails, as the devices do.
 */
export function sysfsPortCounters(root = '/sys/class/infiniband'): MetricsSources['portCounters'] {
  return async (device, port) => {
    const base = path.join(root, device, 'ports', String(port));
    let read: unknown;
    try {
      read = await nativeBinding().readCounterDirs([path.join(base, 'counters'), path.join(base, 'hw_counters')]);
    } catch (err) {
      throw queryError(err);
    }
    const [counters, hwCounters] = checked(CounterDirs, read, 'counter directory list');
    return { counters: new Map(counters ?? []), hwCounters: new Map(hwCounters ?? []) };
  };
}

/**
 * counters/ files that node_exporter's infiniband collector exports, with its name (after
 * node_infiniband_) and our words for them. The data counters count 4-byte words (the IB
 * spec's PortXmitData and PortRcvData): exported in bytes.
 */
const IB_PORT_COUNTERS: Record<string, { name: string; help: string; scale?: number }> = {
  port_xmit_data: { name: 'port_data_transmitted_bytes_total', help: 'Bytes of data the port sent', scale: 4 },
  port_rcv_data: { name: 'port_data_received_bytes_total', help: 'Bytes of data the port received', scale: 4 },
  port_xmit_packets: { name: 'port_packets_transmitted_total', help: 'Packets the port sent, errors included' },
  port_rcv_packets: { name: 'port_packets_received_total', help: 'Packets the port received, errors included' },
  unicast_xmit_packets: { name: 'unicast_packets_transmitted_total', help: 'Unicast packets the port sent' },
  unicast_rcv_packets: { name: 'unicast_packets_received_total', help: 'Unicast packets the port received' },
  multicast_xmit_packets: { name: 'multicast_packets_transmitted_total', help: 'Multicast packets the port sent' },
  multicast_rcv_packets: { name: 'multicast_packets_received_total', help: 'Multicast packets the port received' },
  port_rcv_errors: { name: 'port_errors_received_total', help: 'Packets with an error the port received' },
  port_xmit_discards: { name: 'port_discards_transmitted_total', help: 'Outbound packets the port dropped (link down, congestion)' },
  port_rcv_discards: { name: 'port_discards_received_total', help: 'Inbound packets the port dropped (link down, congestion)' },
  port_xmit_constraint_errors: { name: 'port_constraint_errors_transmitted_total', help: 'Packets the port did not send: partition or filtering constraints' },
  port_rcv_constraint_errors: { name: 'port_constraint_errors_received_total', help: 'Packets the port dropped on receipt: partition or filtering constraints' },
  port_xmit_wait: { name: 'port_transmit_wait_total', help: 'Ticks in which the port had data to send and sent none' },
  port_rcv_remote_physical_errors: { name: 'port_receive_remote_physical_errors_total', help: 'Packets received marked bad by an earlier hop' },
  port_rcv_switch_relay_errors: { name: 'port_receive_switch_relay_errors_total', help: 'Packets a switch port could not forward' },
  symbol_error: { name: 'symbol_error_total', help: 'Minor link errors on the port\'s lanes' },
  link_error_recovery: { name: 'link_error_recovery_total', help: 'Times the link recovered from an error' },
  link_downed: { name: 'link_downed_total', help: 'Times the link failed to recover from an error and went down' },
  local_link_integrity_errors: { name: 'local_link_integrity_errors_total', help: 'Times local physical errors passed their threshold' },
  excessive_buffer_overrun_errors: { name: 'excessive_buffer_overrun_errors_total', help: 'Runs of flow-control periods that each saw a buffer overrun' },
  VL15_dropped: { name: 'vl15_dropped_total', help: 'Incoming VL15 (subnet management) packets dropped for want of resources' },
};

/** hw_counters/ files that are levels, not counts (bnxt_re's objects in use and their high-water marks). */
const isHwLevel = (name: string): boolean => /^(active|watermark)_/.test(name);
/** hw_counters/lifespan is a setting (how long the driver's values are cached), not a statistic. */
const HW_SETTINGS = new Set(['lifespan']);

/** Per-MR statistics that are levels: `rdma statistic mr` lists pfnic's suspended_pages among its counters. */
const MR_LEVELS = new Set(['mapped_pages', 'suspended_pages']);

/** A state's number from its name (PORT_STATES, PHYS_STATES; "UNKNOWN(n)" is n); undefined if neither. */
function stateNumber(table: ReadonlyMap<number, string>, name: string): number | undefined {
  for (const [value, n] of table) if (n === name) return value;
  const m = /^UNKNOWN\((\d+)\)$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Marks the families of the MRs (RdmaMetrics.mrFamilies). */
const MR = Symbol('mr families');

/** A family's name, help and labels, after its group if it has one. */
type FamilyArgs<L extends string> = [name: string, help: string, labelNames: readonly L[]] |
  [group: typeof MR, name: string, help: string, labelNames: readonly L[]];

/** The MRs as their families need them: sums by device and kind, and the busiest. */
interface MrSummary {
  byKind: { device: string; kind: string; count: number; bytes: number; mapped: number; suspended: number }[];
  sums: { device: string; counter: string; sum: number }[];
  busiest: Mr[];
}

/** Every metric of the control plane, in prom-client's registry; one scrape at a time. */
export class RdmaMetrics {
  readonly registry = new Registry();
  /** Our families, set afresh by each scrape (the process metrics keep state of their own). */
  private readonly families: (Gauge | Counter)[] = [];
  /**
   * The MRs' families, set afresh only when the model hands over another list: the same list
   * makes the same series, and setting a thousand labelled values was half a scrape.
   */
  private readonly mrFamilies: (Gauge | Counter)[] = [];
  /** The list the MR families show now, if any. */
  private shownMrs: readonly Mr[] | undefined;
  private readonly options: MetricsOptions;
  private queue: Promise<unknown> = Promise.resolve();
  private lastMrs: { mrs: readonly Mr[]; summary: MrSummary } | undefined;

  private readonly scrapeError = this.gauge('rdma_scrape_error',
    '1 if this scrape could not read a source (devices, mrs, memory_blocks, or a device\'s port_counters), whose series are then left out; 0 if it could',
    ['source', 'device']);

  private readonly deviceInfo = this.gauge('rdma_device_info',
    'An RDMA device of this host (value 1): its node GUID, firmware, transport and node type', ['device', 'node_guid', 'fw_ver', 'transport', 'node_type']);
  private readonly portInfo = this.gauge('rdma_port_info',
    'A port (value 1): its link layer and netdev (its state is rdma_port_state_id)', ['device', 'port', 'link_layer', 'netdev']);
  private readonly portState = this.gauge('rdma_port_state_id',
    'Port state: 0 no change, 1 down, 2 init, 3 armed, 4 active, 5 active defer', ['device', 'port']);
  private readonly portPhysState = this.gauge('rdma_port_physical_state_id',
    'Physical port state: 1 sleep, 2 polling, 3 disabled, 4 training, 5 link up, 6 link error recovery, 7 phy test', ['device', 'port']);
  private readonly portMtu = this.gauge('rdma_port_active_mtu_bytes', 'The port\'s active MTU', ['device', 'port']);

  private readonly ibCounters = new Map(Object.entries(IB_PORT_COUNTERS).map(([file, c]) => [file, {
    scale: c.scale ?? 1,
    counter: this.counter(`node_infiniband_${c.name}`, `${c.help} (sysfs counters/${file})`, ['device', 'port']),
  }]));
  private readonly otherCounters = this.counter('rdma_port_counter_total',
    'A standard port counter of sysfs counters/ that node_infiniband_* does not name, by file name', ['device', 'port', 'counter']);
  private readonly hwCounters = this.counter('rdma_port_hw_counter_total',
    'A hardware counter of the port (sysfs hw_counters), by name', ['device', 'port', 'counter']);
  private readonly hwLevels = this.gauge('rdma_port_hw_gauge',
    'A hardware statistic of the port that rises and falls (sysfs hw_counters: objects in use, high-water marks), by name', ['device', 'port', 'name']);

  private readonly mrCount = this.gauge(MR, 'rdma_mrs',
    'Memory regions, by device and kind (pinned, explicit or implicit ODP, unknown)', ['device', 'kind']);
  private readonly mrBytes = this.gauge(MR, 'rdma_mr_bytes',
    'Bytes registered in MRs, by device and kind (implicit MRs, which span all memory, left out)', ['device', 'kind']);
  private readonly mrMapped = this.gauge(MR, 'rdma_mr_mapped_pages', 'Pages MRs map now, by device and kind', ['device', 'kind']);
  private readonly mrSuspended = this.gauge(MR, 'rdma_mr_suspended_pages',
    'Pages of ODP MRs taken by the kernel and not faulted back yet, by device and kind', ['device', 'kind']);
  private readonly mrCounterSum = this.gauge(MR, 'rdma_mr_counter_sum',
    'The sum of a per-MR counter over the device\'s live MRs (a gauge: it falls when an MR goes)', ['device', 'counter']);
  private readonly perMrInfo = this.gauge(MR, 'rdma_mr_info',
    'An MR with series of its own (value 1): its kind, and the process that registered it', ['device', 'mrn', 'kind', 'pid', 'owner']);
  private readonly perMrLength = this.gauge(MR, 'rdma_mr_length_bytes',
    'The length of an MR with series of its own (implicit MRs, which span all memory, left out)', ['device', 'mrn']);
  private readonly perMrCounter = this.counter(MR, 'rdma_mr_counter_total',
    'A per-MR counter (rdma statistic mr), for the MRs with the most faults and invalidations', ['device', 'mrn', 'counter']);
  private readonly perMrPages = this.gauge(MR, 'rdma_mr_pages',
    'Pages of an MR with series of its own, by state: mapped now, or suspended (taken by the kernel, not faulted back yet)',
    ['device', 'mrn', 'state']);
  private readonly perMrLeftOut = this.gauge(MR, 'rdma_mr_series_left_out', 'MRs with no series of their own, over the limit', []);

  private readonly blocks = this.gauge('rdma_memory_blocks', 'Memory blocks of the host, by state, zone and NUMA node', ['state', 'zone', 'node']);

  private readonly events = this.counter('pfnic_events_total',
    'Events from pfnic\'s event channel since the control plane started, by type and reason', ['type', 'reason']);
  private readonly channel = this.gauge('pfnic_event_channel_up', '1 while the control plane reads pfnic\'s event channel', []);

  private readonly umnLoaded = this.gauge('pfnic_ummunotify_loaded', '1 while the ummunotify module is loaded', []);
  private readonly umnLevels = {
    files: this.gauge('pfnic_ummunotify_files', 'Files open on /dev/ummunotify', []),
    processes: this.gauge('pfnic_ummunotify_processes', 'Processes that opened them', []),
    ranges: this.gauge('pfnic_ummunotify_ranges', 'Address ranges the files watch', []),
    watched_bytes: this.gauge('pfnic_ummunotify_watched_bytes', 'Their lengths summed', []),
    changed: this.gauge('pfnic_ummunotify_changed_ranges', 'Watched ranges changed and not read yet', []),
  };
  private readonly umnRangeChanges = this.counter('pfnic_ummunotify_range_changes_total',
    'Times the kernel changed a watched range (files closed included, once the control plane saw them)', []);
  private readonly umnEventsRead = this.counter('pfnic_ummunotify_events_read_total',
    'Records processes read from their ummunotify files (files closed included, once the control plane saw them)', []);

  constructor(options: MetricsOptions) {
    if (!Number.isSafeInteger(options.perMrLimit) || options.perMrLimit < 0) {
      throw new RangeError(`perMrLimit must be a whole number of MRs, 0 or more, not ${String(options.perMrLimit)}`);
    }
    this.options = options;
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** The content type of what metrics() returns (the text format, version 0.0.4). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * Reads every source and returns all metrics in the text format. Scrapes run one after
   * another: each sets the families afresh, and two at once would mix their values.
   */
  metrics(): Promise<string> {
    const run = this.queue.then(() => this.scrape());
    this.queue = run.catch(() => undefined);
    return run;
  }

  private gauge<L extends string>(...args: FamilyArgs<L>): Gauge<L> {
    const { group, config } = this.familyConfig(args);
    return this.keep(new Gauge(config), group);
  }

  private counter<L extends string>(...args: FamilyArgs<L>): Counter<L> {
    const { group, config } = this.familyConfig(args);
    return this.keep(new Counter(config), group);
  }

  /** A family's settings from a gauge's or counter's arguments (the group first, if any). */
  private familyConfig<L extends string>(args: FamilyArgs<L>):
    { group: typeof MR | undefined; config: { name: string; help: string; labelNames: readonly L[]; registers: Registry[] } } {
    const [group, name, help, labelNames]: [typeof MR | undefined, string, string, readonly L[]] =
      args.length === 4 ? args : [undefined, ...args];
    return { group, config: { name, help, labelNames, registers: [this.registry] } };
  }

  /** Keeps a family with those its group's scrapes set afresh. */
  private keep<F extends Gauge | Counter>(family: F, group: typeof MR | undefined): F {
    (group === MR ? this.mrFamilies : this.families).push(family);
    return family;
  }

  /** A source's value, or undefined (flagged in rdma_scrape_error) if it failed. */
  private async read<T>(source: SourceFailure['source'], device: string | undefined, from: () => Promise<T>): Promise<T | undefined> {
    const labels = device === undefined ? { source } : { source, device };
    try {
      const value = await from();
      this.scrapeError.set(labels, 0);
      return value;
    } catch (error) {
      this.scrapeError.set(labels, 1);
      this.options.onSourceError?.(device === undefined ? { source, error } : { source, device, error });
      return undefined;
    }
  }

  private async scrape(): Promise<string> {
    const { sources } = this.options;
    for (const family of this.families) family.reset();
    const [devices, mrs, blocks, umn] = await Promise.all([
      this.read('devices', undefined, () => sources.devices()),
      this.read('mrs', undefined, () => sources.mrs()),
      this.read('memory_blocks', undefined, () => sources.blocks()),
      sources.ummunotify ? this.read('ummunotify', undefined, sources.ummunotify) : undefined,
    ]);
    if (devices) {
      this.setDevices(devices);
      await Promise.all(devices.map(async (d) => {
        const ports = await this.read('port_counters', d.name,
          () => Promise.all(d.ports.map(async (p) => ({ port: p.port, counters: await sources.portCounters(d.name, p.port) }))));
        for (const p of ports ?? []) this.setPortCounters(d.name, p.port, p.counters);
      }));
    }
    if (!mrs || mrs !== this.shownMrs) {
      for (const family of this.mrFamilies) family.reset();
      this.shownMrs = undefined;
    }
    // without a list, the MR series are left out: unknown, not 0
    if (mrs && mrs !== this.shownMrs) {
      this.setMrs(mrs);
      this.shownMrs = mrs;
    } else if (!mrs) {
      this.perMrLeftOut.remove({}); // a family without labels comes back as 0 from reset()
    }
    if (blocks) this.setBlocks(blocks);
    if (umn?.error) {
      // the series are the last walk's; the flag says this one failed
      this.scrapeError.set({ source: 'ummunotify' }, 1);
      this.options.onSourceError?.({ source: 'ummunotify', error: new Error(umn.error) });
    }
    this.setUmmunotify(umn);
    for (const e of this.options.events().values()) this.events.inc({ type: e.type, reason: e.reason }, e.count);
    this.channel.set(this.options.channelUp() ? 1 : 0);
    return this.registry.metrics();
  }

  private setDevices(devices: readonly Device[]): void {
    for (const d of devices) {
      this.deviceInfo.set({ device: d.name, node_guid: d.node_guid, fw_ver: d.fw_ver, transport: d.transport, node_type: d.node_type }, 1);
      for (const p of d.ports) {
        const labels = { device: d.name, port: p.port };
        this.portInfo.set({ ...labels, link_layer: p.link_layer, netdev: p.netdev ?? '' }, 1);
        const state = stateNumber(PORT_STATES, p.state);
        if (state !== undefined) this.portState.set(labels, state);
        const phys = stateNumber(PHYS_STATES, p.phys_state);
        if (phys !== undefined) this.portPhysState.set(labels, phys);
        this.portMtu.set(labels, p.active_mtu);
      }
    }
  }

  private setPortCounters(device: string, port: number, counters: PortCounters): void {
    const labels = { device, port };
    for (const [file, value] of counters.counters) {
      const known = this.ibCounters.get(file);
      if (known) known.counter.inc(labels, value * known.scale);
      else this.otherCounters.inc({ ...labels, counter: file }, value);
    }
    for (const [name, value] of counters.hwCounters) {
      if (HW_SETTINGS.has(name)) continue;
      if (isHwLevel(name)) this.hwLevels.set({ ...labels, name }, value);
      else this.hwCounters.inc({ ...labels, counter: name }, value);
    }
  }

  /**
   * What the MR families are made of, computed once per list: the model hands the same array
   * until an MR changes, and over 10,000 MRs this is most of a scrape's work.
   */
  private mrSummary(mrs: readonly Mr[]): MrSummary {
    if (this.lastMrs?.mrs === mrs) return this.lastMrs.summary;
    const byKind = new Map<string, { device: string; kind: string; count: number; bytes: number; mapped: number; suspended: number }>();
    const sums = new Map<string, { device: string; counter: string; sum: number }>();
    const limit = this.options.perMrLimit;
    // the busiest, kept in order as the list goes by: no sort of every MR
    const busiest: { mr: Mr; activity: number }[] = [];
    for (const m of mrs) {
      const key = `${m.device}\u0000${m.kind}`;
      let a = byKind.get(key);
      if (!a) {
        a = { device: m.device, kind: m.kind, count: 0, bytes: 0, mapped: 0, suspended: 0 };
        byKind.set(key, a);
      }
      a.count++;
      // lengths below 2^53 bytes read exactly as numbers; implicit MRs span all memory
      a.bytes += registeredBytes(m) ?? 0;
      a.mapped += m.mapped_pages ?? 0;
      a.suspended += m.suspended_pages ?? 0;
      for (const counter in m.counters) {
        // levels have their own aggregates (rdma_mr_mapped_pages, rdma_mr_suspended_pages)
        if (MR_LEVELS.has(counter)) continue;
        const k = `${m.device}\u0000${counter}`;
        let sum = sums.get(k);
        if (!sum) {
          sum = { device: m.device, counter, sum: 0 };
          sums.set(k, sum);
        }
        sum.sum += m.counters[counter]!;
      }
      if (limit === 0) continue;
      const activity = (m.counters.page_faults ?? 0) + (m.counters.page_invalidations ?? 0);
      const last = busiest[busiest.length - 1];
      const before = (x: { mr: Mr; activity: number }): boolean => activity > x.activity || (activity === x.activity && m.mrn < x.mr.mrn);
      if (busiest.length < limit || (last && before(last))) {
        let at = busiest.length;
        while (at > 0 && before(busiest[at - 1]!)) at--;
        busiest.splice(at, 0, { mr: m, activity });
        if (busiest.length > limit) busiest.pop();
      }
    }
    const summary = { byKind: [...byKind.values()], sums: [...sums.values()], busiest: busiest.map((b) => b.mr) };
    this.lastMrs = { mrs, summary };
    return summary;
  }

  private setMrs(mrs: readonly Mr[]): void {
    const { byKind, sums, busiest } = this.mrSummary(mrs);
    for (const a of byKind) {
      const labels = { device: a.device, kind: a.kind };
      this.mrCount.set(labels, a.count);
      this.mrBytes.set(labels, a.bytes);
      this.mrMapped.set(labels, a.mapped);
      this.mrSuspended.set(labels, a.suspended);
    }
    for (const s of sums) this.mrCounterSum.set({ device: s.device, counter: s.counter }, s.sum);
    for (const m of busiest) {
      const labels = { device: m.device, mrn: m.mrn };
      this.perMrInfo.set({ ...labels, kind: m.kind, pid: m.pid ?? '', owner: m.owner ?? '' }, 1);
      const length = registeredBytes(m);
      if (length !== null) this.perMrLength.set(labels, length);
      const mapped = m.mapped_pages ?? m.counters.mapped_pages;
      if (mapped !== undefined) this.perMrPages.set({ ...labels, state: 'mapped' }, mapped);
      const suspended = m.suspended_pages ?? m.counters.suspended_pages;
      if (suspended !== undefined) this.perMrPages.set({ ...labels, state: 'suspended' }, suspended);
      for (const [counter, v] of Object.entries(m.counters)) {
        if (!MR_LEVELS.has(counter)) this.perMrCounter.inc({ ...labels, counter }, v);
      }
    }
    this.perMrLeftOut.set(mrs.length - busiest.length);
  }

  private setUmmunotify(state: UmmunotifyState | undefined): void {
    // families without labels come back as 0 from reset(): unknown (the walk failed) or
    // meaningless (no module) is no series, not 0, which a counter's rate() would take for a reset
    const families = [...Object.values(this.umnLevels), this.umnRangeChanges, this.umnEventsRead];
    if (!state?.loaded) for (const family of families) family.remove({});
    if (!state) {
      this.umnLoaded.remove({});
      return;
    }
    this.umnLoaded.set(state.loaded ? 1 : 0);
    if (!state.loaded) return;
    for (const [name, family] of Object.entries(this.umnLevels)) family.set(state.totals[name as keyof typeof this.umnLevels]);
    this.umnRangeChanges.inc(state.totals.range_changes);
    this.umnEventsRead.inc(state.totals.events_read);
  }

  private setBlocks(blocks: readonly MemoryBlock[]): void {
    const counts = new Map<string, { state: string; zone: string; node: string; n: number }>();
    for (const b of blocks) {
      const labels = { state: b.state, zone: b.zone ?? '', node: b.node === null ? '' : String(b.node) };
      const k = `${labels.state}\u0000${labels.zone}\u0000${labels.node}`;
      const e = counts.get(k) ?? { ...labels, n: 0 };
      e.n++;
      counts.set(k, e);
    }
    for (const e of counts.values()) this.blocks.set({ state: e.state, zone: e.zone, node: e.node }, e.n);
  }
}
