// The dashboard in a real browser (Debian's chromium, driven by playwright-core), against a
// guest whose API is forwarded here (the lab's guest, test/vm/lab-guest.sh): it loads without a script
// error or a blocked resource, asks for a token where the server wants one to read (the
// guest's does) and with a reader's shows the guest's devices and, of its 10,000 MRs, a page
// the server sorts, takes events live as the
// guest's workload churns, and an offline action on a memory block of the DIMM shows the block's
// state changes and the migrations that moved the MR's pages out. Screenshots are kept in
// build/artifacts/.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type Request } from 'playwright-core';
import t from 'tap';

import { startForwardedGuest } from './vm/forwarded.js';

const top = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const artifacts = path.join(top, 'build/artifacts');
const browserPath = process.env.PFNIC_CHROMIUM ?? '/usr/bin/chromium';
const kernel = process.env.PFNIC_DASHBOARD_KERNEL ?? '7.x';
const token = 'dashboard-test-token-0123456789';
const readToken = 'dashboard-test-read-token-012345';
// the page must stay usable at the scale an operator meets: the server pages and sorts
const MANY = Number(process.env.PFNIC_DASHBOARD_MRS ?? 10_000);

t.test(`the dashboard in chromium, against a guest (kernel ${kernel})`, { skip: existsSync(browserPath) ? false : `no browser at ${browserPath}` }, async (t) => {
  mkdirSync(artifacts, { recursive: true });
  // no moves between the nodes: the MR's pages stay in the DIMM for the offline action
  const guest = await startForwardedGuest(t, top, ['--timeout', '400', '--numa', '--dimm', '384M'], kernel,
    ['sh', '-c', `PFNIC_LAB_MIGRATE=0 PFNIC_LAB_MRS=${MANY} exec test/vm/lab-guest.sh {port} ${token} ${readToken}`]);
  if (!guest) return;
  const base = `http://127.0.0.1:${guest.port}`;

  const browser = await chromium.launch({ executablePath: browserPath, args: ['--no-sandbox'] });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`script error: ${e.message}`));
  // Before it has a token, the server's 401s are what the page is expected to meet: on the
  // requests it sent without one before it sent any with one. Such a request can come back
  // long after the token was given when the guest answers slowly; one sent without a token
  // after that, or any other refusal, is a problem.
  let tokenSent = false;
  const beforeToken = new WeakSet<Request>();
  page.on('request', (r) => {
    if (r.headers().authorization) tokenSent = true;
    else if (!tokenSent) beforeToken.add(r);
  });
  let refusedBeforeToken = 0;
  let consoleRefusals = 0;
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (/status of 401/.test(m.text())) consoleRefusals++;
    else problems.push(`console: ${m.text()}`);
  });
  // the console says a status, not the URL: this names it
  page.on('response', (r) => {
    if (r.status() === 401 && beforeToken.has(r.request())) refusedBeforeToken++;
    else if (r.status() >= 400) problems.push(`response ${r.status()}: ${r.request().method()} ${r.url()}`);
  });
  page.on('requestfailed', (r) => {
    // a new token ends the event stream the page had open, to open it again with the token
    if (new URL(r.url()).pathname === '/v1/events' && r.failure()?.errorText === 'net::ERR_ABORTED') return;
    problems.push(`request failed: ${r.url()} (${r.failure()?.errorText ?? '?'})`);
  });
  await page.goto(base);
  await page.locator('#auth-state', { hasText: 'asks for a token to read' }).waitFor({ timeout: 30_000 });
  t.ok(refusedBeforeToken > 0 && !(await page.locator('#devices tbody tr').count()),
    'without a token the server refuses to read, and the page says it wants one');
  await page.fill('#token', readToken);
  const shot = async (name: string) => {
    const file = path.join(artifacts, `dashboard-${kernel}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    t.comment(`screenshot: ${path.relative(top, file)}`);
  };

  await page.locator('#devices tbody tr', { hasText: 'pfnic0' }).first().waitFor({ timeout: 30_000 });
  t.ok(await page.locator('#devices tbody tr', { hasText: 'rxe0' }).count(), 'the devices table shows rxe0');
  t.ok(await page.locator('#devices tbody tr', { hasText: 'pfnic0' }).count(), 'and pfnic0');
  // mr_hold's own two MRs and its MANY one-page MRs: the table shows a page of them, the
  // largest first when sorted by length
  const range = page.locator('#mr-range');
  const total = async (): Promise<number> => Number(/of (\d+)/.exec((await range.textContent()) ?? '')?.[1] ?? 0);
  const all = async (): Promise<boolean> => (await total()) >= MANY + 2;
  await range.filter({ hasText: /of \d+/ }).waitFor({ timeout: 30_000 });
  for (const end = Date.now() + 180_000; Date.now() < end && !(await all()); await sleep(1000));
  t.ok(await all(), `the MR table counts mr_hold's ${MANY + 2} MRs (${await total()})`);
  t.equal(await page.locator('#mrs tbody tr').count(), 50, 'and shows a page of 50');
  await page.locator('#mrs th[data-sort="length"]').click();
  await page.locator('#mrs th.sorted.desc[data-sort="length"]').waitFor({ timeout: 10_000 });
  const firstRow = page.locator('#mrs tbody tr').first();
  await firstRow.filter({ hasText: '8 MiB' }).waitFor({ timeout: 20_000 });
  t.match(await firstRow.textContent(), /explicit.*8 MiB.*mr_hold/, 'sorted by length by the server: the 8 MiB explicit ODP MR first');
  t.ok(await page.locator('#mrs tbody tr', { hasText: 'pinned' }).filter({ hasText: '256 KiB' }).count(), 'then its pinned MR');
  await page.locator('#mr-next').click();
  await range.filter({ hasText: /^51–100 of/ }).waitFor({ timeout: 20_000 });
  t.pass('the next page is the next 50');
  await page.locator('#mr-first').click();
  await range.filter({ hasText: /^1–50 of/ }).waitFor({ timeout: 20_000 });
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
  // the chart holds them once a sample of the invalidation rate is above zero; the page samples
  // less often while the guest answers slowly, so this waits longer than for the list
  const drawn = async (): Promise<boolean> => Number(await page.locator('#rates').getAttribute('data-max-invals')) > 0;
  t.ok(await until(drawn, 120_000), `the rate chart draws the invalidations (up to ${await page.locator('#rates').getAttribute('data-max-invals')} pages/s)`);
  t.ok(await page.locator('#rates canvas').count(), 'on its canvas');
  t.ok(await page.locator('#stream', { hasText: 'live' }).count(), 'the page says its event stream is live');
  // the lab's process watching 64 ranges through /dev/ummunotify, in a row of its own
  const watcher = page.locator('#ummunotify tbody tr', { hasText: 'ummunotify' });
  t.ok(await until(async () => (await watcher.count()) === 1), 'the process watching through /dev/ummunotify is listed');
  t.equal(await watcher.locator('td').nth(3).textContent(), '64', 'with its 64 ranges');
  await shot('live');

  // an offline action: blocks of node 1 until one moves the MR's pages out (an admin's token),
  // each confirmed in the page's dialog
  const asked: string[] = [];
  page.on('dialog', (d) => { asked.push(d.message()); void d.accept(); });
  await page.fill('#token', token);
  await sleep(1000);
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
  t.match(asked[0], /^Take memory block \d+ of node 1 offline\?/, 'each after the operator confirmed it');
  const migration = await page.locator('#events li.migrate').first().textContent();
  t.match(migration, /migrate .*pfnic0 mrn \d+ \(mr_hold, pid \d+\).* out of block \d+ \(node 1\), which is going offline/,
    `as: ${migration}`);
  t.ok(await page.locator('#events li.memory', { hasText: 'going_offline' }).count(), 'after the block\'s going_offline');
  await shot('offline');
  // each refusal the console reported was one of the expected ones
  if (consoleRefusals > refusedBeforeToken) problems.push(`console: ${consoleRefusals - refusedBeforeToken} more 401s than were expected`);
  t.same(problems, [], 'no script error, console error or failed request all along');
});
