// /metrics: the text exposition format, well formed line by line (HELP and TYPE before each
// family's samples, names, labels, values); what this host has (memory blocks, no RDMA);
// and the per-MR series bounded however many MRs there are (renderMetrics on made-up MRs:
// this host has none).
import t, { type Test } from 'tap';

import { buildApp } from '../api/src/app.js';
import { EventHub, renderMetrics, type Mr } from '../control/src/index.js';

/** Checks the exposition format; returns samples by "name{labels}". */
function parse(t: Test, text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const declared = new Map<string, string>();
  const bad: string[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (m) {
      if (m[1] === 'TYPE') {
        if (!['gauge', 'counter'].includes(m[3]!)) bad.push(line);
        declared.set(m[2]!, m[3]!);
      }
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\n"])*",?)*\})? (-?[0-9.e+]+|NaN|[+-]Inf)$/.exec(line);
    if (!m || !declared.has(m[1]!)) { bad.push(line); continue; }
    if (declared.get(m[1]!) === 'counter' && !m[1]!.endsWith('_total')) bad.push(`${line} (a counter not named _total)`);
    samples.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]));
  }
  t.same(bad, [], 'every line is well formed, every sample declared');
  return samples;
}

t.test('/metrics on this host', async (t) => {
  const app = await buildApp({ events: new EventHub({ path: '/nonexistent/pfnic-events' }) });
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'GET', url: '/metrics' });
  t.equal(res.statusCode, 200, 'GET /metrics answers 200');
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/, 'in the text format, version 0.0.4');
  const samples = parse(t, res.body);
  const blocks = [...samples].filter(([k]) => k.startsWith('rdma_memory_blocks{')).reduce((n, [, v]) => n + v, 0);
  const list = (await app.inject({ method: 'GET', url: '/v1/memory/blocks' })).json() as unknown[];
  t.equal(blocks, list.length, `rdma_memory_blocks counts every block (${list.length})`);
  t.equal(samples.get('pfnic_event_channel_up'), 0, 'no pfnic here: the event channel is down');
  t.equal(samples.get('rdma_mr_series_left_out'), 0, 'no MRs, none left out');
});

t.test('per-MR series stay bounded', async (t) => {
  const mr = (mrn: number, faults: number): Mr => ({
    device: 'pfnic0', mrn, kind: 'explicit', length: '0x1000', iova: null, lkey: '0x1', rkey: '0x1', pdn: 0,
    pid: 100, owner: 'app "x"\\y', state: 'active', mapped_pages: 1, suspended_pages: 0, translation_tables: 1,
    last_invalidation: 'none', pinned_blocks: null, counters: { page_faults: faults, page_invalidations: 1 }, details: {},
  });
  const mrs = Array.from({ length: 200 }, (_, i) => mr(i, (i * 37) % 200));
  const text = await renderMetrics({ devices: [], mrs, blocks: [], events: new Map(), channelUp: true, perMrLimit: 10 });
  const samples = parse(t, text);
  const infos = [...samples.keys()].filter((k) => k.startsWith('rdma_mr_info{'));
  t.equal(infos.length, 10, '200 MRs, a limit of 10: 10 MRs get series of their own');
  t.equal(samples.get('rdma_mr_series_left_out'), 190, 'the other 190 are counted');
  const top = mrs.sort((a, b) => b.counters.page_faults! - a.counters.page_faults!).slice(0, 10).map((m) => m.mrn);
  t.ok(top.every((n) => infos.some((k) => k.includes(`mrn="${n}"`))), 'they are the busiest (most faults and invalidations)');
  t.equal(samples.get('rdma_mrs{device="pfnic0",kind="explicit"}'), 200, 'the aggregate counts all 200');
  t.equal(samples.get('rdma_mr_counter_sum{device="pfnic0",counter="page_invalidations"}'), 200, 'and sums their counters');
  t.ok(infos.every((k) => k.includes('owner="app \\"x\\"\\\\y"')), 'label values are escaped');
});
