// What the host's processes watch through /dev/ummunotify, read as a monitor reads DRM's
// clients: the module lists nothing itself (its notifier pays nothing for being watched), but
// each open file says in /proc/PID/fdinfo/FD what it watches and how much changed. A scan
// walks every process's descriptors for the device; scans are spaced so that they take a
// bounded share of the time, and between them callers get the last one.
import { readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';

import type { UmmunotifyFile, UmmunotifyProcess, UmmunotifyState } from './schema.js';

/** The fdinfo keys of a file and the fields they fill (driver/uapi/ummunotify.h). */
const KEYS = {
  'ummunotify-id': 'id',
  'ummunotify-owner-pid': 'pid',
  'ummunotify-released': 'released',
  'ummunotify-ranges': 'ranges',
  'ummunotify-max-ranges': 'max_ranges',
  'ummunotify-watched-bytes': 'watched_bytes',
  'ummunotify-changed': 'changed',
  'ummunotify-range-changes': 'range_changes',
  'ummunotify-generation': 'generation',
  'ummunotify-events-read': 'events_read',
} as const;

type Numeric = (typeof KEYS)[keyof typeof KEYS];

/**
 * A file's fields from its fdinfo text, or null when it is not a ummunotify file (no id: an
 * older module, or another device of the same name).
 */
export function parseFdinfo(text: string): Omit<UmmunotifyFile, 'command' | 'holders'> | null {
  const values: Partial<Record<Numeric, number>> = {};
  for (const line of text.split('\n')) {
    const m = /^(ummunotify-[a-z-]+):\s+(\d+)\s*$/.exec(line);
    if (!m) continue;
    const field = (KEYS as Record<string, Numeric | undefined>)[m[1]!];
    if (field) values[field] = Number(m[2]);
  }
  if (values.id === undefined) return null;
  return {
    id: values.id,
    pid: values.pid ?? 0,
    released: values.released === 1,
    ranges: values.ranges ?? 0,
    max_ranges: values.max_ranges ?? 0,
    watched_bytes: values.watched_bytes ?? 0,
    changed: values.changed ?? 0,
    range_changes: values.range_changes ?? 0,
    generation: values.generation ?? 0,
    events_read: values.events_read ?? 0,
  };
}

export interface ScanOptions {
  /** Where procfs is (default /proc). */
  procRoot?: string;
}

/** One walk of the processes: the files found, and the processes whose descriptors were not readable. */
export interface UmmunotifyScan {
  loaded: boolean;
  files: UmmunotifyFile[];
  unreadable: number;
}

const isErrno = (err: unknown, ...codes: string[]): boolean =>
  err instanceof Error && 'code' in err && typeof err.code === 'string' && codes.includes(err.code);

/** Runs @p fn over @p items, @p width at a time. */
async function inBatches<T>(items: readonly T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += width) await Promise.all(items.slice(i, i + width).map(fn));
}

/** Whether the module is loaded: its misc device is in /proc/misc. */
async function moduleLoaded(procRoot: string): Promise<boolean> {
  try {
    return /^\s*\d+ ummunotify$/m.test(await readFile(path.join(procRoot, 'misc'), 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Walks every process's descriptors for /dev/ummunotify and reads each one's fdinfo. A file
 * held through several descriptors (inherited, passed on) is listed once, with every process
 * holding it. Processes that end meanwhile are passed over; those whose descriptors this
 * process may not read are counted (run as root to see them all).
 */
export async function scanUmmunotify(options: ScanOptions = {}): Promise<UmmunotifyScan> {
  const procRoot = options.procRoot ?? '/proc';
  if (!(await moduleLoaded(procRoot))) return { loaded: false, files: [], unreadable: 0 };
  const pids = (await readdir(procRoot)).filter((name) => /^\d+$/.test(name));
  const byId = new Map<number, UmmunotifyFile>();
  let unreadable = 0;
  await inBatches(pids, 16, async (pid) => {
    const fdDir = path.join(procRoot, pid, 'fd');
    let fds: string[];
    try {
      fds = await readdir(fdDir);
    } catch (err) {
      if (isErrno(err, 'EACCES', 'EPERM')) unreadable++;
      return;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = await readlink(path.join(fdDir, fd));
      } catch {
        continue;
      }
      if (path.basename(target) !== 'ummunotify') continue;
      let file: ReturnType<typeof parseFdinfo>;
      try {
        file = parseFdinfo(await readFile(path.join(procRoot, pid, 'fdinfo', fd), 'utf8'));
      } catch {
        continue;
      }
      if (!file) continue;
      const seen = byId.get(file.id);
      if (seen) {
        if (!seen.holders.includes(Number(pid))) seen.holders.push(Number(pid));
      } else {
        byId.set(file.id, { ...file, command: null, holders: [Number(pid)] });
      }
    }
  });
  const files = [...byId.values()].sort((a, b) => a.id - b.id);
  await Promise.all(files.map(async (f) => {
    f.holders.sort((a, b) => a - b);
    if (f.pid === 0) return;
    try {
      f.command = (await readFile(path.join(procRoot, String(f.pid), 'comm'), 'utf8')).trim();
    } catch {
      // the owner is gone; its descriptor lives on in another process
    }
  }));
  return { loaded: true, files, unreadable };
}

/** What files, processes and totals sum alike. */
const SUMMED = ['ranges', 'watched_bytes', 'changed', 'range_changes', 'events_read'] as const;
type Sums = Pick<UmmunotifyFile, (typeof SUMMED)[number]>;

const noSums = (): Sums => ({ ranges: 0, watched_bytes: 0, changed: 0, range_changes: 0, events_read: 0 });

function addSums(into: Sums, from: Sums): void {
  for (const k of SUMMED) into[k] += from[k];
}

/** The files of each owning process, summed. */
export function byProcess(files: readonly UmmunotifyFile[]): UmmunotifyProcess[] {
  const out = new Map<number, UmmunotifyProcess>();
  for (const f of files) {
    let p = out.get(f.pid);
    if (!p) {
      p = { pid: f.pid, command: f.command, files: 0, ...noSums() };
      out.set(f.pid, p);
    }
    p.files++;
    addSums(p, f);
  }
  return [...out.values()].sort((a, b) => b.ranges - a.ranges || a.pid - b.pid);
}

export interface UmmunotifyViewOptions {
  /** How a scan is made (default: scanUmmunotify() of the host). */
  scan?: () => Promise<UmmunotifyScan>;
  /** A scan younger than this is served as it is (default 5 s). */
  maxAgeMs?: number;
  /** The largest share of the time scans may take (default 0.05). */
  dutyCycle?: number;
  /** A scan that takes longer fails (default 30 s): a process's /proc may not answer. */
  timeoutMs?: number;
}

/** Totals that only grow: what files counted, those gone included. */
interface Totals {
  range_changes: number;
  events_read: number;
}

/**
 * Walks a file may be missed in (a descriptor in flight between processes, a read that
 * failed) before it counts as closed: until then, one seen again is not counted twice.
 */
const GONE_AFTER_SCANS = 3;

/** However long the last walk took, the next may come this soon (its duty cycle aside). */
const MAX_SPACING_MS = 60_000;

/**
 * The last scan, made again when callers ask for a newer one: one scan at a time, and a scan
 * that took d ms is followed by the next no sooner than d / dutyCycle after it started.
 */
export class UmmunotifyView {
  private readonly scan: () => Promise<UmmunotifyScan>;
  private readonly maxAgeMs: number;
  private readonly dutyCycle: number;
  private readonly timeoutMs: number;
  private last: UmmunotifyState | undefined;
  private lastAt = -Infinity;
  private lastMs = 0;
  private running: Promise<UmmunotifyState> | undefined;
  /** The last values of each file seen, those of files missing from the last walks, and what closed files had counted. */
  private seen = new Map<number, Totals>();
  private missing = new Map<number, Totals & { walks: number }>();
  private retired: Totals = { range_changes: 0, events_read: 0 };
  /** Scans made, and the seconds they took, for the benchmark. */
  readonly counters = { scans: 0, scan_seconds: 0 };

  constructor(options: UmmunotifyViewOptions = {}) {
    this.scan = options.scan ?? (() => scanUmmunotify());
    this.maxAgeMs = options.maxAgeMs ?? 5_000;
    this.dutyCycle = options.dutyCycle ?? 0.05;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  /**
   * The state no older than @p maxAgeMs (default the view's), unless scanning that often
   * would exceed the duty cycle: then the last one. A scan that fails gives the last state
   * with its error, or rejects if there is none.
   */
  async state(maxAgeMs = this.maxAgeMs): Promise<UmmunotifyState> {
    const since = performance.now() - this.lastAt;
    const spacing = Math.min(this.lastMs / this.dutyCycle, MAX_SPACING_MS);
    if (this.last && (since <= maxAgeMs || since < spacing)) return this.last;
    this.running ??= this.rescan().finally(() => { this.running = undefined; });
    return this.running;
  }

  private async rescan(): Promise<UmmunotifyState> {
    const started = performance.now();
    this.counters.scans++;
    try {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`the walk of the processes took over ${this.timeoutMs / 1000} s`)), this.timeoutMs);
      });
      const scan = await Promise.race([this.scan(), late]).finally(() => clearTimeout(timer));
      this.last = this.summarize(scan, new Date().toISOString(), performance.now() - started);
      return this.last;
    } catch (err) {
      // a walk that failed (a slow host) leaves what the last one found, saying why it is old
      if (!this.last) throw err;
      this.last = { ...this.last, error: (err as Error).message };
      return this.last;
    } finally {
      this.lastMs = performance.now() - started;
      this.lastAt = started;
      this.counters.scan_seconds += this.lastMs / 1000;
    }
  }

  private summarize(scan: UmmunotifyScan, at: string, ms: number): UmmunotifyState {
    const now = new Map<number, Totals>();
    for (const f of scan.files) {
      const before = this.seen.get(f.id) ?? this.missing.get(f.id);
      this.missing.delete(f.id);
      // a smaller count under a known id is another file (the module was loaded again)
      if (before && (f.range_changes < before.range_changes || f.events_read < before.events_read)) this.retire(before);
      now.set(f.id, { range_changes: f.range_changes, events_read: f.events_read });
    }
    for (const [id, t] of this.seen) if (!now.has(id)) this.missing.set(id, { ...t, walks: 0 });
    for (const [id, t] of this.missing) {
      if (++t.walks < GONE_AFTER_SCANS) continue;
      this.missing.delete(id);
      this.retire(t);
    }
    this.seen = now;
    const totals = { ...this.retired };
    for (const t of [...now.values(), ...this.missing.values()]) {
      totals.range_changes += t.range_changes;
      totals.events_read += t.events_read;
    }
    const processes = byProcess(scan.files);
    const sums = noSums();
    for (const p of processes) addSums(sums, p);
    return {
      loaded: scan.loaded,
      error: null,
      scanned_at: at,
      scan_ms: Math.round(ms * 10) / 10,
      unreadable_processes: scan.unreadable,
      files: scan.files,
      processes,
      totals: {
        files: scan.files.length,
        processes: processes.length,
        ...sums,
        // these two keep what closed files had counted
        range_changes: totals.range_changes,
        events_read: totals.events_read,
      },
    };
  }

  private retire(t: Totals): void {
    this.retired.range_changes += t.range_changes;
    this.retired.events_read += t.events_read;
  }
}
