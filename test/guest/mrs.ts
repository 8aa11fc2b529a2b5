// Runs inside a guest with rxe0 and pfnic0 (test/vm-foundation.test.ts boots it), prints
// TAP. mrs.js: processes register pinned and ODP MRs (build/cmake/tests/mr_hold) and hold
// them; the control plane's API started here must report every MR of the host as iproute2's
// `rdma resource show mr -dd` and `rdma statistic mr` do, field by field, filter them, and
// forget them when their process exits.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';

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

async function getJson<T>(base: string, url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(`${base}${url}`);
  return { status: res.status, body: (await res.json()) as T };
}

const hexOf = (v: unknown): string => `0x${BigInt(`0x${String(v)}`).toString(16)}`;

t.test(`the API reports every MR as rdma does (kernel ${kernel})`, async (t) => {
  const base = await startApi(t, top, apiPort);
  const pf = await hold(t, top, 'pfnic0', ['-i', '-t', '64']);
  const rx = await hold(t, top, 'rxe0', ['-o', '0']);
  t.equal(pf.mrs.length, 3, 'mr_hold holds a pinned, an explicit and an implicit MR on pfnic0');
  t.equal(rx.mrs.length, 1, 'and a pinned one on rxe0');

  const { status, body: mrs } = await getJson<Mr[]>(base, '/v1/mrs');
  t.equal(status, 200, 'GET /v1/mrs answers 200');
  const res = await rdmaJson(['-dd', 'resource', 'show', 'mr']);
  const stats = await rdmaJson(['statistic', 'mr']);
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

  // one MR
  const some = mrs.find((m) => m.device === 'pfnic0' && m.kind === 'explicit')!;
  const one = await getJson<Mr>(base, `/v1/mrs/pfnic0/${some.mrn}`);
  t.same(one, { status: 200, body: some }, `/v1/mrs/pfnic0/${some.mrn} is that MR`);
  const gone = await getJson<{ message: string }>(base, '/v1/mrs/pfnic0/4000000000');
  t.equal(gone.status, 404, 'an MR number not in use is 404');

  // a process that exits takes its MRs with it
  await pf.exit();
  const after = await getJson<Mr[]>(base, `/v1/mrs?pid=${pf.pid}`);
  t.same(after.body, [], 'once mr_hold exits, none of its MRs is listed');
  const stillRxe = await getJson<Mr[]>(base, `/v1/mrs?pid=${rx.pid}`);
  t.equal(stillRxe.body.length, 1, 'the other process\'s MR still is');
});
