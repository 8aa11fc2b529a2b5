// What the control plane shows of /dev/ummunotify (control/src/ummunotify.ts, GET
// /v1/ummunotify, the pfnic_ummunotify_* metrics), against a /proc tree made here: files
// found through every process's descriptors, one file held by two processes listed once,
// other devices and files without the module's keys passed over, sums by process, totals that
// only grow, scans spaced by their duty cycle. The guest's lab test reads a real one.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';

import { buildApp } from '../api/src/app.js';
import {
  UmmunotifyView, parseFdinfo, scanUmmunotify, type UmmunotifyFile, type UmmunotifyScan,
} from '../control/src/index.js';

const fdinfo = (f: Partial<Record<string, number>>): string =>
  'pos:\t0\nflags:\t0100000\nmnt_id:\t24\nino:\t5\n' +
  Object.entries(f).map(([k, v]) => `ummunotify-${k}:\t${v}\n`).join('');

function fakeProc(): string {
  const root = mkdtempSync(path.join(tmpdir(), 'pfnic-proc-'));
  writeFileSync(path.join(root, 'misc'), '229 fuse\n 58 ummunotify\n183 hw_random\n');
  const fd = (pid: number, n: number, target: string, info?: string): void => {
    mkdirSync(path.join(root, String(pid), 'fd'), { recursive: true });
    mkdirSync(path.join(root, String(pid), 'fdinfo'), { recursive: true });
    symlinkSync(target, path.join(root, String(pid), 'fd', String(n)));
    if (info !== undefined) writeFileSync(path.join(root, String(pid), 'fdinfo', String(n)), info);
  };
  const comm = (pid: number, name: string): void => writeFileSync(path.join(root, String(pid), 'comm'), `${name}\n`);
  const cache = { id: 7, 'owner-pid': 100, released: 0, ranges: 3, 'max-ranges': 2097152, 'watched-bytes': 12288, changed: 1,
    'range-changes': 40, generation: 17, 'events-read': 30 };
  fd(100, 3, '/dev/ummunotify', fdinfo(cache));
  fd(100, 4, '/dev/null');
  fd(100, 6, '/dev/ummunotify', fdinfo({ ...cache, id: 8, ranges: 2, 'watched-bytes': 8192, changed: 0, 'range-changes': 2, 'events-read': 1 }));
  comm(100, 'ucx_perftest');
  // a child that inherited the first file
  fd(101, 5, '/dev/ummunotify', fdinfo(cache));
  comm(101, 'ucx_perftest');
  // another process's file, its owner gone: the holder is the one left
  fd(102, 3, '/dev/ummunotify', fdinfo({ ...cache, id: 9, 'owner-pid': 0, released: 1, ranges: 1, 'watched-bytes': 4096, changed: 1,
    'range-changes': 5, 'events-read': 0 }));
  // a device named so by something else: no keys of the module
  fd(103, 3, '/dev/ummunotify', 'pos:\t0\nflags:\t0100000\n');
  mkdirSync(path.join(root, '104'));
  mkdirSync(path.join(root, 'self'));
  return root;
}

t.test('fdinfo lines are read by key, the rest passed over', async (t) => {
  const f = parseFdinfo(fdinfo({ id: 3, 'owner-pid': 42, released: 1, ranges: 5, 'future-key': 9 }) + 'ummunotify-changed:\tmany\n');
  t.same(f, {
    id: 3, pid: 42, released: true, ranges: 5, max_ranges: 0, watched_bytes: 0, changed: 0, range_changes: 0, generation: 0,
    events_read: 0,
  }, 'the keys it knows, 0 for those missing, an unknown key and a bad value ignored');
  t.equal(parseFdinfo('pos:\t0\nflags:\t02\n'), null, 'a file without the module\'s id is none of its');
});

t.test('a scan finds each file once, with the processes that hold it', async (t) => {
  const root = fakeProc();
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const scan = await scanUmmunotify({ procRoot: root });
  t.equal(scan.loaded, true, 'the module is loaded: /proc/misc lists it');
  t.same(scan.files.map((f) => [f.id, f.pid, f.command, f.holders]), [
    [7, 100, 'ucx_perftest', [100, 101]],
    [8, 100, 'ucx_perftest', [100]],
    [9, 0, null, [102]],
  ], 'files 7 (inherited by 101), 8, and 9 whose owner is gone; /dev/null and the keyless file passed over');
  t.equal(scan.files[0]!.ranges, 3, 'with what fdinfo says');

  writeFileSync(path.join(root, 'misc'), '229 fuse\n');
  t.same(await scanUmmunotify({ procRoot: root }), { loaded: false, files: [], unreadable: 0 },
    'without the module, no walk of the processes');
});

t.test('the view sums by process, keeps totals growing, and spaces its scans', async (t) => {
  const file = (id: number, pid: number, ranges: number, rangeChanges: number, eventsRead: number): UmmunotifyFile => ({
    id, pid, command: `p${pid}`, holders: [pid], released: false, ranges, max_ranges: 100, watched_bytes: ranges * 4096, changed: 0,
    range_changes: rangeChanges, generation: rangeChanges, events_read: eventsRead,
  });
  let next: UmmunotifyScan = { loaded: true, unreadable: 0, files: [file(1, 10, 4, 5, 6), file(2, 10, 1, 1, 1), file(3, 20, 9, 0, 0)] };
  let scans = 0;
  const view = new UmmunotifyView({
    scan: async () => { scans++; await sleep(20); return next; }, maxAgeMs: 0, dutyCycle: 1,
  });
  const [a, b] = await Promise.all([view.state(), view.state()]);
  t.equal(scans, 1, 'two callers at once: one scan');
  t.equal(a, b, 'both get it');
  t.same(a.processes.map((p) => [p.pid, p.files, p.ranges, p.range_changes]), [[20, 1, 9, 0], [10, 2, 5, 6]],
    'by process, most ranges first');
  t.same(a.totals, { files: 3, processes: 2, ranges: 14, watched_bytes: 14 * 4096, changed: 0, range_changes: 6, events_read: 7 },
    'totals');

  // file 1 closes, file 2 counts on, and id 3 is another file now (the module loaded again)
  next = { loaded: true, unreadable: 0, files: [file(2, 10, 1, 4, 2), file(3, 30, 1, 0, 0)] };
  await sleep(25);
  const c = await view.state();
  t.equal(scans, 2, 'a scan after the last one\'s time has passed');
  t.same([c.totals.range_changes, c.totals.events_read], [5 + 4 + 0, 6 + 2 + 0], 'the closed file\'s counts stay in the totals');
  next = { loaded: true, unreadable: 0, files: [file(2, 10, 1, 4, 2)] };
  await sleep(25);
  t.same((await view.state()).totals.range_changes, 9, 'so do those of a file gone with fewer');

  // a file missing from one walk (its descriptor in flight between processes) and back: counted once
  next = { loaded: true, unreadable: 0, files: [file(2, 10, 1, 4, 2), file(4, 40, 1, 7, 0)] };
  await sleep(25);
  t.equal((await view.state()).totals.range_changes, 9 + 7, 'a new file adds its changes');
  next = { loaded: true, unreadable: 0, files: [file(2, 10, 1, 4, 2)] };
  await sleep(25);
  t.equal((await view.state()).totals.range_changes, 16, 'missed by a walk, its changes stay');
  next = { loaded: true, unreadable: 0, files: [file(2, 10, 1, 4, 2), file(4, 40, 1, 8, 0)] };
  await sleep(25);
  t.equal((await view.state()).totals.range_changes, 9 + 8, 'and seen again, they are not counted twice');

  const stuck = new UmmunotifyView({ scan: () => new Promise(() => {}), timeoutMs: 100 });
  await t.rejects(stuck.state(), /the walk of the processes took over 0.1 s/, 'a first walk that does not end fails in time');

  const spaced = new UmmunotifyView({ scan: async () => { scans++; await sleep(30); return next; }, maxAgeMs: 0, dutyCycle: 0.05 });
  const before = scans;
  await spaced.state();
  await spaced.state(0);
  t.equal(scans - before, 1, 'a scan of 30 ms is not followed by another within 600 ms, however asked');
  t.equal(spaced.counters.scans, 1, 'and it is counted');
});

t.test('GET /v1/ummunotify and the metrics show it', async (t) => {
  const root = fakeProc();
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const app = await buildApp({ ummunotify: { scan: () => scanUmmunotify({ procRoot: root }) } });
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'GET', url: '/v1/ummunotify' });
  t.equal(res.statusCode, 200, '200');
  const body = res.json<{ loaded: boolean; files: UmmunotifyFile[]; processes: { pid: number; ranges: number }[];
    totals: Record<string, number> }>();
  t.equal(body.loaded, true, 'loaded');
  t.same(body.processes.map((p) => [p.pid, p.ranges]), [[100, 5], [0, 1]], 'ranges by process');
  t.same(body.totals, { files: 3, processes: 2, ranges: 6, watched_bytes: 24576, changed: 2, range_changes: 47, events_read: 31 },
    'and in all');
  t.ok(res.headers['x-data-age'] !== undefined, 'with the age of the walk');

  const metrics = await app.inject({ method: 'GET', url: '/metrics' });
  for (const line of ['pfnic_ummunotify_loaded 1', 'pfnic_ummunotify_files 3', 'pfnic_ummunotify_ranges 6',
    'pfnic_ummunotify_watched_bytes 24576', 'pfnic_ummunotify_changed_ranges 2', 'pfnic_ummunotify_range_changes_total 47',
    'pfnic_ummunotify_events_read_total 31', 'rdma_scrape_error{source="ummunotify"} 0']) {
    t.ok(metrics.body.split('\n').includes(line), `metrics: ${line}`);
  }
  t.match(metrics.body, /# TYPE pfnic_ummunotify_range_changes_total counter/, 'changes are a counter');
  t.match(metrics.body, /# TYPE pfnic_ummunotify_changed_ranges gauge/, 'ranges changed now a gauge');
});

t.test('without the module, or when the walk fails, no ummunotify series but the flags', async (t) => {
  const app = await buildApp({ ummunotify: { scan: async () => ({ loaded: false, files: [], unreadable: 0 }) } });
  t.teardown(() => app.close());
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(text, /^pfnic_ummunotify_loaded 0$/m, 'not loaded: 0');
  t.notMatch(text, /^pfnic_ummunotify_(files|ranges|range_changes_total|events_read_total) /m, 'and no other series, not zeros');
});

t.test('a walk that fails after one that did not: the last one, saying why it is old', async (t) => {
  const root = fakeProc();
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  let failing = false;
  const app = await buildApp({
    ummunotify: {
      scan: async () => { if (failing) throw new Error('the walk of the processes took over 30 s'); return scanUmmunotify({ procRoot: root }); },
      maxAgeMs: 0, dutyCycle: 1,
    },
  });
  t.teardown(() => app.close());
  t.equal((await app.inject({ method: 'GET', url: '/v1/ummunotify' })).json<{ error: string | null }>().error, null, 'a good walk: no error');
  failing = true;
  await sleep(20);
  const res = await app.inject({ method: 'GET', url: '/v1/ummunotify', headers: { 'cache-control': 'no-cache' } });
  t.equal(res.statusCode, 200, 'then a failed one: still 200');
  t.match(res.json(), { error: /took over 30 s/, totals: { files: 3 } }, 'with the last walk\'s files and why they are old');
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(metrics, /^rdma_scrape_error\{source="ummunotify"\} 1$/m, '/metrics flags the failed walk');
  t.match(metrics, /^pfnic_ummunotify_files 3$/m, 'and keeps the last walk\'s series');
});

t.test('a scan that fails is a scrape error, not a failed scrape', async (t) => {
  const app = await buildApp({ ummunotify: { scan: async () => { throw new Error('EACCES: /proc'); } } });
  t.teardown(() => app.close());
  const metrics = await app.inject({ method: 'GET', url: '/metrics' });
  t.equal(metrics.statusCode, 200, '/metrics answers');
  t.match(metrics.body, /rdma_scrape_error\{source="ummunotify"\} 1/, 'flagging the source');
  t.notMatch(metrics.body, /^pfnic_ummunotify_\w+ /m, 'and leaving its series out');
  const res = await app.inject({ method: 'GET', url: '/v1/ummunotify' });
  t.equal(res.statusCode, 503, 'GET /v1/ummunotify says the walk failed');
  t.match(res.json(), { status: 503, detail: /EACCES/ }, 'and why');
});
