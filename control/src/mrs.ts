// The memory regions of every RDMA device on this host (pfnic, rxe, hardware), from rdma
// netlink: what `rdma resource show mr -dd` and `rdma statistic mr` say of each, in the
// model's shape (schema.ts: Mr).
import { readFile } from 'node:fs/promises';
import { Type } from 'typebox';

import { checked, nativeBinding, queryError } from './native.js';
import { RawMr, RawMrDevice, type Mr, type MrKind } from './schema.js';
import { hex } from './verbs-names.js';

const RawMrDeviceList = Type.Array(RawMrDevice);

/** An MR that is not there (any more), or a device that has none of that number. */
export class MrNotFoundError extends Error {
  readonly code = 'ENOENT';
  constructor(readonly device: string, readonly mrn: number) {
    super(`no MR ${mrn} on RDMA device "${device}"`);
    this.name = 'MrNotFoundError';
  }
}

/** The numbers of a kernel bitmap list ("0-3,40"); null if it is not one. */
export function parseRangeList(text: string): number[] | null {
  if (text === '') return [];
  const out: number[] = [];
  for (const part of text.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) return null;
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    if (last < first || last - first > 1 << 20) return null;
    for (let n = first; n <= last; n++) out.push(n);
  }
  return out;
}

/** A driver detail or counter as a JSON number when it fits exactly, else as text. */
function jsonValue(v: string | bigint): string | number {
  if (typeof v === 'string') return v;
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v.toString();
}

function kindOf(details: Record<string, string | number>): MrKind {
  // pfnic's drv_odp; other drivers do not say
  const odp = details.odp;
  return odp === 'pinned' || odp === 'explicit' || odp === 'implicit' ? odp : 'unknown';
}

function intDetail(details: Record<string, string | number>, name: string): number | null {
  const v = details[name];
  return typeof v === 'number' ? v : null;
}

function strDetail(details: Record<string, string | number>, name: string): string | null {
  const v = details[name];
  return typeof v === 'string' ? v : null;
}

/** A process's command name, as `rdma` prints it next to its pid; null once it is gone. */
async function commandName(pid: number): Promise<string | null> {
  try {
    return (await readFile(`/proc/${pid}/comm`, 'utf8')).trim();
  } catch {
    return null;
  }
}

/** Command names by pid, read once per listing (a process often has many MRs). */
type CommandNames = Map<number, Promise<string | null>>;

async function mrFromRaw(device: string, raw: RawMr, names: CommandNames): Promise<Mr> {
  const details: Record<string, string | number> = {};
  for (const d of raw.details) details[d.name] = jsonValue(d.value);
  const counters: Record<string, number> = {};
  for (const [name, value] of Object.entries(raw.counters)) counters[name] = Number(value);
  const blocks = strDetail(details, 'pinned_blocks');
  return {
    device,
    mrn: raw.mrn,
    kind: kindOf(details),
    length: raw.length === undefined ? null : hex(raw.length),
    iova: raw.iova === undefined ? null : hex(raw.iova),
    lkey: raw.lkey === undefined ? null : hex(raw.lkey),
    rkey: raw.rkey === undefined ? null : hex(raw.rkey),
    pdn: raw.pdn ?? null,
    pid: raw.pid ?? null,
    owner: raw.kern_name ?? (raw.pid === undefined ? null : await ownerName(names, raw.pid)),
    state: strDetail(details, 'state'),
    mapped_pages: intDetail(details, 'mapped_pages'),
    suspended_pages: intDetail(details, 'suspended_pages'),
    translation_tables: intDetail(details, 'translation_tables'),
    last_invalidation: strDetail(details, 'last_invalidation'),
    pinned_blocks: blocks === null ? null : parseRangeList(blocks),
    counters,
    details,
  };
}

function ownerName(names: CommandNames, pid: number): Promise<string | null> {
  let name = names.get(pid);
  if (!name) {
    name = commandName(pid);
    names.set(pid, name);
  }
  return name;
}

/** What to list: MRs of one device, of one process, of one kind (all unless given). */
export interface MrFilter {
  device?: string;
  pid?: number;
  kind?: MrKind;
}

/** Every MR of every RDMA device on this host (or those the filter keeps), queried afresh. */
export async function listMrs(filter: MrFilter = {}): Promise<Mr[]> {
  let raw: unknown;
  try {
    raw = await nativeBinding().queryMrs(filter.device);
  } catch (err) {
    throw queryError(err);
  }
  const out: Mr[] = [];
  const names: CommandNames = new Map();
  for (const dev of checked(RawMrDeviceList, raw, 'MR list')) {
    if (filter.device !== undefined && dev.device !== filter.device) continue;
    for (const r of dev.mrs) {
      if (filter.pid !== undefined && r.pid !== filter.pid) continue;
      const mr = await mrFromRaw(dev.device, r, names);
      if (filter.kind === undefined || mr.kind === filter.kind) out.push(mr);
    }
  }
  return out;
}

/**
 * One MR by device and number, from the kernel's query of that MR alone (listing every MR
 * of a device to find one took seconds with 10,000 of them). MrNotFoundError if there is
 * no such MR, or no such device (it has no MR of that number either); TypeError or
 * RangeError for arguments that cannot name one.
 */
export async function getMr(device: string, mrn: number): Promise<Mr> {
  let raw: unknown;
  try {
    raw = await nativeBinding().queryMr(device, mrn);
  } catch (err) {
    if (err instanceof TypeError || err instanceof RangeError) throw err;
    const code = (err as { code?: unknown }).code;
    if (code === 'ENOENT' || code === 'ENODEV') throw new MrNotFoundError(device, mrn);
    throw queryError(err);
  }
  return mrFromRaw(device, checked(RawMr, raw, 'MR'), new Map());
}

/**
 * The bytes an MR registers, or null for one that spans all memory: an implicit ODP MR, or
 * one whose driver does not say its kind but whose length is the whole address space (as an
 * implicit MR's is), which would swamp any sum.
 */
export function registeredBytes(mr: Pick<Mr, 'kind' | 'length'>): number | null {
  if (mr.kind === 'implicit' || mr.length === null || mr.length === '0xffffffffffffffff') return null;
  return Number.parseInt(mr.length.slice(2), 16);
}
