// Runs inside a guest with rxe0 and pfnic0 (test/vm-api-bench.test.ts boots it); prints TAP
// and "# bench:" lines. api-bench.js: what the control plane costs, as ratios measured in
// this one run against a trivial route of the same server (GET /v1/health), since absolute
// times under TCG mean little:
//   1. with 10,000 MRs of a process on pfnic0, per request: a page of 100 MRs (goal: 5 times
//      the trivial route at most), the whole list, and /metrics (goal: 10 times at most);
//   2. the kernel's MR dumps per second while 20 clients poll back to back, against while
//      none does (goal: the same: the model reads the kernel, clients read the model);
//   3. invalidation events a process causes, delivered on the SSE stream, per second, to 1
//      client and to each of 100;
//   4. pfnic traffic (perftest's ib_write_bw over ODP, loopback) while the control plane
//      is polled, against none: as an open dashboard does (goal: 0.95 of unpolled at least),
//      and back to back.
// Each figure is the median of interleaved rounds, with its least and greatest. The checks
// are on completeness (every MR listed, every event delivered or counted as lost, every
// measurement made), never on speed.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';

import type { Event, Mr } from '../../control/src/schema.js';
import { startApi } from './api-server.js';
import { hold } from './mr-hold.js';
import { readSse } from './sse.js';

const run = promisify(execFile);
const top = process.env.PFNIC_TOP ?? process.cwd();
const kernel = process.env.PFNIC_KERNEL ?? 'unknown';
const MANY = Number(process.env.PFNIC_BENCH_MRS ?? 10_000);
const ROUNDS = Number(process.env.PFNIC_BENCH_ROUNDS ?? 5);
const EVENTS = Number(process.env.PFNIC_BENCH_EVENTS ?? 2_000);
// the streams match events to the MR by its key, which only an admin's token shows
const ADMIN_TOKEN = 'api-bench-admin-token-0123456789';
// TCG guests are slow; the rig's own time limit bounds the whole run
t.setTimeout(20 * 60_000);

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmt = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
/** One "# bench:" line: a ratio's median, least and greatest over the rounds, and what it is of. */
function report(t: Test, what: string, ratios: number[], detail: string): void {
  t.comment(`bench: ${what}: ${fmt(median(ratios))}x (least ${fmt(Math.min(...ratios))}, greatest ` +
    `${fmt(Math.max(...ratios))} over ${ratios.length} rounds; ${detail})`);
}

/** Milliseconds @p n sequential GETs of @p url take, each; and the bytes of the last body. */
async function timeGets(url: string, n: number): Promise<{ ms: number; bytes: number }> {
  let bytes = 0;
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
    bytes = (await res.arrayBuffer()).byteLength;
  }
  return { ms: (performance.now() - t0) / n, bytes };
}

/** An SSE client that counts the invalidations of one MR (by lkey) and the gaps it is told of. */
function countingStream(url: string, lkey: string) {
  let count = 0;
  let lost = 0;
  let last = 0;
  const sse = readSse(url, { authorization: `Bearer ${ADMIN_TOKEN}` }, (event, data) => {
    if (event === 'gap') { lost += (JSON.parse(data) as { missed: number | null }).missed ?? 0; return; }
    const e = JSON.parse(data) as Event;
    if (e.type === 'lost') lost += e.lost ?? 0;
    if (e.type === 'invalidate' && e.lkey === lkey) { count++; last = performance.now(); }
  });
  return {
    get count() { return count; },
    get lost() { return lost; },
    get last() { return last; },
    close: () => sse.close(),
  };
}

/** ib_write_bw over ODP on pfnic0, server and client in this guest, for @p secs: MB/s. */
async function writeBw(port: number, secs: number): Promise<number> {
  const args = ['-d', 'pfnic0', '-x', '1', '-F', '--odp', '-s', '65536', '-D', String(secs), '-p', String(port)];
  const server = spawn('ib_write_bw', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let serverOut = '';
  server.stdout.setEncoding('utf8').on('data', (c: string) => { serverOut += c; });
  server.stderr.setEncoding('utf8').on('data', (c: string) => { serverOut += c; });
  const serverDone = new Promise<number | null>((r) => server.on('close', r));
  // the client, once the server listens
  for (let i = 0; i < 100; i++) {
    const { stdout } = await run('ss', ['-ltn']);
    if (stdout.includes(`:${port} `)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const { stdout } = await run('ib_write_bw', [...args, '127.0.0.1'], { timeout: (secs + 60) * 1000 });
  if ((await serverDone) !== 0) throw new Error(`ib_write_bw server failed: ${serverOut}`);
  // the table's data line: #bytes #iterations BW peak BW average MsgRate
  const row = stdout.split('\n').map((l) => l.trim().split(/\s+/)).find((w) => w[0] === '65536' && w.length >= 5);
  const bw = Number(row?.[3]);
  if (!Number.isFinite(bw) || bw <= 0) throw new Error(`no bandwidth in ib_write_bw's output: ${stdout}`);
  return bw;
}

/** Polls @p paths in turn, back to back, until stopped; the rounds made. */
function poller(base: string, paths: string[]) {
  let stop = false;
  let polls = 0;
  const done = (async () => {
    while (!stop) {
      for (const p of paths) await (await fetch(`${base}${p}`)).arrayBuffer();
      polls++;
    }
  })();
  return { async stop() { stop = true; await done; return polls; } };
}

/**
 * Polls as the dashboard's page does (api/dashboard/dashboard.js): the MR summary every 2 s
 * and a page of 50 MRs every 5 s, each again no sooner than four times as long as it took,
 * sending the ETag it last got as a browser's cache does; the requests made.
 */
function dashboardPoller(base: string) {
  let stop = false;
  let polls = 0;
  const poll = async (path: string, every: number): Promise<void> => {
    let etag: string | null = null;
    while (!stop) {
      const started = performance.now();
      const res = await fetch(`${base}${path}`, { headers: etag ? { 'if-none-match': etag } : {} });
      await res.arrayBuffer();
      etag = res.headers.get('etag') ?? etag;
      polls++;
      const pause = Math.max(every, 4 * (performance.now() - started));
      for (let waited = 0; !stop && waited < pause; waited += 100) await new Promise((r) => setTimeout(r, 100));
    }
  };
  const done = Promise.all([poll('/v1/mrs/summary', 2000),
    poll('/v1/mrs?limit=50&sort=device&fields=device,mrn,kind,state,length,mapped_pages,suspended_pages,counters,owner,pid,pinned_blocks', 5000)]);
  return { async stop() { stop = true; await done; return polls; } };
}

t.test(`what the control plane costs (kernel ${kernel})`, async (t) => {
  const base = await startApi(t, top, 18095, {
    // streams of a round may still be closing when the next round's 100 open: room for both
    env: { PFNIC_RATE_LIMIT: '1000000', PFNIC_METRICS_MR_SERIES: '50', PFNIC_API_TOKEN: ADMIN_TOKEN, PFNIC_EVENT_STREAMS: '1000' },
  });
  const loaded = performance.now();
  const holder = await hold(t, top, 'pfnic0', ['-m', String(MANY), '-o', '2048', '-t', '64']);
  const explicit = holder.mrs.find((m) => m.kind === 'explicit');
  t.ok(explicit, `mr_hold holds ${MANY} one-page ODP MRs on pfnic0 besides its own two ` +
    `(registered and each page mapped in ${((performance.now() - loaded) / 1000).toFixed(1)} s)`);
  if (!explicit) return;

  // 1. a page, the whole list and a scrape, against the trivial route
  const fresh = { 'cache-control': 'no-cache' };
  const mrs = (await (await fetch(`${base}/v1/mrs?device=pfnic0&pid=${holder.pid}`, { headers: fresh })).json()) as Mr[];
  t.equal(mrs.length, MANY + 2, `/v1/mrs lists all ${MANY + 2} of the process's MRs`);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  const counted = Number(/^rdma_mrs\{device="pfnic0",kind="explicit"\} (\d+)$/m.exec(metrics)?.[1]);
  t.ok(counted >= MANY + 1, `/metrics counts them (rdma_mrs of explicit ODP MRs on pfnic0: ${counted})`);
  const perMr = metrics.split('\n').filter((l) => l.startsWith('rdma_mr_counter_total{')).map((l) => /mrn="(\d+)"/.exec(l)?.[1]);
  t.ok(new Set(perMr).size <= 50, `with per-MR series for at most 50 MRs (${new Set(perMr).size})`);
  const routes = [
    { path: '/v1/mrs?limit=100&sort=-page_faults', what: 'a page of 100 MRs sorted by faults (goal 5x at most)' },
    { path: '/v1/mrs', what: 'the whole list' },
    { path: '/metrics', what: 'a scrape (goal 10x at most)' },
  ];
  const ratios = routes.map(() => [] as number[]);
  const ms = routes.map(() => 0);
  const sizes = routes.map(() => 0);
  let trivialMs = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const trivial = await timeGets(`${base}/v1/health`, 50);
    trivialMs += trivial.ms / ROUNDS;
    for (const [i, route] of routes.entries()) {
      const m = await timeGets(`${base}${route.path}`, route.path.includes('limit') ? 10 : 1);
      ratios[i]!.push(m.ms / trivial.ms);
      ms[i]! += m.ms / ROUNDS;
      sizes[i] = m.bytes;
    }
  }
  for (const [i, route] of routes.entries()) {
    report(t, `GET ${route.path} with ${MANY} MRs, per request, against GET /v1/health: ${route.what}`, ratios[i]!,
      `${fmt(ms[i]!)} ms against ${fmt(trivialMs)} ms on average, ${Math.round(sizes[i]! / 1024)} KiB`);
  }
  t.ok(ratios.every((r) => r.length === ROUNDS), 'every round measured every route');

  // 2. what clients cost the kernel: dumps per second with 20 clients polling, against none
  const dumps = async (): Promise<number> => {
    const text = await (await fetch(`${base}/metrics`)).text();
    return Number(/^pfnic_model_dumps_total(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? NaN);
  };
  const window = 20_000;
  const idle0 = await dumps();
  await new Promise((r) => setTimeout(r, window));
  const idle = (await dumps()) - idle0 - 1;  // the scrape itself reads the model, not the kernel
  const busy0 = await dumps();
  const clients = Array.from({ length: 20 }, (_, i) => poller(base, [i % 2 ? '/v1/mrs?limit=100' : '/v1/mrs/summary']));
  await new Promise((r) => setTimeout(r, window));
  const polls = (await Promise.all(clients.map((c) => c.stop()))).reduce((a, b) => a + b, 0);
  const busy = (await dumps()) - busy0 - 1;
  t.ok(Number.isFinite(idle) && Number.isFinite(busy), `the model's dumps are counted (${idle} idle, ${busy} busy)`);
  t.comment(`bench: the kernel's MR dumps in ${window / 1000} s with 20 clients polling back to back (${polls} requests), ` +
    `against none: ${fmt(busy / Math.max(1, idle))}x (${busy} against ${idle}; goal: the same)`);

  // 3. events delivered on the SSE stream, per second, to 1 client and to each of 100
  for (const streams of [1, 100]) {
    const sse: number[] = [];
    let delivered = 0;
    let lost = 0;
    let generated = 0;
    let made = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const all = Array.from({ length: streams }, () => countingStream(`${base}/v1/events`, explicit.lkey));
      await new Promise((res) => setTimeout(res, 300 + 10 * streams));
      const t0 = performance.now();
      await holder.command(`churn ${EVENTS}`);
      const madeIn = performance.now() - t0;
      const complete = () => all.every((s) => s.count + s.lost >= EVENTS);
      for (let i = 0; i < 300 && !complete(); i++) await new Promise((res) => setTimeout(res, 100));
      const last = Math.max(...all.map((s) => s.last));
      const perSec = all.reduce((n, s) => n + s.count, 0) / streams / ((last - t0) / 1000);
      const trivial = await timeGets(`${base}/v1/health`, 50);
      sse.push(perSec / (1000 / trivial.ms));
      delivered += all.reduce((n, s) => n + s.count, 0);
      lost += all.reduce((n, s) => n + s.lost, 0);
      generated += EVENTS * streams;
      made += EVENTS / (madeIn / 1000) / ROUNDS;
      await Promise.all(all.map((s) => s.close()));
    }
    report(t, `invalidation events delivered on the SSE stream per second to each of ${streams} client${streams > 1 ? 's' : ''}, ` +
      'against GET /v1/health per second', sse,
    `the process made ${fmt(made)} invalidations/s; ${delivered} of ${generated} delivered, ${lost} reported lost`);
    t.equal(delivered + lost, generated, `${streams} streams: every invalidation was delivered or reported lost ` +
      `(${delivered} + ${lost} of ${generated})`);
  }

  // 4. pfnic traffic while the control plane is polled: as an open dashboard does, and
  // as hard as one client can
  const dashboard: number[] = [];
  const backToBack: number[] = [];
  let bwNone = 0;
  let bwDashboard = 0;
  let bwBack = 0;
  let port = 18600;
  let pollsDashboard = 0;
  let pollsBack = 0;
  const secs = 8;
  for (let r = 0; r < 3; r++) {
    const none = await writeBw(port++, secs);
    const p1 = dashboardPoller(base);
    const polled = await writeBw(port++, secs);
    pollsDashboard += await p1.stop();
    const p2 = poller(base, ['/v1/mrs?limit=100', '/metrics']);
    const back = await writeBw(port++, secs);
    pollsBack += await p2.stop();
    dashboard.push(polled / none);
    backToBack.push(back / none);
    bwNone += none / 3;
    bwDashboard += polled / 3;
    bwBack += back / 3;
  }
  report(t, `ib_write_bw --odp on pfnic0 (${secs} s, ${MANY} MRs held) while a dashboard is open (its summary every 2 s, ` +
    'its page of MRs every 5 s, with ETags), against unpolled (goal 0.95 at least)', dashboard,
  `${fmt(bwDashboard)} against ${fmt(bwNone)} MB/s on average; ${pollsDashboard} polls in all`);
  report(t, `ib_write_bw --odp on pfnic0 (${secs} s) while a page of MRs and /metrics are polled back to back, against unpolled`,
    backToBack, `${fmt(bwBack)} against ${fmt(bwNone)} MB/s on average; ${pollsBack} rounds of both in all`);
  t.equal(dashboard.length + backToBack.length, 6, 'every traffic round measured');
  await holder.exit();
});
