// The Grafana dashboard (api/grafana/pfnic.json) reads only what /metrics exports: every
// series its queries name is a family renderMetrics writes, counters go through rate(),
// and every panel has a query.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

import { renderMetrics } from '../control/src/index.js';

const top = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Panel { title: string; targets?: { expr: string }[] }

t.test('the Grafana dashboard queries what /metrics exports', async (t) => {
  const dash = JSON.parse(readFileSync(path.join(top, 'api/grafana/pfnic.json'), 'utf8')) as
    { uid: string; panels: Panel[]; templating: { list: { name: string; query: unknown }[] } };
  const text = await renderMetrics({ devices: [], mrs: [], blocks: [], events: new Map(), channelUp: false, perMrLimit: 1 });
  const types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
  t.ok(dash.panels.length >= 10, `it has panels (${dash.panels.length})`);
  const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((x) => ({ panel: p.title, expr: x.expr })));
  t.ok(dash.panels.every((p) => (p.targets ?? []).length > 0), 'every panel has a query');
  const unknown: string[] = [];
  const unrated: string[] = [];
  for (const { panel, expr } of exprs) {
    for (const m of expr.matchAll(/\b((?:rdma|pfnic)_[a-z_]+)\b/g)) {
      const name = m[1]!;
      if (!types.has(name)) unknown.push(`${panel}: ${name}`);
      else if (types.get(name) === 'counter' && !new RegExp(`rate\\(${name}\\b`).test(expr)) unrated.push(`${panel}: ${name}`);
    }
  }
  t.same(unknown, [], 'every series a query names is exported');
  t.same(unrated, [], 'counters are read through rate()');
  const instance = dash.templating.list.find((v) => v.name === 'instance');
  t.match(instance?.query, /^label_values\(rdma_device_info, instance\)$/, 'hosts are picked by instance');
});
