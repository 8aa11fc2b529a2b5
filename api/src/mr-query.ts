// GET /v1/mrs over the model's MRs: filters, a sort order, a page after a cursor, the fields
// asked for. Pages are cut by keyset (the sort value, the device and the MR number of the last
// MR served), so a client paging through a host whose MRs come and go skips none that stayed
// and sees none twice, as long as the values sorted by stay put; sorted by what moves (a
// counter, pages mapped), an MR whose value moves past the cursor may be met twice or missed.
import type { Mr, MrKind } from '../../control/src/index.js';

/** The fields an MR list can be sorted by, besides any per-MR counter's name. */
export const SORT_FIELDS = ['device', 'mrn', 'kind', 'state', 'length', 'pid', 'owner', 'pdn', 'mapped_pages',
  'suspended_pages', 'translation_tables'] as const;

/** The fields a client may pick; device and mrn always come. */
export const MR_FIELDS = ['device', 'mrn', 'kind', 'length', 'iova', 'lkey', 'rkey', 'pdn', 'pid', 'owner', 'state',
  'mapped_pages', 'suspended_pages', 'translation_tables', 'last_invalidation', 'pinned_blocks', 'counters', 'details'] as const;

export interface MrListQuery {
  device?: string | undefined;
  pid?: number | undefined;
  kind?: MrKind | undefined;
  state?: string | undefined;
  /** A field or counter name; "-" before it sorts from the largest. */
  sort?: string | undefined;
  limit?: number | undefined;
  cursor?: string | undefined;
  /** Comma-separated field names. */
  fields?: string | undefined;
}

/** A query a client got wrong; the message says how. */
export class MrQueryError extends Error {
  override name = 'MrQueryError';
}

type SortValue = string | number | bigint | null;

function sortValue(mr: Mr, key: string): SortValue {
  if (key === 'length') return mr.length === null ? null : BigInt(mr.length);
  if ((SORT_FIELDS as readonly string[]).includes(key)) return (mr as unknown as Record<string, string | number | null>)[key] ?? null;
  return Object.hasOwn(mr.counters, key) ? mr.counters[key]! : null;
}

/** Orders two sort values: nulls after everything else, whichever way the sort goes. */
function compareValues(a: SortValue, b: SortValue, descending: boolean): number {
  if (a === null || b === null) return a === b ? 0 : a === null ? 1 : -1;
  const c = a < b ? -1 : a > b ? 1 : 0;
  return descending ? -c : c;
}

interface Position { value: SortValue; device: string; mrn: number }

function compareAt(a: Position, b: Position, descending: boolean): number {
  return compareValues(a.value, b.value, descending) || a.device.localeCompare(b.device) || a.mrn - b.mrn;
}

// A cursor is the position of the last MR served, opaque to clients: base64url of JSON,
// bigints (lengths) as {"n": "..."}
function encodeCursor(p: Position, sort: string): string {
  const value = typeof p.value === 'bigint' ? { n: p.value.toString() } : p.value;
  return Buffer.from(JSON.stringify([sort, value, p.device, p.mrn])).toString('base64url');
}

function decodeCursor(text: string, sort: string): Position {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw new MrQueryError('cursor: not one this server gave (pass the "next" link of a page as it is)');
  }
  if (!Array.isArray(parsed) || parsed.length !== 4 || typeof parsed[2] !== 'string' || !Number.isInteger(parsed[3])) {
    throw new MrQueryError('cursor: not one this server gave (pass the "next" link of a page as it is)');
  }
  const [cursorSort, raw, device, mrn] = parsed as [unknown, unknown, string, number];
  if (cursorSort !== sort) throw new MrQueryError(`cursor: it is of a listing sorted by "${String(cursorSort)}", not "${sort}"`);
  let value: SortValue;
  if (raw !== null && typeof raw === 'object' && typeof (raw as { n?: unknown }).n === 'string' &&
    /^\d+$/.test((raw as { n: string }).n)) {
    value = BigInt((raw as { n: string }).n);
  } else if (raw === null || typeof raw === 'string' || typeof raw === 'number') {
    value = raw;
  } else {
    throw new MrQueryError('cursor: not one this server gave (pass the "next" link of a page as it is)');
  }
  return { value, device, mrn };
}

export interface MrPage {
  /** The MRs of the page, with the fields asked for. */
  items: Partial<Mr>[];
  /** How many MRs match the filters, over all pages. */
  total: number;
  /** The cursor of the next page; null on the last. */
  next: string | null;
}

/** Sorted copies of the model's list, by sort order, for the model's version they were made at. */
export class MrSorter {
  private version = -1;
  private readonly cache = new Map<string, Mr[]>();

  sorted(mrs: readonly Mr[], version: number, sort: string): Mr[] {
    if (version !== this.version) {
      this.cache.clear();
      this.version = version;
    }
    let list = this.cache.get(sort);
    if (!list) {
      const descending = sort.startsWith('-');
      const key = descending ? sort.slice(1) : sort;
      const keyed = mrs.map((mr) => ({ mr, at: { value: sortValue(mr, key), device: mr.device, mrn: mr.mrn } }));
      keyed.sort((a, b) => compareAt(a.at, b.at, descending));
      list = keyed.map((k) => k.mr);
      this.cache.set(sort, list);
    }
    return list;
  }
}

/** Checks a sort order against the fields and the counters MRs have. */
export function checkSort(sort: string, mrs: readonly Mr[]): void {
  const key = sort.replace(/^-/, '');
  if ((SORT_FIELDS as readonly string[]).includes(key)) return;
  if (mrs.some((m) => Object.hasOwn(m.counters, key))) return;
  throw new MrQueryError(`sort: "${key}" is neither a field (${SORT_FIELDS.join(', ')}) nor a counter of these MRs`);
}

/** The fields of @p spec, checked; undefined for all. */
export function parseFields(spec: string | undefined): Set<string> | undefined {
  if (spec === undefined) return undefined;
  const fields = new Set(spec.split(',').map((f) => f.trim()).filter(Boolean));
  const unknown = [...fields].filter((f) => !(MR_FIELDS as readonly string[]).includes(f));
  if (unknown.length) throw new MrQueryError(`fields: ${unknown.map((f) => `"${f}"`).join(', ')} not an MR field (${MR_FIELDS.join(', ')})`);
  fields.add('device');
  fields.add('mrn');
  return fields;
}

const pick = (mr: Mr, fields: Set<string>): Partial<Mr> =>
  Object.fromEntries(Object.entries(mr).filter(([k]) => fields.has(k))) as Partial<Mr>;

/** One page of @p sorted (already in the query's order), filtered, after the query's cursor. */
export function mrPage(sorted: readonly Mr[], query: MrListQuery, transform: (mr: Mr) => Mr = (m) => m): MrPage {
  const sort = query.sort ?? 'device';
  const descending = sort.startsWith('-');
  const key = descending ? sort.slice(1) : sort;
  const fields = parseFields(query.fields);
  const after = query.cursor === undefined ? undefined : decodeCursor(query.cursor, sort);
  const limit = query.limit ?? Infinity;
  const items: Partial<Mr>[] = [];
  let total = 0;
  let last: Mr | undefined;
  let more = false;
  for (const mr of sorted) {
    if (query.device !== undefined && mr.device !== query.device) continue;
    if (query.pid !== undefined && mr.pid !== query.pid) continue;
    if (query.kind !== undefined && mr.kind !== query.kind) continue;
    if (query.state !== undefined && mr.state !== query.state) continue;
    total++;
    if (more) continue;
    if (after && compareAt({ value: sortValue(mr, key), device: mr.device, mrn: mr.mrn }, after, descending) <= 0) continue;
    if (items.length >= limit) {
      more = true;
      continue;
    }
    const shown = transform(mr);
    items.push(fields ? pick(shown, fields) : shown);
    last = mr;
  }
  return {
    items,
    total,
    next: more && last ? encodeCursor({ value: sortValue(last, key), device: last.device, mrn: last.mrn }, sort) : null,
  };
}
