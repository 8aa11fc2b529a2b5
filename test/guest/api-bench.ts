// Runs inside a guest with rxe0 and pfnic0 (test/vm-api-bench.test.ts boots it); prints TAP
// and "# bench:" lines. api-bench.js: what the control plane costs, as ratios measured in
// this one run against a trivial route of the same server (GET /v1/health), since absolute
// times under TCG mean little:
//   1. GET /v1/mrs and GET /metrics with 10,000 MRs of a process on pfnic0, per request;
//   2. invalidation events a process causes, delivered on the SSE stream, per second;
//   3. pfnic traffic (perftest's ib_write_bw over ODP, loopback) while the control plane
//      is polled, against none: once a second as a dashboard or Prometheus would, and back
//      to back.
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
  const sse = readSse(url, {}, (event, data) => {
    if (event === 'gap') { lost += (JSON.parse(data) as { missed: number }).missed; return; }
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

/**
 * Polls @p paths in turn until stopped, back to back (@p dashboard false) or as the
 * dashboard's page polls /v1/mrs: again after 2 s, or four times as long as the last
 * answer took if that is longer (api/dashboard/dashboard.js, tick()); the rounds made.
 */
function poller(base: string, paths: string[], dashboard: boolean) {
  let stop = false;
  let polls = 0;
  const done = (async () => {
    while (!stop) {
      const started = performance.now();
      for (const p of paths) await (await fetch(`${base}${p}`)).arrayBuffer();
      polls++;
      const pause = Math.max(2000, 4 * (performance.now() - started));
      // the wait ends early when the round's traffic does, as a closed page would
      for (let waited = 0; dashboard && !stop && waited < pause; waited += 100) await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return { async stop() { stop = true; await done; return polls; } };
}

t.test(`what the control plane costs (kernel ${kernel})`, async (t) => {
  const base = await startApi(t, top, 18095, { env: { PFNIC_RATE_LIMIT: '1000000', PFNIC_METRICS_MR_SERIES: '50' } });
  const loaded = performance.now();
  const holder = await hold(t, top, 'pfnic0', ['-m', String(MANY), '-o', '2048', '-t', '64']);
  const explicit = holder.mrs.find((m) => m.kind === 'explicit');
  t.ok(explicit, `mr_hold holds ${MANY} one-page ODP MRs on pfnic0 besides its own two ` +
    `(registered and each page mapped in ${((performance.now() - loaded) / 1000).toFixed(1)} s)`);
  if (!explicit) return;

  // 1. listing and scraping 10,000 MRs, against the trivial route
  const mrs = (await (await fetch(`${base}/v1/mrs?device=pfnic0&pid=${holder.pid}`)).json()) as Mr[];
  t.equal(mrs.length, MANY + 2, `/v1/mrs lists all ${MANY + 2} of the process's MRs`);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  const counted = Number(/^rdma_mrs\{device="pfnic0",kind="explicit"\} (\d+)$/m.exec(metrics)?.[1]);
  t.ok(counted >= MANY + 1, `/metrics counts them (rdma_mrs of explicit ODP MRs on pfnic0: ${counted})`);
  const perMr = metrics.split('\n').filter((l) => l.startsWith('rdma_mr_counter_total{')).map((l) => /mrn="(\d+)"/.exec(l)?.[1]);
  t.ok(new Set(perMr).size <= 50, `with per-MR series for at most 50 MRs (${new Set(perMr).size})`);
  const list: number[] = [];
  const scrape: number[] = [];
  let trivialMs = 0;
  let listMs = 0;
  let scrapeMs = 0;
  let listBytes = 0;
  let scrapeBytes = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const trivial = await timeGets(`${base}/v1/health`, 50);
    const l = await timeGets(`${base}/v1/mrs`, 1);
    const s = await timeGets(`${base}/metrics`, 1);
    list.push(l.ms / trivial.ms);
    scrape.push(s.ms / trivial.ms);
    trivialMs += trivial.ms / ROUNDS;
    listMs += l.ms / ROUNDS;
    scrapeMs += s.ms / ROUNDS;
    listBytes = l.bytes;
    scrapeBytes = s.bytes;
  }
  report(t, `GET /v1/mrs with ${MANY} MRs, per request, against GET /v1/health`, list,
    `${fmt(listMs)} ms against ${fmt(trivialMs)} ms on average, ${Math.round(listBytes / 1024)} KiB`);
  report(t, `GET /metrics with ${MANY} MRs, per request, against GET /v1/health`, scrape,
    `${fmt(scrapeMs)} ms against ${fmt(trivialMs)} ms on average, ${Math.round(scrapeBytes / 1024)} KiB`);
  t.equal(list.length + scrape.length, 2 * ROUNDS, 'every round measured both');

  // 2. events delivered on the SSE stream, per second, against trivial requests per second
  const sse: number[] = [];
  let delivered = 0;
  let lost = 0;
  let generated = 0;
  let made = 0;
  for (let r = 0; r < ROUNDS; r++) {
    const stream = countingStream(`${base}/v1/events`, explicit.lkey);
    await new Promise((res) => setTimeout(res, 300));
    const t0 = performance.now();
    await holder.command(`churn ${EVENTS}`);
    const madeIn = performance.now() - t0;
    for (let i = 0; i < 200 && stream.count + stream.lost < EVENTS; i++) await new Promise((res) => setTimeout(res, 100));
    const perSec = stream.count / ((stream.last - t0) / 1000);
    const trivial = await timeGets(`${base}/v1/health`, 50);
    sse.push(perSec / (1000 / trivial.ms));
    delivered += stream.count;
    lost += stream.lost;
    generated += EVENTS;
    made += EVENTS / (madeIn / 1000) / ROUNDS;
    await stream.close();
  }
  report(t, 'invalidation events delivered on the SSE stream per second, against GET /v1/health per second', sse,
    `the process made ${fmt(made)} invalidations/s; ${delivered} of ${generated} delivered, ${lost} reported lost`);
  t.equal(delivered + lost, generated, `every invalidation was delivered or reported lost (${delivered} + ${lost} of ${generated})`);

  // 3. pfnic traffic while the control plane is polled: as an open dashboard does, and
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
    const p1 = poller(base, ['/v1/mrs'], true);
    const polled = await writeBw(port++, secs);
    pollsDashboard += await p1.stop();
    const p2 = poller(base, ['/v1/mrs', '/metrics'], false);
    const back = await writeBw(port++, secs);
    pollsBack += await p2.stop();
    dashboard.push(polled / none);
    backToBack.push(back / none);
    bwNone += none / 3;
    bwDashboard += polled / 3;
    bwBack += back / 3;
  }
  report(t, `ib_write_bw --odp on pfnic0 (${secs} s) while GET /v1/mrs (${MANY} MRs) is polled as the dashboard does ` +
    '(again after 2 s, or 4 times as long as the answer took), against unpolled', dashboard,
  `${fmt(bwDashboard)} against ${fmt(bwNone)} MB/s on average; ${pollsDashboard} polls in all`);
  report(t, `ib_write_bw --odp on pfnic0 (${secs} s) while GET /v1/mrs and GET /metrics are polled back to back, against unpolled`,
    backToBack, `${fmt(bwBack)} against ${fmt(bwNone)} MB/s on average; ${pollsBack} rounds of both in all`);
  t.equal(dashboard.length + backToBack.length, 6, 'every traffic round measured');
  await holder.exit();
});
