// The model of the host (control/src/model.ts) over a source that counts what it is asked
// (this host has no RDMA devices; the in-VM suite runs the model over the kernel): one dump in
// flight per device however many ask, dumps spaced by their cost, MRs named by events read
// alone, changes published; and the MR list's paging (api/src/mr-query.ts).
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';

import { MrSorter, checkSort, mrPage } from '../api/src/mr-query.js';
import { EventHub, HostModel, type Device, type Event, type ModelSource, type Mr } from '../control/src/index.js';

const mr = (device: string, mrn: number, extra: Partial<Mr> = {}): Mr => ({
  device, mrn, kind: 'explicit', length: `0x${(0x1000 * (1 + (mrn % 7))).toString(16)}`, iova: '0x1000',
  lkey: `0x${(mrn * 256 + 1).toString(16)}`, rkey: '0x2', pdn: 1, pid: 100 + (mrn % 3), owner: 'app', state: 'active',
  mapped_pages: mrn % 5, suspended_pages: 0, translation_tables: 1, last_invalidation: 'none', pinned_blocks: null,
  counters: { page_faults: (mrn * 37) % 11, page_invalidations: 0 }, details: {}, ...extra,
});

const device = (name: string): Device => ({ name } as unknown as Device);

/** A host whose MRs the test changes, counting every question the model asks it. */
class FakeHost implements ModelSource {
  names = ['pfnic0'];
  mrsOf = new Map<string, Map<number, Mr>>([['pfnic0', new Map()]]);
  dumpMs = 20;
  asked = { devices: 0, dumps: 0, single: 0 };
  inFlight = 0;
  maxInFlight = 0;

  async devices(): Promise<Device[]> {
    this.asked.devices++;
    return this.names.map(device);
  }

  async mrs(name: string): Promise<Mr[]> {
    this.asked.dumps++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await sleep(this.dumpMs);
    this.inFlight--;
    return [...(this.mrsOf.get(name)?.values() ?? [])];
  }

  async mr(name: string, mrn: number): Promise<Mr | null> {
    this.asked.single++;
    return this.mrsOf.get(name)?.get(mrn) ?? null;
  }

  set(m: Mr): void {
    if (!this.mrsOf.has(m.device)) this.mrsOf.set(m.device, new Map());
    this.mrsOf.get(m.device)!.set(m.mrn, m);
  }
}

const quietHub = (): EventHub => new EventHub({ path: '/nonexistent/pfnic-events', devicesDir: '/nonexistent' });

t.test('one dump in flight per device, however many ask', async (t) => {
  const host = new FakeHost();
  for (let i = 0; i < 100; i++) host.set(mr('pfnic0', i));
  const model = new HostModel(host, { intervalMs: 60_000, dutyCycle: 1 });
  t.teardown(() => model.stop());
  await model.mrsReady();
  t.equal(model.mrs().length, 100, 'the first read holds every MR');
  const before = host.asked.dumps;
  await Promise.all(Array.from({ length: 50 }, () => model.refresh(0)));
  t.equal(host.maxInFlight, 1, 'never two dumps of a device at once');
  t.ok(host.asked.dumps - before <= 2, `50 clients asking for fresh MRs at once: ${host.asked.dumps - before} dumps`);
  host.set(mr('pfnic0', 500));
  await model.refresh(0);
  t.ok(model.mr('pfnic0', 500), 'a refresh asked for after a change sees it');
  const asked = { ...host.asked };
  for (let i = 0; i < 20; i++) {
    model.mrs();
    model.devices();
    model.totals();
  }
  t.same(host.asked, asked, 'reading the model asks the host nothing');
});

t.test('clients asking for fresh MRs do not make the kernel dump more than its share', async (t) => {
  const host = new FakeHost();
  host.dumpMs = 20;
  const model = new HostModel(host, { intervalMs: 60_000, dutyCycle: 0.05 });
  t.teardown(() => model.stop());
  await model.mrsReady();
  const before = host.asked.dumps;
  const end = performance.now() + 500;
  let asked = 0;
  while (performance.now() < end) {
    await model.refresh(0);
    asked++;
    await sleep(5);
  }
  const dumps = host.asked.dumps - before;
  // 20 ms dumps at a twentieth of the time: one every 400 ms
  t.ok(dumps <= 2, `${asked} refreshes asked for in 0.5 s made ${dumps} dumps`);
});

t.test('dumps take a bounded share of the time', async (t) => {
  const host = new FakeHost();
  host.dumpMs = 40;
  const model = new HostModel(host, { intervalMs: 1, dutyCycle: 0.2 });
  t.teardown(() => model.stop());
  await model.mrsReady();
  const start = host.asked.dumps;
  await sleep(1000);
  const dumps = host.asked.dumps - start;
  // 40 ms dumps at most a fifth of the time: one every 200 ms at most, so about 5 in a second
  t.ok(dumps >= 2 && dumps <= 7, `a 40 ms dump with a duty cycle of 0.2: ${dumps} dumps in 1 s`);
});

t.test('events bring MRs up to date, and changes become events', async (t) => {
  const host = new FakeHost();
  for (let i = 1; i <= 10; i++) host.set(mr('pfnic0', i));
  const hub = quietHub();
  const model = new HostModel(host, { hub, intervalMs: 60_000, settleMs: 20, singleLimit: 4, dutyCycle: 1 });
  t.teardown(() => { model.stop(); hub.stop(); });
  await model.mrsReady();
  const seen: Event[] = [];
  hub.subscribe((e) => { if (e.type === 'mr') seen.push(e); });
  const version = model.version;
  const invalidate = (mrn: number): void => {
    hub.publish({
      time: new Date().toISOString(), type: 'invalidate', reason: 'clear', device: 'pfnic0', port: null, netdev: null, mrn,
      lkey: null, pid: null, start: '0x0', end: '0x1000', pages: 1, node: null, block: null, offlining: false, lost: null,
    });
  };
  host.set(mr('pfnic0', 3, { state: 'suspended', suspended_pages: 4 }));
  const dumps = host.asked.dumps;
  invalidate(3);
  invalidate(3);
  await sleep(100);
  t.equal(model.mr('pfnic0', 3)?.state, 'suspended', 'an invalidation naming an MR has it read again');
  t.equal(host.asked.dumps, dumps, 'alone, not with a dump');
  t.equal(host.asked.single, 1, 'once for two events close together');
  t.ok(model.version > version, 'the model\'s version moved');
  t.match(seen, [{ type: 'mr', reason: 'changed', device: 'pfnic0', mrn: 3 }], 'its change of state is published');

  host.mrsOf.get('pfnic0')!.delete(7);
  invalidate(7);
  await sleep(100);
  t.notOk(model.mr('pfnic0', 7), 'an MR named by an event and gone is dropped');
  t.match(seen.at(-1), { reason: 'removed', mrn: 7 }, 'and said to be removed');

  for (let i = 1; i <= 6; i++) invalidate(i);
  await sleep(200);
  t.equal(host.asked.dumps, dumps + 1, 'more MRs named than the limit: one dump instead');

  host.set(mr('pfnic0', 42));
  await model.refresh(0);
  t.match(seen.at(-1), { reason: 'added', mrn: 42 }, 'an MR a dump finds is said to be added');
  host.set(mr('pfnic0', 42, { lkey: '0xffff' }));
  await model.refresh(0);
  t.match(seen.slice(-2), [{ reason: 'removed', mrn: 42, lkey: '0x2a01' }, { reason: 'added', mrn: 42, lkey: '0xffff' }],
    'another registration under a reused number: the old removed, the new added');
  t.ok(seen.every((e) => e.start === null), 'MR events carry no address (only an admin may see an MR\'s)');
});

/** A model of @p host, read once, and the MR events it publishes from then on. */
async function watchedModel(t: Test, host: FakeHost): Promise<{ model: HostModel; hub: EventHub; seen: Event[] }> {
  const hub = quietHub();
  const model = new HostModel(host, { hub, intervalMs: 60_000, devicesIntervalMs: 60_000, dutyCycle: 1 });
  t.teardown(() => { model.stop(); hub.stop(); });
  await model.mrsReady();
  const seen: Event[] = [];
  hub.subscribe((e) => { if (e.type === 'mr') seen.push(e); });
  return { model, hub, seen };
}

t.test('devices come and go', async (t) => {
  const host = new FakeHost();
  host.set(mr('pfnic0', 1));
  const { model, hub, seen } = await watchedModel(t, host);
  host.names = ['pfnic0', 'rxe0'];
  host.set(mr('rxe0', 5));
  hub.publish({
    time: new Date().toISOString(), type: 'device', reason: 'register', device: 'rxe0', port: null, netdev: null, mrn: null,
    lkey: null, pid: null, start: null, end: null, pages: null, node: null, block: null, offlining: false, lost: null,
  });
  await sleep(100);
  t.same(model.devices().map((d) => d.name), ['pfnic0', 'rxe0'], 'a device notification has the list read again');
  t.ok(model.mr('rxe0', 5), 'and the new device\'s MRs read');
  t.match(seen, [{ reason: 'added', device: 'rxe0', mrn: 5 }], 'a device that comes later brings news: its MRs said to be added');
  seen.length = 0;
  host.names = ['rxe0'];
  await model.refreshDevices(0);
  t.same(model.mrs().map((m) => m.device), ['rxe0'], 'a device gone takes its MRs with it');
  t.match(seen, [{ reason: 'removed', device: 'pfnic0', mrn: 1 }], 'each said to be removed');
  t.same(model.status().refresh.map((r) => r.device), ['rxe0'], 'and its refresher stops');
});

t.test('a device renamed: its MRs said to go under the old name and come under the new', async (t) => {
  const host = new FakeHost();
  host.set(mr('pfnic0', 1));
  host.set(mr('pfnic0', 2));
  const { model, hub, seen } = await watchedModel(t, host);
  host.names = ['fast0'];
  host.mrsOf.set('fast0', new Map([...host.mrsOf.get('pfnic0')!].map(([n, m]) => [n, { ...m, device: 'fast0' }])));
  await model.refreshDevices(0);
  await model.mrsReady();
  t.same(seen.map((e) => `${e.reason} ${e.device}/${e.mrn}`).sort(),
    ['added fast0/1', 'added fast0/2', 'removed pfnic0/1', 'removed pfnic0/2'], 'removed, then added under the new name');
  t.same(model.mrs().map((m) => `${m.device}/${m.mrn}`), ['fast0/1', 'fast0/2'], 'the model holds them under it');
});

t.test('stopped and started again, the refreshers go on', async (t) => {
  const host = new FakeHost();
  host.set(mr('pfnic0', 1));
  const model = new HostModel(host, { intervalMs: 50, dutyCycle: 1 });
  t.teardown(() => model.stop());
  await model.mrsReady();
  model.stop();
  await sleep(150);
  const stopped = host.asked.dumps;
  await sleep(150);
  t.equal(host.asked.dumps, stopped, 'stopped: no dump');
  model.start();
  host.set(mr('pfnic0', 2));
  await sleep(400);
  t.ok(host.asked.dumps > stopped, `started again: dumps go on (${host.asked.dumps - stopped} more)`);
  t.ok(model.mr('pfnic0', 2), 'and see what changed');
});

t.test('an MR spanning all memory adds no bytes, whatever its kind', async (t) => {
  const host = new FakeHost();
  host.set(mr('pfnic0', 1, { length: '0x2000' }));
  host.set(mr('pfnic0', 2, { kind: 'implicit', length: '0xffffffffffffffff' }));
  host.set(mr('pfnic0', 3, { kind: 'unknown', length: '0xffffffffffffffff' }));
  host.set(mr('pfnic0', 4, { kind: 'unknown', length: '0x1000' }));
  const model = new HostModel(host, { intervalMs: 60_000, dutyCycle: 1 });
  t.teardown(() => model.stop());
  await model.mrsReady();
  t.same(model.totals().map((k) => [k.kind, k.mrs, k.bytes]), [['explicit', 1, 0x2000], ['implicit', 1, 0], ['unknown', 2, 0x1000]],
    'implicit MRs and those of unknown kind with the length of all memory count as MRs, not bytes');
});

t.test('pages of the MR list', async (t) => {
  const all = Array.from({ length: 57 }, (_, i) => mr(i % 2 ? 'rxe0' : 'pfnic0', i, i === 9 ? { mapped_pages: null } : {}));
  const sorter = new MrSorter();
  const walk = (query: Record<string, string | number>, list: Mr[] = all, version = 1): Mr[][] => {
    const pages: Mr[][] = [];
    let cursor: string | undefined;
    do {
      const sort = String(query.sort ?? 'device');
      const page = mrPage(sorter.sorted(list, version, sort), { ...query, cursor });
      pages.push(page.items as Mr[]);
      cursor = page.next ?? undefined;
    } while (cursor !== undefined && pages.length < 100);
    return pages;
  };
  const byDefault = walk({ limit: 10 });
  t.same(byDefault.map((p) => p.length), [10, 10, 10, 10, 10, 7], '57 MRs in pages of 10');
  t.same(byDefault.flat().map((m) => `${m.device}/${m.mrn}`),
    [...all].sort((a, b) => a.device.localeCompare(b.device) || a.mrn - b.mrn).map((m) => `${m.device}/${m.mrn}`),
    'by device and number, each once');
  const mapped = walk({ sort: '-mapped_pages', limit: 7 }).flat();
  t.equal(mapped.length, 57, 'sorted by a field, every MR once');
  t.ok(mapped.every((m, i) => i === 0 || (m.mapped_pages ?? -1) <= (mapped[i - 1]!.mapped_pages ?? Infinity)),
    'largest first');
  t.equal(mapped.at(-1)?.mrn, 9, 'an MR without the value comes last');
  const faults = walk({ sort: 'page_faults', limit: 20 }).flat();
  t.ok(faults.every((m, i) => i === 0 || m.counters.page_faults! >= faults[i - 1]!.counters.page_faults!), 'by a counter');
  t.same(walk({ device: 'rxe0', pid: 101, limit: 3 }).flat().map((m) => m.mrn), all.filter((m) => m.device === 'rxe0' &&
    m.pid === 101).map((m) => m.mrn), 'filtered by device and pid');
  const first = mrPage(sorter.sorted(all, 1, 'device'), { limit: 10 });
  t.equal(first.total, 57, 'the total counts every match');
  const fewer = all.filter((m) => m.mrn !== 3 && m.mrn !== 30);
  const rest = mrPage(sorter.sorted(fewer, 2, 'device'), { cursor: first.next!, limit: 100 });
  t.same(new Set([...first.items, ...rest.items].map((m) => `${m.device}/${m.mrn}`)).size, first.items.length + rest.items.length,
    'MRs removed between two pages: none is served twice');
  t.equal(first.items.length + rest.items.length, fewer.length + (first.items.some((m) => m.mrn === 30 || m.mrn === 3) ? 1 : 0),
    'and none that stayed is skipped');
  const picked = mrPage(sorter.sorted(all, 1, 'device'), { fields: 'state,counters', limit: 1 }).items[0];
  t.same(Object.keys(picked ?? {}).sort(), ['counters', 'device', 'mrn', 'state'], 'fields: those asked, with device and mrn');
  t.throws(() => mrPage(all, { fields: 'rkey,secret' }), { name: 'MrQueryError', message: /"secret" not an MR field/ },
    'an unknown field is an error');
  t.throws(() => mrPage(all, { cursor: 'garbage' }), { message: /not one this server gave/ }, 'a cursor not ours is an error');
  t.throws(() => mrPage(all, { cursor: first.next!, sort: 'mrn' }), { message: /sorted by "device", not "mrn"/ },
    'a cursor of another order is an error');
  t.throws(() => checkSort('-nonsense', all), { message: /"nonsense" is neither a field .* nor a counter/ }, 'so is an unknown sort');
});

t.test('sums by device and kind only grow', async (t) => {
  const host = new FakeHost();
  host.set(mr('pfnic0', 1, { counters: { page_faults: 10 } }));
  host.set(mr('pfnic0', 2, { counters: { page_faults: 5 } }));
  host.set(mr('pfnic0', 3, { kind: 'pinned', counters: {} }));
  const model = new HostModel(host, { intervalMs: 60_000, dutyCycle: 1 });
  t.teardown(() => model.stop());
  await model.mrsReady();
  t.match(model.totals(), [{ device: 'pfnic0', kind: 'explicit', mrs: 2, counters: { page_faults: 15 } },
    { device: 'pfnic0', kind: 'pinned', mrs: 1 }], 'by device and kind');
  host.mrsOf.get('pfnic0')!.delete(2);
  host.set(mr('pfnic0', 1, { counters: { page_faults: 12 } }));
  await model.refresh(0);
  t.match(model.totals()[0], { mrs: 1, counters: { page_faults: 17 } }, 'an MR gone keeps its count in the sum');
});
