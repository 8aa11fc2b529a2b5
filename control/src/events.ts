// The control plane's events: pfnic's event channel (/dev/pfnic-events, read by the addon
// on a thread of its own), numbered in order, kept in a bounded history, handed to
// subscribers (the SSE stream). Without pfnic loaded the channel is absent, and the hub
// looks again every few seconds.
import { release } from 'node:os';
import { Type } from 'typebox';

import { checked, nativeBinding } from './native.js';
import { RawDeviceChange, RawEventRecord, type Event, type EventType } from './schema.js';
import { hex } from './verbs-names.js';

const RawEventList = Type.Array(RawEventRecord);
const RawChangeList = Type.Array(RawDeviceChange);

/** The channel's path (the uapi header's PFNIC_EVENTS_PATH). */
export const EVENTS_PATH = '/dev/pfnic-events';

// enum pfnic_event_type, pfnic_event_reason and pfnic_memory_action, by value
const TYPES: Record<number, EventType> = { 1: 'lost', 2: 'invalidate', 3: 'migrate', 4: 'memory', 5: 'pinned' };
const REASONS = ['other', 'unmap', 'clear', 'protection_vma', 'protection_page', 'soft_dirty', 'release',
  'migrate', 'exclusive'];
const ACTIONS = ['', 'going_online', 'online', 'cancel_online', 'going_offline', 'offline', 'cancel_offline'];
const F_OFFLINING = 1;

/** A record of the channel as an event of the model (numbered later, by the hub). */
export function eventFromRecord(r: RawEventRecord): Omit<Event, 'id'> | null {
  const type = TYPES[r.type];
  if (!type) return null;
  const mrEvent = type === 'invalidate' || type === 'migrate' || type === 'pinned';
  const reason = type === 'memory' ? (ACTIONS[r.reason] ?? `action_${r.reason}`)
    : type === 'lost' ? 'lost' : type === 'pinned' ? 'pinned' : (REASONS[r.reason] ?? `reason_${r.reason}`);
  return {
    time: new Date(Number(r.realtime_ns / 1_000_000n)).toISOString(),
    type,
    reason,
    device: mrEvent && r.device !== '' ? r.device : null,
    port: null,
    netdev: null,
    mrn: mrEvent ? r.mrn : null,
    lkey: mrEvent ? hex(r.lkey) : null,
    pid: mrEvent ? r.pid : null,
    start: type === 'lost' ? null : hex(r.start),
    end: type === 'lost' ? null : hex(r.end),
    pages: type === 'lost' ? null : Number(r.pages),
    node: r.node >= 0 ? r.node : null,
    block: r.block >= 0n ? Number(r.block) : null,
    offlining: (r.flags & F_OFFLINING) !== 0,
    lost: type === 'lost' ? Number(r.lost) : null,
  };
}

// enum rdma_nl_notify_event_type, by value
const DEVICE_EVENTS = ['register', 'unregister', 'netdev_attach', 'netdev_detach', 'rename', 'netdev_rename'];

/** An rdma netlink device notification as an event of the model. */
export function eventFromChange(c: RawDeviceChange, now = new Date()): Omit<Event, 'id'> {
  return {
    time: now.toISOString(), type: 'device', reason: DEVICE_EVENTS[c.event] ?? `event_${c.event}`,
    device: c.device ?? null, port: c.port ?? null, netdev: c.netdev ?? null, mrn: null, lkey: null, pid: null,
    start: null, end: null, pages: null, node: null, block: null, offlining: false, lost: null,
  };
}

/** How the channel is: opening, open, absent (pfnic is not loaded) or failing (with why). */
export interface ChannelStatus {
  state: 'opening' | 'open' | 'absent' | 'error' | 'stopped';
  message: string | null;
}

export interface EventHubOptions {
  /** Events kept for replay and paging (default 10000). */
  historySize?: number;
  /** The channel's path (default /dev/pfnic-events). */
  path?: string;
  /** How long to wait before looking for the channel again (default 5 s). */
  retryMs?: number;
}

interface NativeWatch { close(): void }

/**
 * The state of an open device monitor on a kernel of @p rel: kernels before 6.12 let a
 * process join the notification group but never send to it.
 */
export function monitorOpened(rel: string): MonitorStatus {
  const [major = 0, minor = 0] = rel.split('.').map((n) => Number.parseInt(n, 10));
  return major > 6 || (major === 6 && minor >= 12) ? { state: 'open', message: null }
    : { state: 'unsupported', message: `Linux ${major}.${minor} sends no device notifications (they came in 6.12); devices are still listed` };
}

/** How rdma netlink's device notifications are: open, unsupported (before 6.12), failing. */
export interface MonitorStatus {
  state: 'opening' | 'open' | 'unsupported' | 'error' | 'stopped';
  message: string | null;
}

export class EventHub {
  private readonly ring: Event[] = [];
  private readonly size: number;
  private readonly path: string;
  private readonly retryMs: number;
  private nextId = 1;
  private readonly listeners = new Set<(e: Event) => void>();
  private watch: NativeWatch | undefined;
  private monitor: NativeWatch | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Events published since the hub was made, by type and reason (for /metrics). */
  readonly counts = new Map<string, { type: Event['type']; reason: string; count: number }>();
  status: ChannelStatus = { state: 'stopped', message: null };
  monitorStatus: MonitorStatus = { state: 'stopped', message: null };

  constructor(options: EventHubOptions = {}) {
    this.size = options.historySize ?? 10_000;
    this.path = options.path ?? EVENTS_PATH;
    this.retryMs = options.retryMs ?? 5_000;
  }

  /** Starts reading the channel (and looking for it again while it is absent). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.open();
    this.openMonitor();
  }

  /** Stops reading; subscribers stay until they unsubscribe. */
  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.watch?.close();
    this.watch = undefined;
    this.monitor?.close();
    this.monitor = undefined;
    this.status = { state: 'stopped', message: null };
    this.monitorStatus = { state: 'stopped', message: null };
  }

  private openMonitor(): void {
    const { DeviceMonitor } = nativeBinding();
    this.monitorStatus = { state: 'opening', message: null };
    const monitor = new DeviceMonitor((err, changes) => {
      if (err) {
        monitor.close();
        const code = (err as Error & { code?: string }).code;
        this.monitorStatus = { state: code === 'EOPNOTSUPP' || code === 'EPROTONOSUPPORT' ? 'unsupported' : 'error', message: err.message };
        return;
      }
      if (this.monitorStatus.state === 'opening') this.monitorStatus = monitorOpened(release());
      for (const c of checked(RawChangeList, changes, 'device notifications')) this.publish(eventFromChange(c));
    });
    this.monitor = monitor;
  }

  private open(): void {
    if (!this.running) return;
    const { EventWatch } = nativeBinding();
    const watch = new EventWatch(this.path, (err, records) => {
      if (err) {
        watch.close();
        if (this.watch === watch) this.watch = undefined;
        const code = (err as Error & { code?: string }).code;
        this.status = { state: code === 'ENOENT' || code === 'ENODEV' ? 'absent' : 'error', message: err.message };
        if (this.running) {
          this.timer = setTimeout(() => this.open(), this.retryMs);
          this.timer.unref();
        }
        return;
      }
      this.status = { state: 'open', message: null };
      for (const r of checked(RawEventList, records, 'event batch')) {
        const e = eventFromRecord(r);
        if (e) this.publish(e);
      }
    });
    this.watch = watch;
    if (this.status.state === 'stopped') this.status = { state: 'opening', message: null };
  }

  /** Numbers an event, keeps it and hands it to every subscriber. */
  publish(e: Omit<Event, 'id'>): Event {
    const event: Event = { id: this.nextId++, ...e };
    const key = `${e.type}\u0000${e.reason}`;
    const c = this.counts.get(key) ?? { type: e.type, reason: e.reason, count: 0 };
    c.count++;
    this.counts.set(key, c);
    this.ring.push(event);
    if (this.ring.length > this.size) this.ring.shift();
    for (const fn of this.listeners) fn(event);
    return event;
  }

  /** Calls @p fn with every event from now on; the function returned stops it. */
  subscribe(fn: (e: Event) => void): () => void {
    this.listeners.add(fn);
    return () => { this.listeners.delete(fn); };
  }

  /** The first and last ids the history holds (null when it is empty). */
  range(): { oldest: number | null; newest: number | null } {
    return { oldest: this.ring[0]?.id ?? null, newest: this.ring[this.ring.length - 1]?.id ?? null };
  }

  /**
   * Events after @p id in order, @p limit at most, of @p type if given; missed: how many
   * after @p id the history no longer holds (it keeps the newest only).
   */
  after(id: number, limit = Infinity, type?: EventType): { events: Event[]; missed: number } {
    const oldest = this.ring[0]?.id ?? this.nextId;
    const missed = Math.max(0, Math.min(oldest, this.nextId) - 1 - id);
    const first = Math.max(0, id + 1 - oldest);
    const events: Event[] = [];
    for (let i = first; i < this.ring.length && events.length < limit; i++) {
      const e = this.ring[i]!;
      if (type === undefined || e.type === type) events.push(e);
    }
    return { events, missed };
  }
}
