// The control plane's events: pfnic's event channel (/dev/pfnic-events), rdma netlink's
// device notifications and each device's verbs async events, each read by the addon on a
// thread of its own, numbered in order, kept in a bounded history, handed to subscribers
// (the SSE stream). Ids start at 1 in each run of the hub, told apart by the hub's epoch.
// Without pfnic loaded the channel is absent, and the hub looks again every few seconds;
// devices are looked for again every few seconds too.
import { readdir } from 'node:fs/promises';
import { release } from 'node:os';
import { Type } from 'typebox';

import { checked, nativeBinding, type NativeBinding } from './native.js';
import { RawAsyncEvent, RawDeviceChange, RawEventRecord, type Event, type EventType } from './schema.js';
import { hex } from './verbs-names.js';

const RawEventList = Type.Array(RawEventRecord);
const RawChangeList = Type.Array(RawDeviceChange);
const RawAsyncList = Type.Array(RawAsyncEvent);

/** The channel's path (the uapi header's PFNIC_EVENTS_PATH). */
export const EVENTS_PATH = '/dev/pfnic-events';

// enum pfnic_event_type, pfnic_event_reason and pfnic_memory_action, by value
const TYPES: Record<number, EventType> = { 1: 'lost', 2: 'invalidate', 3: 'migrate', 4: 'memory', 5: 'pinned' };
const REASONS = ['other', 'unmap', 'clear', 'protection_vma', 'protection_page', 'soft_dirty', 'release',
  'migrate', 'exclusive'];
const ACTIONS = ['', 'going_online', 'online', 'cancel_online', 'going_offline', 'offline', 'cancel_offline'];
const F_OFFLINING = 1;

/** An event as its source tells it, before the hub numbers it. */
export type UnnumberedEvent = Omit<Event, 'id' | 'epoch'>;

/** A record of the channel as an event of the model (numbered later, by the hub). */
export function eventFromRecord(r: RawEventRecord): UnnumberedEvent | null {
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
export function eventFromChange(c: RawDeviceChange, now = new Date()): UnnumberedEvent {
  return {
    time: now.toISOString(), type: 'device', reason: DEVICE_EVENTS[c.event] ?? `event_${c.event}`,
    device: c.device ?? null, port: c.port ?? null, netdev: c.netdev ?? null, mrn: null, lkey: null, pid: null,
    start: null, end: null, pages: null, node: null, block: null, offlining: false, lost: null,
  };
}

// enum ibv_event_type, by value
const ASYNC_EVENTS = ['cq_err', 'qp_fatal', 'qp_req_err', 'qp_access_err', 'comm_est', 'sq_drained', 'path_mig',
  'path_mig_err', 'device_fatal', 'port_active', 'port_err', 'lid_change', 'pkey_change', 'sm_change', 'srq_err',
  'srq_limit_reached', 'qp_last_wqe_reached', 'client_reregister', 'gid_change', 'wq_fatal'];
const DEVICE_FATAL = 8;

/** A verbs async event of @p device as an event of the model. */
export function eventFromAsync(device: string, a: RawAsyncEvent, now = new Date()): UnnumberedEvent {
  return {
    time: now.toISOString(), type: 'async', reason: ASYNC_EVENTS[a.event] ?? `event_${a.event}`,
    device, port: a.port ?? null, netdev: null, mrn: null, lkey: null, pid: null,
    start: null, end: null, pages: null, node: null, block: null, offlining: false, lost: null,
  };
}

/**
 * How a device's async events are read: opening; open; not_watched (its driver would make
 * the device's removal wait for the control plane's context, so none is kept open); ended
 * (the device reported DEVICE_FATAL: it is going away); error (looked at again later).
 */
export interface AsyncStatus {
  device: string;
  state: 'opening' | 'open' | 'not_watched' | 'ended' | 'error';
  message: string | null;
}

/** How the channel is: opening, open, absent (pfnic is not loaded) or failing (with why). */
export interface ChannelStatus {
  state: 'opening' | 'open' | 'absent' | 'error' | 'stopped';
  message: string | null;
}

export interface EventHubOptions {
  /** Events kept for replay and paging (default 10000); memory is taken as they come. */
  historySize?: number;
  /**
   * What tells this run's ids from another's: lower-case letters and digits, 16 at most
   * (default: the time the hub is made, in base 36, which grows from run to run on a host).
   */
  epoch?: string;
  /** The channel's path (default /dev/pfnic-events). */
  path?: string;
  /** How long to wait before looking for the channel again (default 5 s). */
  retryMs?: number;
  /** Where the RDMA devices are listed, for their async events (default /sys/class/infiniband). */
  devicesDir?: string;
  /** How often to look for devices to read async events of (default 10 s). */
  rescanMs?: number;
}

interface AsyncWatchEntry {
  watch: NativeWatch | undefined;
  status: AsyncStatus;
  /** When a scan first found the open watch's device no longer listed (ms since the epoch). */
  missingSince?: number;
}

/**
 * How long an open watch outlives its device's listing: the device's removal sends it
 * DEVICE_FATAL, which must not be cut off by a scan that heard of the removal first.
 */
const MISSING_GRACE_MS = 2000;

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

/**
 * The newest events, oldest first, in a ring: publishing is O(1) however many are kept.
 * Until it is full the array grows as events come (the engine's own amortized growth), so
 * a large setting costs memory only once that many events have come; from then on the
 * newest takes the oldest's slot and the head moves on.
 */
class EventRing {
  private readonly slots: Event[] = [];
  /** The slot of the oldest event: 0 until the ring is full. */
  private head = 0;

  constructor(private readonly size: number) {}

  get length(): number { return this.slots.length; }

  push(e: Event): void {
    if (this.slots.length < this.size) {
      this.slots.push(e);
      return;
    }
    this.slots[this.head] = e;
    this.head = (this.head + 1) % this.size;
  }

  /** The @p i th oldest event (0 is the oldest); @p i must be below length. */
  at(i: number): Event {
    return this.slots[(this.head + i) % this.slots.length]!;
  }
}

const EPOCH_FORM = /^[0-9a-z]{1,16}$/;

export class EventHub {
  private readonly ring: EventRing;
  /** This run's mark on its ids: an id is only meaningful with the epoch it was given in. */
  readonly epoch: string;
  private readonly path: string;
  private readonly retryMs: number;
  private nextId = 1;
  private readonly listeners = new Set<(e: Event) => void>();
  private watch: NativeWatch | undefined;
  private monitor: NativeWatch | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private readonly devicesDir: string;
  private readonly rescanMs: number;
  private rescanTimer: NodeJS.Timeout | undefined;
  private readonly asyncWatches = new Map<string, AsyncWatchEntry>();
  /** Events published since the hub was made, by type and reason (for /metrics). */
  readonly counts = new Map<string, { type: Event['type']; reason: string; count: number }>();
  status: ChannelStatus = { state: 'stopped', message: null };
  monitorStatus: MonitorStatus = { state: 'stopped', message: null };

  constructor(options: EventHubOptions = {}) {
    const size = options.historySize ?? 10_000;
    if (!Number.isSafeInteger(size) || size < 1) {
      throw new RangeError(`historySize must be a whole number of events, at least 1, not ${String(size)}`);
    }
    this.ring = new EventRing(size);
    this.epoch = options.epoch ?? Date.now().toString(36);
    if (!EPOCH_FORM.test(this.epoch)) {
      throw new RangeError(`epoch must be 1 to 16 lower-case letters and digits, not ${JSON.stringify(this.epoch)}`);
    }
    this.path = options.path ?? EVENTS_PATH;
    this.retryMs = options.retryMs ?? 5_000;
    this.devicesDir = options.devicesDir ?? '/sys/class/infiniband';
    this.rescanMs = options.rescanMs ?? 10_000;
  }

  /** Starts reading the channel (and looking for it again while it is absent). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.open();
    this.openMonitor();
    void this.scanAsync();
    this.rescanTimer = setInterval(() => { void this.scanAsync(); }, this.rescanMs);
    this.rescanTimer.unref();
  }

  /** Stops reading; subscribers stay until they unsubscribe. */
  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.watch?.close();
    this.watch = undefined;
    this.monitor?.close();
    this.monitor = undefined;
    clearInterval(this.rescanTimer);
    for (const entry of this.asyncWatches.values()) entry.watch?.close();
    this.asyncWatches.clear();
    this.status = { state: 'stopped', message: null };
    this.monitorStatus = { state: 'stopped', message: null };
  }

  /**
   * The addon, or undefined after telling @p failed why not: without it the server still runs
   * (its readiness says so), with nothing to listen with.
   */
  private addon(failed: (message: string) => void): NativeBinding | undefined {
    try {
      return nativeBinding();
    } catch (err) {
      failed((err as Error).message);
      return undefined;
    }
  }

  private openMonitor(): void {
    const DeviceMonitor = this.addon((message) => { this.monitorStatus = { state: 'error', message }; })?.DeviceMonitor;
    if (!DeviceMonitor) return;
    this.monitorStatus = { state: 'opening', message: null };
    const monitor = new DeviceMonitor((err, changes) => {
      if (err) {
        monitor.close();
        const code = (err as Error & { code?: string }).code;
        this.monitorStatus = { state: code === 'EOPNOTSUPP' || code === 'EPROTONOSUPPORT' ? 'unsupported' : 'error', message: err.message };
        return;
      }
      if (this.monitorStatus.state === 'opening') this.monitorStatus = monitorOpened(release());
      let rescan = false;
      for (const c of checked(RawChangeList, changes, 'device notifications')) {
        const e = this.publish(eventFromChange(c));
        if (e.reason === 'register' && e.device !== null) {
          // a device of a name seen before (its watch ended with it) is watched anew
          const old = this.asyncWatches.get(e.device);
          if (old && old.status.state !== 'open' && old.status.state !== 'opening') {
            old.watch?.close();
            this.asyncWatches.delete(e.device);
          }
        }
        rescan ||= e.reason === 'register' || e.reason === 'unregister' || e.reason === 'rename';
      }
      if (rescan) void this.scanAsync();
    });
    this.monitor = monitor;
  }

  /** How each device's async events are read, by device name. */
  asyncStatus(): AsyncStatus[] {
    return [...this.asyncWatches.values()].map((e) => e.status)
      .sort((a, b) => a.device.localeCompare(b.device));
  }

  /**
   * Reads the async events of every device listed that has no watch yet (or whose last
   * failed), and forgets devices no longer listed.
   */
  private async scanAsync(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.devicesDir);
    } catch {
      names = [];  // no RDMA subsystem: no devices
    }
    if (!this.running) return;
    const present = new Set(names);
    const now = Date.now();
    for (const [name, entry] of this.asyncWatches) {
      if (present.has(name)) {
        delete entry.missingSince;
        continue;
      }
      if (entry.status.state === 'open') {
        entry.missingSince ??= now;
        if (now - entry.missingSince < MISSING_GRACE_MS) {
          // looked at again once the grace is over (a renamed device sends no DEVICE_FATAL)
          setTimeout(() => { void this.scanAsync(); }, MISSING_GRACE_MS).unref();
          continue;
        }
      }
      entry.watch?.close();
      this.asyncWatches.delete(name);
    }
    for (const name of names) {
      const entry = this.asyncWatches.get(name);
      // an ended watch is opened again too: its device may have come back under the name
      // between two scans (the device notification and the watch's own end race), and on
      // a device still going away the open fails, to be tried again
      if (entry && entry.status.state !== 'error' && entry.status.state !== 'ended') continue;
      try {
        this.openAsync(name);
      } catch (err) {
        // no addon, no eventfd: said per device, looked at again on the next scan
        this.asyncWatches.set(name, { watch: undefined, status: { device: name, state: 'error', message: (err as Error).message } });
      }
    }
  }

  private openAsync(device: string): void {
    const { AsyncEventWatch } = nativeBinding();
    this.asyncWatches.get(device)?.watch?.close();
    const entry: AsyncWatchEntry = { watch: undefined, status: { device, state: 'opening', message: null } };
    this.asyncWatches.set(device, entry);
    const watch = new AsyncEventWatch(device, (err, events) => {
      // A device going away sends DEVICE_FATAL, and rdma netlink's unregister; a scan that
      // heard the latter first forgot this watch. What it read still happened: it is
      // published, only the status of a forgotten watch is left alone.
      if (this.asyncWatches.get(device) !== entry) {
        if (!err) for (const a of checked(RawAsyncList, events, 'async events')) this.publish(eventFromAsync(device, a));
        return;
      }
      if (err) {
        watch.close();
        entry.watch = undefined;
        const code = (err as Error & { code?: string }).code;
        entry.status = { device, state: code === 'EOPNOTSUPP' ? 'not_watched' : 'error', message: err.message };
        return;
      }
      if (entry.status.state === 'opening') entry.status = { device, state: 'open', message: null };
      for (const a of checked(RawAsyncList, events, 'async events')) {
        this.publish(eventFromAsync(device, a));
        if (a.event === DEVICE_FATAL) {
          // the native side closed its context, so that the removal can go on
          watch.close();
          entry.watch = undefined;
          entry.status = { device, state: 'ended', message: 'the device reported DEVICE_FATAL: it failed or is being removed' };
        }
      }
    });
    entry.watch = watch;
  }

  private open(): void {
    if (!this.running) return;
    const EventWatch = this.addon((message) => { this.status = { state: 'error', message }; })?.EventWatch;
    if (!EventWatch) return;
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
  publish(e: UnnumberedEvent): Event {
    const id = this.nextId++;
    const event: Event = { id, epoch: this.epoch, ...e };
    // an event handed in again (a copy of a published one) is numbered anew, not by its old id
    event.id = id;
    event.epoch = this.epoch;
    const key = `${e.type}\u0000${e.reason}`;
    const c = this.counts.get(key) ?? { type: e.type, reason: e.reason, count: 0 };
    c.count++;
    this.counts.set(key, c);
    this.ring.push(event);
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
    const held = this.ring.length;
    return held === 0 ? { oldest: null, newest: null } : { oldest: this.nextId - held, newest: this.nextId - 1 };
  }

  /**
   * Events after @p id in order, @p limit at most, of @p type if given; missed: how many
   * after @p id the history no longer holds (it keeps the newest only). Ids are consecutive,
   * so where to start is worked out, not searched for.
   */
  after(id: number, limit = Infinity, type?: EventType): { events: Event[]; missed: number } {
    if (!Number.isSafeInteger(id) || id < 0) throw new RangeError(`an event id is a whole number from 0, not ${String(id)}`);
    const held = this.ring.length;
    const oldest = this.nextId - held;
    const missed = Math.max(0, oldest - 1 - id);
    const events: Event[] = [];
    for (let i = Math.max(0, id + 1 - oldest); i < held && events.length < limit; i++) {
      const e = this.ring.at(i);
      if (type === undefined || e.type === type) events.push(e);
    }
    return { events, missed };
  }
}
