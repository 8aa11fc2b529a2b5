// The lab's path from this machine into the guest: the guest side of test/lab.sh runs in a
// VM whose API port is forwarded to 127.0.0.1 here; what curl would see must be what
// ibv_devinfo -v printed inside the guest. Then a real Prometheus (Debian's) scrapes the
// guest's /metrics every second while the lab's workload runs, and every query of the Grafana
// dashboard (api/grafana/pfnic.json) must return data from it.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';

import type { Device } from '../control/src/schema.js';
import { parseDevinfo } from './guest/devinfo.js';
import { freePort, startForwardedGuest } from './vm/forwarded.js';

const top = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const prometheusPath = process.env.PFNIC_PROMETHEUS ?? '/usr/bin/prometheus';
/**
 * The range Grafana's $__rate_interval and $__interval stand for here: several scrapes, one
 * every 3 s (a TCG guest on a loaded machine may take over a second to answer one).
 */
const RANGE = '30s';
/** How long the dashboard's queries may take to all return data once Prometheus scrapes. */
const QUERY_WAIT_MS = 75_000;

interface Target { refId?: string; expr: string }
interface Panel { title: string; targets?: Target[] }
interface Dashboard { panels: Panel[]; templating: { list: { name: string; type: string; query?: unknown }[] } }
interface QueryAnswer { status: string; error?: string; data?: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] } }

/** Debian's prometheus on loopback, its own config and storage, stopped at @p t's teardown. */
async function startPrometheus(t: Test, target: string): Promise<{ base: string; log: () => string } | undefined> {
  const dir = mkdtempSync(path.join(tmpdir(), 'pfnic-prometheus-'));
  const port = await freePort();
  writeFileSync(path.join(dir, 'prometheus.yml'), [
    'global:',
    '  scrape_interval: 3s',
    '  scrape_timeout: 3s',
    'scrape_configs:',
    '  - job_name: pfnic',
    '    static_configs:',
    `      - targets: ['${target}']`,
    '',
  ].join('\n'));
  const server: ChildProcess = spawn(prometheusPath, [
    `--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, '--storage.tsdb.retention.time=1h',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (chunk: Buffer): void => { out = (out + chunk.toString()).slice(-20_000); };
  server.stdout?.on('data', keep);
  server.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => server.on('close', () => resolve()));
  t.teardown(async () => {
    server.kill('SIGTERM');
    const killed = setTimeout(() => server.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killed);
    rmSync(dir, { recursive: true, force: true });
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 60; i++) {
    if (server.exitCode !== null) break;
    try {
      if ((await fetch(`${base}/-/ready`)).ok) return { base, log: () => out };
    } catch {
      // still starting
    }
    await sleep(500);
  }
  t.fail('prometheus became ready within 30 s', { log: out.slice(-3000) });
  return undefined;
}

/** A dashboard query with Grafana's variables replaced; throws on one it does not know. */
function substitute(expr: string, instance: string): string {
  const done = expr.replaceAll('$instance', instance).replaceAll('$__rate_interval', RANGE).replaceAll('$__interval', RANGE);
  const left = /\$\{?[a-zA-Z_]+\}?/.exec(done);
  if (left) throw new Error(`the query uses ${left[0]}, a variable this test does not substitute: ${expr}`);
  return done;
}

async function query(base: string, expr: string): Promise<QueryAnswer> {
  const res = await fetch(`${base}/api/v1/query?${new URLSearchParams({ query: expr })}`);
  return (await res.json()) as QueryAnswer;
}

t.test('the lab serves rxe0 on 127.0.0.1 as the guest sees it, and a real Prometheus shows every panel of the dashboard', async (t) => {
  const havePrometheus = existsSync(prometheusPath);
  if (!havePrometheus) {
    // not a skip: CI has it (test/setup.sh installs Debian's prometheus package)
    t.fail(`no Prometheus at ${prometheusPath}: install Debian's prometheus package (test/setup.sh does), or name one with PFNIC_PROMETHEUS`);
  }
  // two NUMA nodes, the second a DIMM, as test/lab.sh has them: the workload's MR moves between
  // them; up to 4 min to boot and start the API (TCG, on CPUs other guests share)
  const guest = await startForwardedGuest(t, top, ['--timeout', '480', '--numa', '--dimm', '384M'], '6.1',
    ['test/vm/lab-guest.sh', '{port}'], '/v1/devices/rxe0', 240);
  if (!guest) return;
  const device = (await (await fetch(`http://127.0.0.1:${guest.port}/v1/devices/rxe0`)).json()) as Device;
  const out = guest.output();
  t.match(out, /modules pfnic rdma_rxe/, 'the guest loaded pfnic.ko and rxe');
  const [seen] = parseDevinfo(out.slice(out.indexOf('hca_id:')));
  t.ok(seen, 'the guest printed ibv_devinfo -v');
  if (seen) {
    t.equal(device.node_guid, seen.fields.get('node_guid')?.value, 'node_guid as ibv_devinfo shows it');
    t.equal(device.limits.max_qp, Number(seen.fields.get('max_qp')?.value), 'max_qp as ibv_devinfo shows it');
    t.same(device.ports[0]?.gids.map(({ index, gid, type }) => ({ index, gid, type })), seen.ports[0]?.gids,
      'the GID table as ibv_devinfo shows it');
  }
  if (!havePrometheus) return;

  const instance = `127.0.0.1:${guest.port}`;
  // one scrape by hand first: a cold process's first under TCG takes seconds, more than
  // Prometheus's 1 s timeout; the later ones fit (the target's last scrape duration says)
  const started = Date.now();
  const scrape = await fetch(`http://${instance}/metrics`);
  await scrape.text();
  t.equal(scrape.status, 200, `the guest's /metrics answers (in ${Date.now() - started} ms)`);

  const prometheus = await startPrometheus(t, instance);
  if (!prometheus) return;
  const dashboard = JSON.parse(readFileSync(path.join(top, 'api/grafana/pfnic.json'), 'utf8')) as Dashboard;
  const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((target) => ({
    what: `${p.title}${(p.targets ?? []).length > 1 ? ` (${target.refId ?? '?'})` : ''}`,
    expr: substitute(target.expr, instance),
  })));
  // more than data: the workload faults pages in and gives them back every second, and moves
  // them between the nodes every 5 s; each must have been seen at work by the end
  const busy = new Map([
    ['pages faulted in', `sum(increase(rdma_port_hw_counter_total{instance="${instance}",counter=~"page_faults|page_prefetch"}[1m]))`],
    ['pages invalidated', `sum(increase(rdma_port_hw_counter_total{instance="${instance}",counter="page_invalidations"}[1m]))`],
    ['migrations of the workload\'s MR', `sum(increase(rdma_mr_counter_total{instance="${instance}",counter="migrations"}[1m]))`],
  ]);
  let empty: string[] = [];
  const since = Date.now();
  const deadline = since + QUERY_WAIT_MS;
  do {
    await sleep(3_000);
    empty = [];
    for (const q of queries) {
      const answer = await query(prometheus.base, q.expr);
      if (answer.status !== 'success') empty.push(`${q.what}: ${answer.error ?? answer.status}`);
      else if (!answer.data?.result.length) empty.push(q.what);
    }
    for (const [what, expr] of busy) {
      if (Number((await query(prometheus.base, expr)).data?.result[0]?.value[1] ?? 0) > 0) busy.delete(what);
    }
  } while ((empty.length || busy.size) && Date.now() < deadline);
  const idle = [...busy.keys()];
  t.comment(`the dashboard's queries, ${Math.round((Date.now() - since) / 1000)} s after Prometheus started`);

  const targets = (await (await fetch(`${prometheus.base}/api/v1/targets`)).json()) as
    { data: { activeTargets: { health: string; lastError: string; lastScrapeDuration: number }[] } };
  const scraped = targets.data.activeTargets[0];
  t.equal(scraped?.health, 'up', `Prometheus scrapes the guest (last scrape ${scraped?.lastScrapeDuration.toFixed(3)} s)`,
    { lastError: scraped?.lastError, log: prometheus.log().slice(-2000) });
  t.same(empty, [], `every query of the dashboard (${queries.length}) returns data; those that do not name their panel`);
  t.same(idle, [], 'the workload shows: pages faulted in, invalidated and migrated within a minute');
  const failing = await query(prometheus.base, `rdma_scrape_error{instance="${instance}"} == 1`);
  t.same(failing.data?.result.map((r) => `${r.metric.source} ${r.metric.device ?? ''}`.trim()), [], 'every source of the guest\'s metrics could be read');
  const metadata = (await (await fetch(`${prometheus.base}/api/v1/metadata`)).json()) as
    { data: Record<string, { type: string }[]> };
  const typeOf = (name: string): string | undefined => metadata.data[name]?.[0]?.type;
  t.same({
    rdma_mr_pages: typeOf('rdma_mr_pages'), rdma_mr_suspended_pages: typeOf('rdma_mr_suspended_pages'),
    rdma_mr_counter_total: typeOf('rdma_mr_counter_total'), rdma_port_hw_counter_total: typeOf('rdma_port_hw_counter_total'),
    process_cpu_user_seconds_total: typeOf('process_cpu_user_seconds_total'),
  }, {
    rdma_mr_pages: 'gauge', rdma_mr_suspended_pages: 'gauge', rdma_mr_counter_total: 'counter',
    rdma_port_hw_counter_total: 'counter', process_cpu_user_seconds_total: 'counter',
  }, 'Prometheus took each family\'s type: pages are gauges, faults and CPU time counters');
});
