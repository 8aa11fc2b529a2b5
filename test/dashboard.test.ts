// The dashboard in a real browser (Debian's chromium, driven by playwright-core), against a
// guest whose API is forwarded here (the lab's guest, test/vm/lab-guest.sh): it loads without a script
// error or a blocked resource, shows the guest's devices and MRs, takes events live as the
// guest's workload churns, and an offline action on a memory block of the DIMM shows the block's
// state changes and the migrations that moved the MR's pages out. Screenshots are kept in
// build/artifacts/.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';
import t from 'tap';

import { startForwardedGuest } from './vm/forwarded.js';

const top = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const artifacts = path.join(top, 'build/artifacts');
const browserPath = process.env.PFNIC_CHROMIUM ?? '/usr/bin/chromium';
const kernel = process.env.PFNIC_DASHBOARD_KERNEL ?? '7.x';
const token = 'dashboard-test-token-0123456789';

t.test(`the dashboard in chromium, against a guest (kernel ${kernel})`, { skip: existsSync(browserPath) ? false : `no browser at ${browserPath}` }, async (t) => {
  mkdirSync(artifacts, { recursive: true });
  // no moves between the nodes: the MR's pages stay in the DIMM for the offline action
  const guest = await startForwardedGuest(t, top, ['--timeout', '400', '--numa', '--dimm', '384M'], kernel,
    ['sh', '-c', `PFNIC_LAB_MIGRATE=0 exec test/vm/lab-guest.sh {port} ${token}`]);
  if (!guest) return;
  const base = `http://127.0.0.1:${guest.port}`;

  const browser = await chromium.launch({ executablePath: browserPath, args: ['--no-sandbox'] });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`script error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()}`));
  await page.goto(base);
  const shot = async (name: string) => {
    const file = path.join(artifacts, `dashboard-${kernel}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    t.comment(`screenshot: ${path.relative(top, file)}`);
  };

  await page.locator('#devices tbody tr', { hasText: 'pfnic0' }).first().waitFor({ timeout: 30_000 });
  t.ok(await page.locator('#devices tbody tr', { hasText: 'rxe0' }).count(), 'the devices table shows rxe0');
  t.ok(await page.locator('#devices tbody tr', { hasText: 'pfnic0' }).count(), 'and pfnic0');
  const mrRow = page.locator('#mrs tbody tr', { hasText: 'mr_hold' }).filter({ hasText: 'explicit' });
  await mrRow.first().waitFor({ timeout: 30_000 });
  t.equal(await mrRow.count(), 1, 'the MR table shows mr_hold\'s explicit ODP MR');
  t.ok(await page.locator('#mrs tbody tr', { hasText: 'mr_hold' }).filter({ hasText: 'pinned' }).count(),
    'and its pinned MR');
  await page.locator('#channel', { hasText: 'open' }).waitFor({ timeout: 20_000 });
  t.pass('the event channel shows as open');
  await shot('loaded');

  // live: the guest's churn makes invalidations; the list grows without a reload
  const invalidations = page.locator('#events li.invalidate', { hasText: 'mr_hold' });
  await invalidations.first().waitFor({ timeout: 30_000 });
  const seen = await invalidations.count();
  // polled from here through locators: the page's own content security policy forbids the
  // eval that page-side predicates would need, and it stays on
  const until = async (what: () => Promise<boolean>, ms = 30_000): Promise<boolean> => {
    for (const end = Date.now() + ms; Date.now() < end; await sleep(250)) if (await what()) return true;
    return what();
  };
  await until(async () => (await page.locator('#events li.invalidate').count()) > seen);
  const more = await page.locator('#events li.invalidate').count();
  t.ok(more > seen, `invalidations arrive live, naming the MR's owner (${seen}, then ${more})`);
  // the chart has drawn them when a point of its line stands above the axis; the page samples
  // less often while the guest answers slowly, so this waits longer than for the list
  const axis = Number(await page.locator('#rates line.axis').getAttribute('y1'));
  const above = async (): Promise<boolean> => ((await page.locator('#rates polyline.invals').getAttribute('points')) ?? '')
    .split(' ').some((xy) => Number(xy.split(',')[1]) < axis - 0.5);
  t.ok(await until(above, 120_000), 'the rate chart draws the invalidations: its line rises above the axis');
  await shot('live');

  // an offline action: blocks of node 1 until one moves the MR's pages out
  await page.fill('#token', token);
  const node1: number[] = [];
  const rows = page.locator('#blocks tbody tr');
  for (let i = 0; i < await rows.count(); i++) {
    const cells = rows.nth(i).locator('td');
    if (await cells.nth(1).textContent() === '1' && await cells.nth(2).textContent() === 'online') {
      node1.push(Number(await rows.nth(i).getAttribute('data-block')));
    }
  }
  t.ok(node1.length >= 2, `the DIMM's blocks are listed online on node 1 (${node1.join(' ')})`);
  let migrated = false;
  for (const block of node1) {
    await page.locator(`#blocks tbody tr[data-block="${block}"] button`).click();
    await page.locator('#action-result', { hasText: `block ${block} is offline` }).waitFor({ timeout: 60_000 });
    await page.locator('#events li.memory', { hasText: `memory block ${block} (node 1): offline` }).waitFor({ timeout: 30_000 });
    migrated = (await page.locator('#events li.migrate', { hasText: `out of block ${block}` }).count()) > 0;
    if (migrated) break;
  }
  t.ok(migrated, 'offlining a block of the DIMM shows migrations out of it naming the MR');
  const migration = await page.locator('#events li.migrate').first().textContent();
  t.match(migration, /migrate .*pfnic0 mrn \d+ \(mr_hold, pid \d+\).* out of block \d+ \(node 1\), which is going offline/,
    `as: ${migration}`);
  t.ok(await page.locator('#events li.memory', { hasText: 'going_offline' }).count(), 'after the block\'s going_offline');
  await shot('offline');
  t.same(problems, [], 'no script error, console error or failed request all along');
});
