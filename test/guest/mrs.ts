// Runs inside a guest with rxe0 and pfnic0 (test/vm-foundation.test.ts boots it), prints
// TAP. mrs.js: processes register pinned and ODP MRs (build/cmake/tests/mr_hold) and hold
// them; the control plane's API started here must report every MR of the host as iproute2's
// `rdma resource show mr -dd` and `rdma statistic mr` do, field by field, filter them, give
// each alone as the kernel's query of one MR does, and forget them when their process exits.
import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';

import type { Mr } from '../../control/src/schema.js';
import { startApi } from './api-server.js';
import { hold } from './mr-hold.js';
import { rdmaJson } from './rdma.js';

const run = promisify(execFile);
const top = process.env.PFNIC_TOP ?? process.cwd();
// TCG guests are slow; the rig's own time limit bounds the whole run
t.setTimeout(10 * 60_000);
const kernel = process.env.PFNIC_KERNEL ?? 'unknown';
const apiPort = 18081;

// The server's token: its bearer sees the MRs' keys, as rdma (run as root) does.
const token = 'guest-test-token-0123456789';

// Lists of MRs come from the server's view of them, which may lag a refresh behind the
// kernel: ask for one no older than a second.
async function getJson<T>(base: string, url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base}${url}`, { headers: { 'cache-control': 'no-cache', authorization: `Bearer ${token}` } });
  return { status: res.status, body: (await res.json()) as T };
}

/** GETs @p url until @p done says the answer has caught up with the kernel (10 s at most). */
async function getUntil<T>(base: string, url: string, done: (body: T) => boolean): Promise<{ status: number; body: T }> {
  let got = await getJson<T>(base, url);
  for (let i = 0; i < 20 && got.status === 200 && !done(got.body); i++) {
    await new Promise((r) => setTimeout(r, 500));
    got = await getJson<T>(base, url);
  }
  return got;
}

const hexOf = (v: unknown): string => `0x${BigInt(`0x${String(v)}`).toString(16)}`;

/**
 * The addon asks the kernel for one MR by number (RDMA_NLDEV_CMD_RES_MR_GET and STAT_GET
 * without NLM_F_DUMP), not for the device's whole list: what it sends, seen by strace.
 */
async function oneMrByNumber(t: Test, mr: Mr): Promise<void> {
  const out = path.join(os.tmpdir(), `pfnic-mr-strace-${process.pid}`);
  const script = `require(${JSON.stringify(path.join(top, 'build/cmake/Release/pfnic_addon.node'))})` +
    `.queryMr(${JSON.stringify(mr.device)}, ${mr.mrn}).then((m) => console.log(JSON.stringify(Object.keys(m.counters))))`;
  let counters: string;
  try {
    counters = (await run('strace', ['-f', '-qq', '--seccomp-bpf', '-e', 'trace=sendto', '-o', out,
      process.execPath, '-e', script])).stdout;
  } catch (err) {
    const missing = (err as { code?: unknown }).code === 'ENOENT';
    t.ok(missing, `strace runs (${err instanceof Error ? err.message : String(err)})`);
    if (missing) t.comment('no strace here: what the addon sends for one MR is not checked');
    return;
  }
  t.same(JSON.parse(counters), Object.keys(mr.counters), `queryMr(${mr.device}, ${mr.mrn}) has its counters`);
  const sent = (await readFile(out, 'utf8')).split('\n').filter((l) => /sendto\(/.test(l));
  await rm(out, { force: true });
  const dump = /NLM_F_DUMP|0x300\b/;
  // strace names the commands where it knows them, else gives RDMA_NL_GET_TYPE(NLDEV, cmd) in hex
  const res = sent.filter((l) => /nlmsg_type=(0x140d\b|[^,]*RDMA_NLDEV_CMD_RES_MR_GET\b)/.test(l));
  const stat = sent.filter((l) => /nlmsg_type=(0x1411\b|[^,]*RDMA_NLDEV_CMD_STAT_GET\b)/.test(l));
  const flags = (lines: string[]) => lines.map((l) => /nlmsg_flags=[^,]*/.exec(l)?.[0] ?? l).join(' | ') || 'none';
  t.ok(res.length === 1 && !dump.test(res[0]!), `one RES_MR_GET request, not a dump (${flags(res)})`);
  t.ok(stat.length === 1 && !dump.test(stat[0]!), `one STAT_GET request, not a dump (${flags(stat)})`);
}

t.test(`the API reports every MR as rdma does (kernel ${kernel})`, async (t) => {
  const base = await startApi(t, top, apiPort, { env: { PFNIC_API_TOKEN: token } });
  const pf = await hold(t, top, 'pfnic0', ['-i', '-t', '64']);
  const rx = await hold(t, top, 'rxe0', ['-o', '0']);
  t.equal(pf.mrs.length, 3, 'mr_hold holds a pinned, an explicit and an implicit MR on pfnic0');
  t.equal(rx.mrs.length, 1, 'and a pinned one on rxe0');

  const res = await rdmaJson(['-dd', 'resource', 'show', 'mr']);
  const stats = await rdmaJson(['statistic', 'mr']);
  const { status, body: mrs } = await getUntil<Mr[]>(base, '/v1/mrs', (b) => b.length >= res.length);
  t.equal(status, 200, 'GET /v1/mrs answers 200');
  t.equal(mrs.length, res.length, `as many MRs as rdma lists (${res.length})`);

  for (const r of res) {
    const where = `${String(r.ifname)} mrn ${String(r.mrn)}`;
    const mr = mrs.find((m) => m.device === r.ifname && m.mrn === r.mrn);
    if (!mr) {
      t.fail(`${where} is in /v1/mrs`);
      continue;
    }
    const drv: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(r)) if (k.startsWith('drv_')) drv[k.slice(4)] = v;
    t.same({
      length: mr.length, lkey: mr.lkey, rkey: mr.rkey, pdn: mr.pdn, pid: mr.pid, owner: mr.owner, details: mr.details,
    }, {
      length: hexOf(BigInt(String(r.mrlen)).toString(16)), lkey: hexOf(r.lkey), rkey: hexOf(r.rkey),
      pdn: r.pdn ?? null, pid: r.pid ?? null, owner: r.comm ?? null, details: drv,
    }, `${where}: length, keys, pdn, pid, owner and every driver detail as rdma -dd`);
    const s = stats.find((x) => x.ifname === r.ifname && x.mrn === r.mrn) ?? {};
    const counters: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(s)) if (!['ifindex', 'ifname', 'mrn'].includes(k)) counters[k] = v;
    t.same(mr.counters, counters, `${where}: counters as rdma statistic mr`);
  }

  // what pfnic's MRs are, from what mr_hold did
  for (const held of pf.mrs) {
    const mr = mrs.find((m) => m.device === 'pfnic0' && m.lkey === held.lkey);
    t.ok(mr, `pfnic0's ${held.kind} MR (lkey ${held.lkey}) is listed`);
    if (!mr) continue;
    t.equal(mr.kind, held.kind, `its kind is ${held.kind}`);
    t.equal(mr.length, `0x${held.length.toString(16)}`, 'its length is what was registered');
    t.equal(mr.pid, pf.pid, 'its pid is mr_hold\'s');
    t.equal(mr.state, 'active', 'it is active');
    if (held.kind === 'pinned') {
      t.equal(mr.mapped_pages, Number(held.length / 4096n), 'a pinned MR maps every page');
      t.ok(Array.isArray(mr.pinned_blocks) && mr.pinned_blocks.length > 0, `it pins memory blocks ${String(mr.pinned_blocks)}`);
    }
    if (held.kind === 'explicit') {
      t.equal(mr.mapped_pages, 16, 'the explicit MR maps the 16 pages mr_hold prefetched');
      t.equal(mr.counters.page_prefetch, 16, 'and counts them as prefetched');
    }
    if (held.kind === 'implicit') t.equal(mr.mapped_pages, 0, 'the implicit MR maps nothing yet');
  }
  const rxe = mrs.find((m) => m.device === 'rxe0' && m.lkey === rx.mrs[0]!.lkey);
  t.ok(rxe && rxe.pid === rx.pid && rxe.kind === 'unknown' && rxe.state === null,
    'rxe0\'s MR is listed; rxe says nothing of kind or state, and the API does not guess');

  // filters
  const byPid = await getJson<Mr[]>(base, `/v1/mrs?pid=${pf.pid}`);
  t.same(byPid.body.map((m) => m.lkey).sort(), pf.mrs.map((m) => m.lkey).sort(), '?pid= lists that process\'s MRs only');
  const byDev = await getJson<Mr[]>(base, '/v1/mrs?device=rxe0');
  t.ok(byDev.body.length >= 1 && byDev.body.every((m) => m.device === 'rxe0'), '?device=rxe0 lists rxe0\'s only');
  const byKind = await getJson<Mr[]>(base, '/v1/mrs?kind=implicit');
  t.same(byKind.body.map((m) => m.lkey), [pf.mrs.find((m) => m.kind === 'implicit')!.lkey], '?kind=implicit lists the implicit MR only');
  const both = await getJson<Mr[]>(base, `/v1/mrs?device=pfnic0&kind=pinned&pid=${pf.pid}`);
  t.equal(both.body.length, 1, 'filters combine');
  const none = await getJson<Mr[]>(base, '/v1/mrs?device=nosuchdev0');
  t.same(none, { status: 200, body: [] }, 'a device with no MRs (or none at all) lists nothing');

  // one MR: each, asked for alone, is the listing's entry, counters and details included
  t.ok(mrs.filter((m) => Object.keys(m.counters).length > 0).length >= 2, 'some of the MRs have counters');
  for (const listed of mrs) {
    const one = await getJson<Mr>(base, `/v1/mrs/${listed.device}/${listed.mrn}`);
    t.same(one, { status: 200, body: listed }, `/v1/mrs/${listed.device}/${listed.mrn} is the listing's entry`);
  }
  const gone = await getJson<{ message: string }>(base, '/v1/mrs/pfnic0/4000000000');
  t.match(gone, { status: 404, body: { message: 'no MR 4000000000 on RDMA device "pfnic0"' } },
    'an MR number not in use is 404');
  const noDev = await getJson<{ message: string }>(base, '/v1/mrs/nosuchdev0/1');
  t.equal(noDev.status, 404, 'so is a device the host does not have');
  await oneMrByNumber(t, mrs.find((m) => m.device === 'pfnic0' && m.kind === 'explicit')!);

  // what a caller without a token sees: every MR, none of its keys
  const anonymous = (await (await fetch(`${base}/v1/mrs`)).json()) as Mr[];
  t.equal(anonymous.length, mrs.length, 'an anonymous caller sees every MR');
  t.ok(anonymous.every((m) => m.lkey === null && m.rkey === null && m.iova === null),
    'but no lkey, rkey or address of any');
  const alone = (await (await fetch(`${base}/v1/mrs/${mrs[0]!.device}/${mrs[0]!.mrn}`)).json()) as Mr;
  t.match(alone, { mrn: mrs[0]!.mrn, lkey: null, rkey: null, iova: null }, 'nor of one asked for alone');

  // pages the server cuts, in the order asked for, and ETags
  const admin = { authorization: `Bearer ${token}` };
  const seen: Mr[] = [];
  let url: string | null = '/v1/mrs?limit=2&sort=-length';
  const totals = new Set<string>();
  for (let i = 0; url && i < 10; i++) {
    const res = await fetch(`${base}${url}`, { headers: admin });
    seen.push(...((await res.json()) as Mr[]));
    totals.add(res.headers.get('x-total-count') ?? '?');
    url = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1] ?? null;
  }
  t.same(seen.map((m) => `${m.device}/${m.mrn}`).sort(), mrs.map((m) => `${m.device}/${m.mrn}`).sort(),
    `pages of 2 by length, followed by their Link headers, give every MR once (${seen.length})`);
  t.same([...totals], [String(mrs.length)], 'each says how many there are in all (X-Total-Count)');
  const lengths = seen.filter((m) => m.kind !== 'implicit').map((m) => BigInt(m.length ?? '0x0'));
  t.ok(lengths.every((l, i) => i === 0 || l <= lengths[i - 1]!), 'largest first');
  const first = await fetch(`${base}/v1/mrs?limit=1`, { headers: admin });
  const etag = first.headers.get('etag');
  const again = await fetch(`${base}/v1/mrs?limit=1`, { headers: { ...admin, 'if-none-match': etag ?? '' } });
  t.ok(etag !== null && (again.status === 304 || again.headers.get('etag') !== etag),
    `an unchanged list is a 304 for the ETag it had (${again.status})`);
  const gz = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{size_download} %{content_type}', '-H', 'accept-encoding: gzip',
    '-H', `authorization: Bearer ${token}`, '-D', '-', `${base}/v1/mrs`]);
  t.match(gz.stdout, /content-encoding: gzip/i, 'the list is compressed for a client that takes gzip');

  // a process that exits takes its MRs with it
  await pf.exit();
  const after = await getUntil<Mr[]>(base, `/v1/mrs?pid=${pf.pid}`, (b) => b.length === 0);
  t.same(after.body, [], 'once mr_hold exits, none of its MRs is listed');
  const stillRxe = await getJson<Mr[]>(base, `/v1/mrs?pid=${rx.pid}`);
  t.equal(stillRxe.body.length, 1, 'the other process\'s MR still is');
});
