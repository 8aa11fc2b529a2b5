// The Grafana dashboard (api/grafana/pfnic.json) reads only what /metrics exports: every
// series its queries name is a family RdmaMetrics writes, counters go through rate(), every
// panel has a query, and no query does arithmetic between series whose labels differ (their
// vector matching would never pair them: no data, ever). Whether every query returns data
// from a real Prometheus is the lab test's (test/lab.test.ts).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

import { RdmaMetrics } from '../control/src/index.js';

const top = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Panel { title: string; targets?: { expr: string }[] }

/**
 * The places where `A op B` does arithmetic between two range-vector functions of series
 * whose equality matchers differ on a label, with no on()/ignoring() to say which labels to
 * match on: one-to-one matching on all labels pairs no series, so the result is empty.
 */
function mismatchedArithmetic(expr: string): string[] {
  const selector = String.raw`\b[a-z_]+\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}\[[^\]]*\]\s*\)`;
  // the right operand in a lookahead: it may be the left one of the next pair (a + b + c)
  const pair = new RegExp(`${selector}\\s*([-+*/%^])\\s*(?=(?!on\\b|ignoring\\b|bool\\b)${selector})`, 'g');
  const equalities = (matchers: string): Map<string, string> =>
    new Map([...matchers.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
  const found: string[] = [];
  for (let m = pair.exec(expr); m; m = pair.exec(expr)) {
    const left = equalities(m[2]!);
    const right = equalities(m[5]!);
    const differing = [...left].filter(([k, v]) => right.has(k) && right.get(k) !== v).map(([k]) => k);
    if (differing.length) found.push(`${m[1]} ${m[3]} ${m[4]}: ${differing.join(', ')} differ`);
  }
  return found;
}

t.test('the arithmetic check finds what matches nothing', async (t) => {
  t.same(mismatchedArithmetic('rate(x_total{counter="a"}[1m]) + rate(x_total{counter="b"}[1m])'), ['x_total + x_total: counter differ'],
    'two rates of one family whose counter labels differ');
  t.same(mismatchedArithmetic('rate(x_total{counter="a"}[1m]) + ignoring (counter) rate(x_total{counter="b"}[1m])'), [],
    'unless told which labels to ignore');
  t.same(mismatchedArithmetic('sum(rate(x_total{counter=~"a|b"}[1m]))'), [], 'one selector of both is fine');
});

t.test('the Grafana dashboard queries what /metrics exports', async (t) => {
  const dash = JSON.parse(readFileSync(path.join(top, 'api/grafana/pfnic.json'), 'utf8')) as
    { uid: string; panels: Panel[]; templating: { list: { name: string; query: unknown }[] } };
  const metrics = new RdmaMetrics({
    sources: {
      devices: async () => [], mrs: async () => [], blocks: async () => [],
      portCounters: async () => ({ counters: new Map(), hwCounters: new Map() }),
    },
    events: () => new Map(), channelUp: () => false, perMrLimit: 1,
  });
  const text = await metrics.metrics();
  const types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
  t.ok(dash.panels.length >= 10, `it has panels (${dash.panels.length})`);
  const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((x) => ({ panel: p.title, expr: x.expr })));
  t.ok(dash.panels.every((p) => (p.targets ?? []).length > 0), 'every panel has a query');
  const unknown: string[] = [];
  const unrated: string[] = [];
  const mismatched: string[] = [];
  for (const { panel, expr } of exprs) {
    for (const m of expr.matchAll(/\b((?:rdma|pfnic|node_infiniband|process|nodejs)_[a-z_]+)\b/g)) {
      const name = m[1]!;
      if (!types.has(name)) unknown.push(`${panel}: ${name}`);
      else if (types.get(name) === 'counter' && !new RegExp(`rate\\(${name}\\b`).test(expr)) unrated.push(`${panel}: ${name}`);
    }
    for (const problem of mismatchedArithmetic(expr)) mismatched.push(`${panel}: ${problem}`);
  }
  t.same(unknown, [], 'every series a query names is exported');
  t.same(unrated, [], 'counters are read through rate()');
  t.same(mismatched, [], 'no arithmetic between series whose labels differ');
  const instance = dash.templating.list.find((v) => v.name === 'instance');
  t.match(instance?.query, /^label_values\(rdma_device_info, instance\)$/, 'hosts are picked by instance');
});
