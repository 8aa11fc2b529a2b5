// The host's RDMA state kept in memory, so that what clients ask costs the kernel nothing:
// devices and the MRs of each, refreshed by a refresher per device with one dump in flight at
// a time, spaced so that dumping takes a bounded share of the time however many MRs there are,
// and brought forward by what the event channel says (an invalidation or a migration names
// its MR, which is then read alone) and by rdma netlink's device notifications. Each refresh
// is compared with what the model held: MRs added, removed or changing state are published
// as events, and the model's version moves when anything changed, for ETags.
import { listDevices } from './devices.js';
import type { EventHub } from './events.js';
import { MrNotFoundError, getMr, listMrs, registeredBytes } from './mrs.js';
import type { Device, Event, Mr, MrKind } from './schema.js';

/** Where the model reads the host: the kernel, through the addon (or, in tests, a stand-in). */
export interface ModelSource {
  devices(): Promise<Device[]>;
  /** Every MR of @p device (a dump). */
  mrs(device: string): Promise<Mr[]>;
  /** One MR, or null when it is not there (any more). */
  mr(device: string, mrn: number): Promise<Mr | null>;
}

export interface ModelOptions {
  /** Publishes MR changes, and brings refreshes forward on the events it carries. */
  hub?: EventHub | undefined;
  /** The shortest time between two dumps of a device's MRs (default 5 s). */
  intervalMs?: number;
  /** The largest share of the time a device's dumps may take (default 0.05). */
  dutyCycle?: number;
  /** How often the device list is read again without a notification (default 30 s). */
  devicesIntervalMs?: number;
  /** MRs named by events are read alone up to this many at once; more make a dump (default 32). */
  singleLimit?: number;
  /** How long events are gathered before the MRs they name are read (default 200 ms). */
  settleMs?: number;
}

/** How a device's MRs are being kept. */
export interface DeviceRefresh {
  device: string;
  /** MRs the model holds. */
  mrs: number;
  /** When its last dump ended (ms since the epoch); null before the first. */
  refreshed_at: number | null;
  /** How long its last dump took (ms). */
  dump_ms: number | null;
  /** Why its last dump failed; null when it did not. */
  error: string | null;
}

/** The MRs of a device of one kind, summed. */
export interface MrTotals {
  device: string;
  kind: MrKind;
  mrs: number;
  /** Bytes registered (implicit MRs, which span all memory, left out). */
  bytes: number;
  mapped_pages: number;
  suspended_pages: number;
  /**
   * Each per-MR counter summed over the MRs the model holds and those it saw go, so that the
   * sums only grow (what an MR counted after its last read and before it went is not seen).
   */
  counters: Record<string, number>;
}

/** What the model has cost the kernel since it started, for /metrics and the benchmark. */
export interface ModelCounters {
  dumps: number;
  dump_seconds: number;
  single_queries: number;
  device_queries: number;
}

interface DeviceState {
  name: string;
  mrs: Map<number, Mr>;
  refreshedAt: number | null;
  dumpMs: number | null;
  error: string | null;
  /** The dump in flight, if any; a refresh asked for meanwhile runs once it ends. */
  dumping: Promise<void> | undefined;
  again: boolean;
  timer: NodeJS.Timeout | undefined;
  /** MRs named by events since the last read of them. */
  dirty: Set<number>;
  settle: NodeJS.Timeout | undefined;
  gone: boolean;
  /**
   * Whether what reads find is news to clients: not until the first dump of a device that was
   * there when the model started (its MRs were there before); at once for a device that came later.
   */
  loaded: boolean;
  /** Settles when the device's first dump has ended, well or not. */
  first: Promise<void>;
  /** When the last dump started (performance.now()), for spacing the next. */
  dumpStartedAt: number;
  /**
   * Reads of the device are numbered as they start; an MR keeps the number of the read its
   * entry came from, so that no read overwrites what a later one found (a dump is slow: a
   * single read that started after it knows better).
   */
  readSeq: number;
  mrSeq: Map<number, number>;
  /** The counters of the MRs seen to go, by kind. */
  retired: Map<MrKind, Record<string, number>>;
}

type MrChange = 'added' | 'removed' | 'changed';

const sameJson = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** Whether two reads of an MR differ in anything a client sees. */
function mrDiffers(a: Mr, b: Mr): boolean {
  return a.state !== b.state || a.mapped_pages !== b.mapped_pages || a.suspended_pages !== b.suspended_pages ||
    a.translation_tables !== b.translation_tables || a.last_invalidation !== b.last_invalidation ||
    a.owner !== b.owner || a.lkey !== b.lkey || a.rkey !== b.rkey || a.length !== b.length || a.iova !== b.iova ||
    !sameJson(a.counters, b.counters) || !sameJson(a.pinned_blocks, b.pinned_blocks) || !sameJson(a.details, b.details);
}

/** The same MR, not another registered under a reused number. */
const sameRegistration = (a: Mr, b: Mr): boolean => a.lkey === b.lkey && a.pid === b.pid && a.length === b.length;

export class HostModel {
  private readonly source: ModelSource;
  private readonly hub: EventHub | undefined;
  private readonly intervalMs: number;
  private readonly dutyCycle: number;
  private readonly devicesIntervalMs: number;
  private readonly singleLimit: number;
  private readonly settleMs: number;
  private readonly states = new Map<string, DeviceState>();
  private deviceList: Device[] = [];
  private devicesError: string | null = null;
  private devicesReadAt = 0;
  private devicesReading: Promise<void> | undefined;
  private devicesAgain = false;
  private devicesTimer: NodeJS.Timeout | undefined;
  /** Whether the devices there at the start have refreshers: MRs of devices after them are news. */
  private devicesSynced = false;
  private unsubscribe: (() => void) | undefined;
  private running = false;
  private first: Promise<void> | undefined;
  private sorted: Mr[] | undefined;
  private summed: MrTotals[] | undefined;
  private changeListeners = new Set<() => void>();
  /** Moves whenever anything the model holds changes. */
  version = 0;
  readonly counters: ModelCounters = { dumps: 0, dump_seconds: 0, single_queries: 0, device_queries: 0 };

  constructor(source: ModelSource, options: ModelOptions = {}) {
    this.source = source;
    this.hub = options.hub;
    this.intervalMs = options.intervalMs ?? 5_000;
    this.dutyCycle = options.dutyCycle ?? 0.05;
    this.devicesIntervalMs = options.devicesIntervalMs ?? 30_000;
    this.singleLimit = options.singleLimit ?? 32;
    this.settleMs = options.settleMs ?? 200;
  }

  /** Starts keeping the model; ready() says when the first reads are in. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.unsubscribe = this.hub?.subscribe((e) => this.onEvent(e));
    // started again after stop(): the refreshers it stopped go on
    for (const s of this.states.values()) this.plan(s);
    this.first = this.readDevices();
    this.devicesTimer = setInterval(() => { void this.readDevices(); }, this.devicesIntervalMs);
    this.devicesTimer.unref();
  }

  stop(): void {
    this.running = false;
    this.unsubscribe?.();
    clearInterval(this.devicesTimer);
    for (const s of this.states.values()) {
      clearTimeout(s.timer);
      clearTimeout(s.settle);
    }
  }

  /** Resolves once the device list has been read once (or failed to be). */
  async ready(): Promise<void> {
    if (!this.first) this.start();
    await this.first;
  }

  /** Resolves once, besides, each device's MRs have been dumped once (or failed to be). */
  async mrsReady(): Promise<void> {
    await this.ready();
    await Promise.all([...this.states.values()].map((s) => s.first));
  }

  /**
   * Reads again each device's MRs read longer than @p maxAgeMs ago, as far as the devices'
   * spacing allows (clients asking for fresh data never make dumps take more than dutyCycle
   * of the time): a device dumped too recently keeps what it has, or gives what the dump in
   * flight finds.
   */
  async refresh(maxAgeMs: number): Promise<void> {
    await this.mrsReady();
    const now = Date.now();
    await Promise.all([...this.states.values()].map((s) => {
      if (s.refreshedAt !== null && now - s.refreshedAt < maxAgeMs) return undefined;
      if (performance.now() - s.dumpStartedAt >= this.spacing(s)) return this.dump(s);
      return s.dumping;
    }));
  }

  /** Reads the device list again if it was read longer than @p maxAgeMs ago (joining a read in flight). */
  async refreshDevices(maxAgeMs: number): Promise<void> {
    await this.ready();
    if (Date.now() - this.devicesReadAt >= maxAgeMs) await this.readDevices();
  }

  /** How long ago the least recently read device's MRs were read (ms; 0 before any). */
  age(): number {
    let oldest = Infinity;
    for (const s of this.states.values()) if (s.refreshedAt !== null) oldest = Math.min(oldest, s.refreshedAt);
    return oldest === Infinity ? 0 : Date.now() - oldest;
  }

  /** Calls @p fn after every change of the model; the function returned stops it. */
  onChange(fn: () => void): () => void {
    this.changeListeners.add(fn);
    return () => { this.changeListeners.delete(fn); };
  }

  /** Whether the device list has been read once. */
  started(): boolean {
    return this.devicesReadAt > 0;
  }

  devices(): readonly Device[] {
    return this.deviceList;
  }

  /** Every MR the model holds, by device and number. */
  mrs(): readonly Mr[] {
    this.sorted ??= [...this.states.values()].sort((a, b) => a.name.localeCompare(b.name))
      .flatMap((s) => [...s.mrs.values()].sort((a, b) => a.mrn - b.mrn));
    return this.sorted;
  }

  /** One MR as the model holds it. */
  mr(device: string, mrn: number): Mr | undefined {
    return this.states.get(device)?.mrs.get(mrn);
  }

  /** How each device's MRs are kept, and why the device list could not be read, if it could not. */
  status(): { devices_error: string | null; refresh: DeviceRefresh[] } {
    return {
      devices_error: this.devicesError,
      refresh: [...this.states.values()].sort((a, b) => a.name.localeCompare(b.name)).map((s) => ({
        device: s.name, mrs: s.mrs.size, refreshed_at: s.refreshedAt, dump_ms: s.dumpMs, error: s.error,
      })),
    };
  }

  /**
   * Reads one MR from the kernel now and keeps what it says; null if it is not there.
   * Rejects only when the kernel could not be asked.
   */
  async readMr(device: string, mrn: number): Promise<Mr | null> {
    this.counters.single_queries++;
    const s = this.states.get(device);
    const seq = s ? ++s.readSeq : 0;
    const mr = await this.source.mr(device, mrn);
    if (s && !s.gone && this.states.get(device) === s) this.applyOne(s, mrn, mr, seq);
    return mr;
  }

  /** The MRs summed by device and kind. */
  totals(): readonly MrTotals[] {
    if (this.summed) return this.summed;
    const out = new Map<string, MrTotals>();
    const entry = (device: string, kind: MrKind): MrTotals => {
      const key = `${device}\u0000${kind}`;
      let e = out.get(key);
      if (!e) {
        e = { device, kind, mrs: 0, bytes: 0, mapped_pages: 0, suspended_pages: 0, counters: {} };
        out.set(key, e);
      }
      return e;
    };
    const add = (into: Record<string, number>, from: Record<string, number>): void => {
      for (const [name, v] of Object.entries(from)) into[name] = (into[name] ?? 0) + v;
    };
    for (const s of this.states.values()) {
      for (const [kind, counters] of s.retired) add(entry(s.name, kind).counters, counters);
      for (const m of s.mrs.values()) {
        const e = entry(s.name, m.kind);
        e.mrs++;
        e.bytes += registeredBytes(m) ?? 0;
        e.mapped_pages += m.mapped_pages ?? 0;
        e.suspended_pages += m.suspended_pages ?? 0;
        add(e.counters, m.counters);
      }
    }
    this.summed = [...out.values()].sort((a, b) => a.device.localeCompare(b.device) || a.kind.localeCompare(b.kind));
    return this.summed;
  }

  /** Keeps what a departing MR counted in its device's sums. */
  private retire(s: DeviceState, mr: Mr): void {
    const into = s.retired.get(mr.kind) ?? {};
    for (const [name, v] of Object.entries(mr.counters)) into[name] = (into[name] ?? 0) + v;
    s.retired.set(mr.kind, into);
  }

  private changed(): void {
    this.version++;
    this.sorted = undefined;
    this.summed = undefined;
    for (const fn of this.changeListeners) fn();
  }

  private publish(change: MrChange, mr: Mr): void {
    this.hub?.publish({
      time: new Date().toISOString(), type: 'mr', reason: change, device: mr.device, port: null, netdev: null,
      mrn: mr.mrn, lkey: mr.lkey, pid: mr.pid, start: null, end: null, pages: mr.mapped_pages, node: null,
      block: null, offlining: false, lost: null,
    });
  }

  private onEvent(e: Event): void {
    if (e.type === 'device' || (e.type === 'async' && /^(port_|gid_|lid_|pkey_|device_fatal)/.test(e.reason))) {
      void this.readDevices();
      return;
    }
    if ((e.type === 'invalidate' || e.type === 'migrate' || e.type === 'pinned') && e.device !== null && e.mrn !== null) {
      const s = this.states.get(e.device);
      if (!s || s.gone) return;
      s.dirty.add(e.mrn);
      s.settle ??= setTimeout(() => { s.settle = undefined; void this.readDirty(s); }, this.settleMs);
    }
  }

  /** Reads the device list (one read in flight; one more after it if asked meanwhile). */
  private readDevices(): Promise<void> {
    if (this.devicesReading) {
      this.devicesAgain = true;
      return this.devicesReading;
    }
    this.devicesReading = (async () => {
      do {
        this.devicesAgain = false;
        this.counters.device_queries++;
        try {
          const devices = await this.source.devices();
          this.devicesReadAt = Date.now();
          this.devicesError = null;
          if (!sameJson(devices, this.deviceList)) {
            this.deviceList = devices;
            this.changed();
          }
          this.syncDevices(devices.map((d) => d.name));
        } catch (err) {
          this.devicesError = (err as Error).message;
        }
      } while (this.devicesAgain && this.running);
      this.devicesReading = undefined;
    })();
    return this.devicesReading;
  }

  /** Starts a refresher for each new device (its first dump under way), drops those gone. */
  private syncDevices(names: string[]): void {
    const present = new Set(names);
    for (const [name, s] of this.states) {
      if (present.has(name)) continue;
      s.gone = true;
      clearTimeout(s.timer);
      clearTimeout(s.settle);
      this.states.delete(name);
      for (const mr of s.mrs.values()) this.publish('removed', mr);
      if (s.mrs.size) this.changed();
    }
    for (const name of names) {
      if (this.states.has(name)) continue;
      const s: DeviceState = {
        name, mrs: new Map(), refreshedAt: null, dumpMs: null, error: null, dumping: undefined, again: false,
        // a device that comes (or is renamed) later brings MRs clients have not heard of
        timer: undefined, dirty: new Set(), settle: undefined, gone: false, loaded: this.devicesSynced,
        retired: new Map(), first: Promise.resolve(), dumpStartedAt: -Infinity, readSeq: 0, mrSeq: new Map(),
      };
      this.states.set(name, s);
      s.first = this.dump(s);
    }
    this.devicesSynced = true;
  }

  /** How long after a dump's start the next may start: dumps take at most dutyCycle of the time. */
  private spacing(s: DeviceState): number {
    return (s.dumpMs ?? 0) / this.dutyCycle;
  }

  /** Plans the device's next dump no sooner than its spacing allows (and, unless @p soon, than intervalMs). */
  private plan(s: DeviceState, soon = false): void {
    if (!this.running || s.gone || s.dumping) return;
    clearTimeout(s.timer);
    const since = performance.now() - s.dumpStartedAt;
    const wait = Math.max(0, Math.max(soon ? 0 : this.intervalMs, this.spacing(s)) - since);
    s.timer = setTimeout(() => { void this.dump(s); }, wait);
    s.timer.unref();
  }

  /**
   * Dumps a device's MRs: one dump in flight; asked for meanwhile, one more after it (what
   * it returns is then no older than the call). The next is planned when it ends.
   */
  private dump(s: DeviceState): Promise<void> {
    if (s.dumping) {
      s.again = true;
      return s.dumping;
    }
    clearTimeout(s.timer);
    const run = async (): Promise<void> => {
      try {
        do {
          s.again = false;
          s.dirty.clear();
          const seq = ++s.readSeq;
          const started = performance.now();
          const startedAt = Date.now();
          s.dumpStartedAt = started;
          this.counters.dumps++;
          try {
            const mrs = await this.source.mrs(s.name);
            if (s.gone) return;
            this.applyDump(s, mrs, seq);
            s.error = null;
            // fresh as of when it started: what changed during it may be missing
            s.refreshedAt = startedAt;
          } catch (err) {
            s.error = (err as Error).message;
          }
          s.dumpMs = performance.now() - started;
          this.counters.dump_seconds += s.dumpMs / 1000;
        } while (s.again && this.running && !s.gone);
      } finally {
        // cleared before the promise settles: a dump() asked for from here on starts anew
        s.dumping = undefined;
        this.plan(s);
      }
    };
    s.dumping = run();
    return s.dumping;
  }

  /** Reads the MRs events named: alone when few, with a dump (as soon as its spacing allows) when many. */
  private async readDirty(s: DeviceState): Promise<void> {
    if (s.gone || !this.running || s.dirty.size === 0) return;
    if (s.dumping) {
      // named while a dump runs, which may have read them before the change: read after it
      void s.dumping.then(() => this.readDirty(s));
      return;
    }
    if (s.dirty.size > this.singleLimit) {
      this.plan(s, true);
      return;
    }
    const mrns = [...s.dirty];
    s.dirty.clear();
    for (const mrn of mrns) {
      this.counters.single_queries++;
      const seq = ++s.readSeq;
      try {
        const mr = await this.source.mr(s.name, mrn);
        if (s.gone) return;
        this.applyOne(s, mrn, mr, seq);
      } catch (err) {
        // the next dump reads it; the device's error says why this failed meanwhile
        s.error = (err as Error).message;
      }
    }
  }

  private applyOne(s: DeviceState, mrn: number, mr: Mr | null, seq: number): void {
    // a read that started before the one this MR's entry came from knows less
    if ((s.mrSeq.get(mrn) ?? 0) > seq) return;
    s.mrSeq.set(mrn, seq);
    const old = s.mrs.get(mrn);
    // before the first dump, what a read finds was there before: nothing to announce
    const quiet = !s.loaded;
    if (mr === null) {
      if (!old) return;
      s.mrs.delete(mrn);
      this.retire(s, old);
      if (!quiet) this.publish('removed', old);
    } else if (!old) {
      s.mrs.set(mrn, mr);
      if (!quiet) this.publish('added', mr);
    } else if (!sameRegistration(old, mr)) {
      s.mrs.set(mrn, mr);
      this.retire(s, old);
      if (!quiet) {
        this.publish('removed', old);
        this.publish('added', mr);
      }
    } else if (mrDiffers(old, mr)) {
      s.mrs.set(mrn, mr);
      if (old.state !== mr.state && !quiet) this.publish('changed', mr);
    } else {
      return;
    }
    this.changed();
  }

  private applyDump(s: DeviceState, mrs: Mr[], seq: number): void {
    const found = new Map(mrs.map((m) => [m.mrn, m]));
    const newer = (mrn: number): boolean => (s.mrSeq.get(mrn) ?? 0) > seq;
    let any = false;
    const quiet = !s.loaded;
    // what the dump did not find is gone, but for MRs a later read found
    for (const [mrn, old] of [...s.mrs]) {
      if (found.has(mrn) || newer(mrn)) continue;
      s.mrs.delete(mrn);
      s.mrSeq.delete(mrn);
      any = true;
      this.retire(s, old);
      if (!quiet) this.publish('removed', old);
    }
    for (const [mrn, mr] of found) {
      if (newer(mrn)) continue;
      const old = s.mrs.get(mrn);
      s.mrSeq.set(mrn, seq);
      if (!old || !sameRegistration(old, mr)) {
        if (old) this.retire(s, old);
        s.mrs.set(mrn, mr);
        any = true;
        if (!quiet) {
          if (old) this.publish('removed', old);
          this.publish('added', mr);
        }
      } else if (mrDiffers(old, mr)) {
        s.mrs.set(mrn, mr);
        any = true;
        if (old.state !== mr.state && !quiet) this.publish('changed', mr);
      }
    }
    // entries read singly and gone meanwhile have no entry and no number to keep
    for (const mrn of [...s.mrSeq.keys()]) if (!s.mrs.has(mrn) && !newer(mrn)) s.mrSeq.delete(mrn);
    s.loaded = true;
    if (any) this.changed();
  }
}

/** The host's kernel, through the addon: the source the server's model reads. */
export const kernelSource: ModelSource = {
  devices: () => listDevices(),
  mrs: (device) => listMrs({ device }),
  mr: async (device, mrn) => {
    try {
      return await getMr(device, mrn);
    } catch (err) {
      if (err instanceof MrNotFoundError) return null;
      throw err;
    }
  },
};
