// The event routes on this host, over real HTTP: the SSE stream's framing, replay from
// Last-Event-ID (which wins over ?after=) with a gap event when the history no longer
// holds some, ids of another run of the server (epochs), ids not understood, one
// serialization per event, the cap on streams, heartbeats, a replay paced by the socket,
// paging through the history, bad input; the history ring's arithmetic and its cost. The
// events are published into the hub here (this host has no pfnic); the in-VM suite has
// the kernel make them.
import { performance } from 'node:perf_hooks';
import { createConnection } from 'node:net';
import Fastify from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import t, { type Test } from 'tap';

import { buildApp } from '../api/src/app.js';
import { eventRoutes, type EventRouteOptions } from '../api/src/routes/events.js';
import { EventHub, eventFromAsync, eventFromChange, monitorOpened, type Event } from '../control/src/index.js';

const NO_CHANNEL = '/nonexistent/pfnic-events';

const sample = (pages: number): Omit<Event, 'id' | 'epoch'> => ({
  time: new Date().toISOString(), type: 'invalidate', reason: 'clear', device: 'pfnic0', port: null, netdev: null, mrn: 1,
  lkey: '0x10', pid: 42, start: '0x1000', end: '0x2000', pages, node: null, block: null,
  offlining: false, lost: null,
});

interface Gap { after: number | string; missed: number | null; reason: string }

/** An open SSE stream read as it comes: its frames (the text between blank lines; an unframed rest last). */
async function connect(url: string, headers: Record<string, string> = {}) {
  const ac = new AbortController();
  const res = await fetch(url, { headers, signal: ac.signal });
  const frames: string[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  const reading = (async () => {
    if (!res.body) return;
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          frames.push(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
        wake?.();
      }
      if (buf !== '') frames.push(buf);
    } catch {
      // aborted by close()
    }
  })().finally(() => { ended = true; wake?.(); });
  return {
    res,
    frames,
    get ended() { return ended; },
    /** Waits until @p pred holds of the frames, the stream ends or 10 s pass; says whether it holds. */
    async until(pred: (frames: string[]) => boolean): Promise<boolean> {
      const deadline = Date.now() + 10_000;
      while (!pred(frames) && !ended && Date.now() < deadline) {
        await new Promise<void>((r) => { wake = r; setTimeout(r, 50); });
      }
      return pred(frames);
    },
    async close() { ac.abort(); await reading; },
  };
}

/** Reads a stream until @p until says enough (or 10 s), then closes it; @p onOpen runs once it answered. */
async function readStream(url: string, headers: Record<string, string>, until: (frames: string[]) => boolean,
  onOpen?: () => void): Promise<{ status: number; type: string | null; frames: string[] }> {
  const s = await connect(url, headers);
  if (s.res.status === 200) {
    onOpen?.();
    await s.until(until);
  }
  await s.close();
  return { status: s.res.status, type: s.res.headers.get('content-type'), frames: s.frames };
}

const dataOf = (frame: string): unknown => JSON.parse(/^data: (.*)$/m.exec(frame)?.[1] ?? 'null');
const idOf = (frame: string): string | undefined => /^id: (.*)$/m.exec(frame)?.[1];
const isEvent = (f: string): boolean => /^event: (?!gap$)/m.test(f);
const events = (frames: string[]): Event[] => frames.filter(isEvent).map((f) => dataOf(f) as Event);
const gapFrames = (frames: string[]): string[] => frames.filter((f) => /^event: gap$/m.test(f));
const gaps = (frames: string[]): Gap[] => gapFrames(frames).map((f) => dataOf(f) as Gap);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The event routes alone, with options app.ts does not pass; the hub is not started (no addon needed). */
async function routesOnly(t: Test, hub: EventHub, options: Omit<EventRouteOptions, 'hub'> = {}): Promise<string> {
  const app = Fastify().withTypeProvider<TypeBoxTypeProvider>();
  await app.register(eventRoutes, { hub, ...options });
  t.teardown(() => app.close());
  return app.listen({ port: 0, host: '127.0.0.1' });
}

t.test('the event stream and its history', async (t) => {
  const hub = new EventHub({ path: NO_CHANNEL, historySize: 5, epoch: 'e1' });
  const app = await buildApp({ events: hub });
  t.teardown(() => app.close());
  const base = await app.listen({ port: 0, host: '127.0.0.1' });

  const empty = await app.inject({ method: 'GET', url: '/v1/events/history' });
  t.equal(empty.statusCode, 200, 'the history answers 200');
  t.match(empty.json(), { epoch: 'e1', events: [], missed: 0, next: null, oldest: null, newest: null }, 'and is empty, naming its epoch');
  // the reading thread says so soon after it tried (a busy host may take a while)
  for (let i = 0; i < 50 && hub.status.state !== 'absent'; i++) await sleep(100);
  const absent = await app.inject({ method: 'GET', url: '/v1/events/history' });
  t.match(absent.json(), { channel: { state: 'absent', message: /nonexistent/ } },
    'without the channel it says it is absent, and why');

  // live: events published after the client connected
  const got = await readStream(`${base}/v1/events`, {}, (f) => events(f).length >= 2,
    () => setTimeout(() => { hub.publish(sample(1)); hub.publish(sample(2)); }, 50));
  t.equal(got.status, 200, 'GET /v1/events answers 200');
  t.match(got.type, /^text\/event-stream/, 'as text/event-stream');
  t.match(got.frames[0], /^retry: \d+/, 'it tells the client how soon to reconnect');
  t.same(events(got.frames).map((e) => [e.epoch, e.id, e.pages]), [['e1', 1, 1], ['e1', 2, 2]], 'each event as it comes, in order');
  t.match(got.frames.find((f) => f.includes('id: e1-1')), /^id: e1-1\nevent: invalidate\ndata: \{/,
    'framed with its SSE id <epoch>-<id> and type');
  t.same(gaps(got.frames), [], 'a client that gave no id hears of no gap');

  // replay: what was missed since Last-Event-ID, then live
  for (let i = 3; i <= 6; i++) hub.publish(sample(i));
  const replay = await readStream(`${base}/v1/events`, { 'last-event-id': 'e1-3' }, (f) => events(f).length >= 3);
  t.same(events(replay.frames).map((e) => e.id), [4, 5, 6], 'Last-Event-ID e1-3 replays 4, 5, 6');
  t.same(gaps(replay.frames), [], 'with no gap: the history holds them all');
  const query = await readStream(`${base}/v1/events?after=5`, {}, (f) => events(f).length >= 1);
  t.same(events(query.frames).map((e) => e.id), [6], '?after=5 does the same');
  const queryId = await readStream(`${base}/v1/events?after=e1-4`, {}, (f) => events(f).length >= 2);
  t.same(events(queryId.frames).map((e) => e.id), [5, 6], '?after= takes an SSE id too');

  // the history keeps 5: ids 2..6; after e1-0 it has lost 1
  const gap = await readStream(`${base}/v1/events`, { 'last-event-id': 'e1-0' }, (f) => events(f).length >= 5);
  t.same(gaps(gap.frames), [{ after: 0, missed: 1, reason: 'trimmed' }], 'a gap event says how many the history no longer holds');
  t.equal(idOf(gapFrames(gap.frames)[0]!), 'e1-1', 'and carries the id the stream resumes after, for a reconnect');
  t.same(events(gap.frames).map((e) => e.id), [2, 3, 4, 5, 6], 'then the rest');

  // paging
  const p1 = (await app.inject({ method: 'GET', url: '/v1/events/history?after=0&limit=2' })).json() as { events: Event[]; next: number | null; missed: number; oldest: number; newest: number };
  t.same([p1.events.map((e) => e.id), p1.next, p1.missed, p1.oldest, p1.newest], [[2, 3], 3, 1, 2, 6], 'a page of 2 from the start');
  t.same(p1.events.map((e) => e.epoch), ['e1', 'e1'], 'events of the history carry their epoch');
  const p2 = (await app.inject({ method: 'GET', url: `/v1/events/history?after=${p1.next}&limit=10` })).json() as { events: Event[]; next: number | null };
  t.same([p2.events.map((e) => e.id), p2.next], [[4, 5, 6], null], 'the next page is the last');
  hub.publish({ ...sample(9), type: 'memory', reason: 'offline', device: null, mrn: null, lkey: null, pid: null, block: 3, node: 1 });
  const mem = (await app.inject({ method: 'GET', url: '/v1/events/history?type=memory' })).json() as { events: Event[] };
  t.same(mem.events.map((e) => [e.id, e.type, e.block]), [[7, 'memory', 3]], '?type=memory keeps memory events');

  // the history is a paging API, not EventSource: its bad input is a 400
  for (const url of ['/v1/events/history?limit=0', '/v1/events/history?limit=1001', '/v1/events/history?type=boom',
    '/v1/events/history?after=-1', '/v1/events/history?after=x', '/v1/events/history?after=e1-3',
    '/v1/events/history?since=1', '/v1/events?since=1']) {
    const res = await app.inject({ method: 'GET', url });
    t.equal(res.statusCode, 400, `${url}: 400`);
    t.match(res.json(), { message: /^invalid querystring: / }, 'saying what was wrong');
  }
});

t.test('Last-Event-ID wins over ?after=, as a reconnecting EventSource keeps its URL', async (t) => {
  const hub = new EventHub({ path: NO_CHANNEL, epoch: 'e2' });
  const base = await routesOnly(t, hub);
  for (let i = 1; i <= 5; i++) hub.publish(sample(i));
  const both = await readStream(`${base}/v1/events?after=1`, { 'last-event-id': 'e2-3' }, (f) => events(f).length >= 2);
  t.same(events(both.frames).map((e) => e.id), [4, 5], '?after=1 with Last-Event-ID e2-3 resumes after 3, not 1');
  const emptyHeader = await readStream(`${base}/v1/events?after=3`, { 'last-event-id': '' }, (f) => events(f).length >= 2);
  t.same(events(emptyHeader.frames).map((e) => e.id), [4, 5], 'an empty Last-Event-ID (an id reset) leaves ?after= to say');
});

t.test('ids are told apart across restarts: each run of the server has its epoch', async (t) => {
  const before = new EventHub({ path: NO_CHANNEL });
  await sleep(5);
  const later = new EventHub({ path: NO_CHANNEL });
  t.match(before.epoch, /^[0-9a-z]{1,16}$/, `an epoch is made when the hub is (${before.epoch})`);
  t.ok(Number.parseInt(later.epoch, 36) > Number.parseInt(before.epoch, 36),
    `a hub made later has a greater one (${before.epoch} then ${later.epoch})`);
  t.throws(() => new EventHub({ path: NO_CHANNEL, epoch: 'A-1' }), /epoch must be 1 to 16 lower-case letters and digits, not "A-1"/,
    'an epoch that would not read back out of an SSE id is refused');
  t.throws(() => new EventHub({ path: NO_CHANNEL, historySize: 0 }), /historySize must be a whole number of events, at least 1, not 0/,
    'so is an empty history');
  t.throws(() => before.after(-1), /an event id is a whole number from 0, not -1/, 'and a negative id');

  // the server restarted: the client heard up to 5000 of the run before, this run is at 3
  const hub = new EventHub({ path: NO_CHANNEL, epoch: 'b2', historySize: 100 });
  const base = await routesOnly(t, hub);
  const idle = await readStream(`${base}/v1/events`, { 'last-event-id': 'a1-5000' }, (f) => gaps(f).length >= 1);
  t.same(gaps(idle.frames), [{ after: 'a1-5000', missed: null, reason: 'epoch' }],
    'an id of another epoch: a gap event says events may be missing, how many unknown');
  const resumeId = idOf(gapFrames(idle.frames)[0]!);
  t.equal(resumeId, 'b2-0', 'and gives the client an id of this run to come back with');
  const back = await readStream(`${base}/v1/events`, { 'last-event-id': resumeId! }, (f) => events(f).length >= 1,
    () => setTimeout(() => hub.publish(sample(1)), 50));
  t.same([gaps(back.frames), events(back.frames).map((e) => e.id)], [[], [1]], 'coming back with it, no gap again: only what is new');

  hub.publish(sample(2));
  hub.publish(sample(3));
  for (const [what, url, headers] of [
    ['Last-Event-ID a1-5000', '', { 'last-event-id': 'a1-5000' }],
    ['Last-Event-ID b2-5000 (this epoch, but an id it has not reached)', '', { 'last-event-id': 'b2-5000' }],
    ['a bare Last-Event-ID 5000 (of a server before epochs)', '', { 'last-event-id': '5000' }],
    ['?after=5000', '?after=5000', {}],
  ] as const) {
    const held = hub.range().newest!;
    const s = await readStream(`${base}/v1/events${url}`, headers, (f) => events(f).length >= held + 1,
      () => setTimeout(() => hub.publish(sample(held + 1)), 50));
    t.same(gaps(s.frames).map((g) => [g.missed, g.reason]), [[null, 'epoch']], `${what}: a gap of unknown size`);
    t.same(events(s.frames).map((e) => e.id), Array.from({ length: held + 1 }, (_, i) => i + 1),
      `${what}: then the ${held} events of this run the history holds, then the live one`);
    t.ok(s.frames.filter(isEvent).every((f) => idOf(f)?.startsWith('b2-')), `${what}: all with ids of this epoch`);
  }

  // a history trimmed in this run too: one gap (unknown), then what it holds
  const small = new EventHub({ path: NO_CHANNEL, epoch: 'c3', historySize: 2 });
  for (let i = 1; i <= 5; i++) small.publish(sample(i));
  const smallBase = await routesOnly(t, small);
  const s = await readStream(`${smallBase}/v1/events`, { 'last-event-id': 'a1-9' }, (f) => events(f).length >= 2);
  t.same(gaps(s.frames), [{ after: 'a1-9', missed: null, reason: 'epoch' }], 'a trimmed history adds no second gap');
  t.equal(idOf(gapFrames(s.frames)[0]!), 'c3-3', 'the gap\'s id is the one before the oldest held');
  t.same(events(s.frames).map((e) => e.id), [4, 5], 'then all it holds');
});

t.test('an id the stream does not understand starts it from now, with a gap event: never a 400', async (t) => {
  const hub = new EventHub({ path: NO_CHANNEL, epoch: 'd4' });
  const base = await routesOnly(t, hub);
  for (let i = 1; i <= 3; i++) hub.publish(sample(i));
  const long = 'x'.repeat(200);
  for (const [url, headers, quoted] of [
    ['', { 'last-event-id': 'abc' }, 'abc'], ['', { 'last-event-id': '-1' }, '-1'], ['', { 'last-event-id': 'd4-' }, 'd4-'],
    ['', { 'last-event-id': 'D4-1' }, 'D4-1'], ['', { 'last-event-id': 'd4-1-2' }, 'd4-1-2'],
    ['', { 'last-event-id': 'd4-01' }, 'd4-01'], ['', { 'last-event-id': '9007199254740993' }, '9007199254740993'],
    ['', { 'last-event-id': long }, long.slice(0, 64)],
    ['?after=x', {}, 'x'], ['?after=1.5', {}, '1.5'],
  ] as const) {
    const what = url || `Last-Event-ID ${headers['last-event-id']!.slice(0, 20)}`;
    let newest = 0;
    const s = await readStream(`${base}/v1/events${url}`, headers, (f) => events(f).length >= 1,
      () => setTimeout(() => { newest = hub.publish(sample(7)).id; }, 50));
    t.equal(s.status, 200, `${what}: 200 (EventSource would give up for good on a 400)`);
    t.same(gaps(s.frames), [{ after: quoted, missed: null, reason: 'malformed' }], `${what}: a gap event says it was not understood`);
    t.same(events(s.frames).map((e) => e.id), [newest], `${what}: then only what comes from now`);
    t.equal(idOf(gapFrames(s.frames)[0]!), `d4-${newest - 1}`, `${what}: the gap's id is where it started, for a reconnect`);
  }
});

t.test('an event is serialized once, however many streams send it', async (t) => {
  const hub = new EventHub({ path: NO_CHANNEL, epoch: 'f5' });
  const base = await routesOnly(t, hub);
  const isProbe = (v: unknown): boolean => typeof v === 'object' && v !== null && (v as { device?: unknown }).device === 'probe';
  const stringify = JSON.stringify;
  let serialized = 0;
  JSON.stringify = ((value: unknown, ...rest: unknown[]) => {
    if (isProbe(value)) serialized++;
    return (stringify as (...args: unknown[]) => string)(value, ...rest);
  }) as typeof JSON.stringify;
  t.teardown(() => { JSON.stringify = stringify; });

  const streams = await Promise.all([1, 2, 3].map(() => connect(`${base}/v1/events`)));
  for (const s of streams) await s.until((f) => f.length >= 1);
  const probe = hub.publish({ ...sample(1), device: 'probe' });
  for (const s of streams) t.ok(await s.until((f) => events(f).some((e) => e.id === probe.id)), 'a live stream gets the event');
  t.equal(serialized, 1, 'three live streams: serialized once');
  const resumed = await Promise.all([1, 2, 3].map(() => connect(`${base}/v1/events`, { 'last-event-id': `f5-${probe.id - 1}` })));
  for (const s of resumed) t.ok(await s.until((f) => events(f).some((e) => e.id === probe.id)), 'a resuming stream gets it again');
  t.equal(serialized, 1, 'three replays of it: still once');
  for (const s of [...streams, ...resumed]) await s.close();
});

t.test('the history ring', async (t) => {
  const hub = new EventHub({ path: NO_CHANNEL, historySize: 100 });
  t.same(hub.range(), { oldest: null, newest: null }, 'empty, it holds no range');
  t.same(hub.after(0), { events: [], missed: 0 }, 'and nothing after 0');
  for (let i = 1; i <= 250; i++) hub.publish(sample(i));
  t.same(hub.range(), { oldest: 151, newest: 250 }, '250 published into 100: it holds 151..250');
  const all = hub.after(0);
  t.same([all.missed, all.events.length, all.events[0]?.id, all.events[99]?.id], [150, 100, 151, 250], 'after 0: 150 missed, then 151..250');
  t.ok(all.events.every((e, i) => e.id === 151 + i && e.pages === 151 + i), 'in order, each the event published with that id');
  t.same(hub.after(200, 3).events.map((e) => e.id), [201, 202, 203], 'after 200, 3 of them: 201..203');
  t.same(hub.after(250), { events: [], missed: 0 }, 'after the newest: nothing');
  t.same(hub.after(10_000), { events: [], missed: 0 }, 'after an id not reached: nothing');
  hub.publish({ ...sample(251), type: 'memory' });
  t.same(hub.after(240, 5, 'memory').events.map((e) => e.id), [251], 'of one type: only those');

  // a ring bigger than its first allocations, through its growth and its wrapping
  const big = new EventHub({ path: NO_CHANNEL, historySize: 3000 });
  for (let i = 1; i <= 2500; i++) big.publish(sample(i));
  t.same([big.range(), big.after(0).events.length, big.after(0).missed], [{ oldest: 1, newest: 2500 }, 2500, 0], '2500 into 3000: all held');
  for (let i = 2501; i <= 7100; i++) big.publish(sample(i));
  const wrapped = big.after(4099, 3000);
  t.same([big.range(), wrapped.missed, wrapped.events.length], [{ oldest: 4101, newest: 7100 }, 1, 3000], '7100 into 3000: 4101..7100');
  t.ok(wrapped.events.every((e, i) => e.id === 4101 + i && e.pages === 4101 + i), 'each where arithmetic says');
});

t.test('publishing costs the same per event however long the history', async (t) => {
  // ratios within one run: absolute times say more about the host than about the code
  const body = sample(1);
  const perEvent = (hub: EventHub, n: number): number => {
    const started = performance.now();
    for (let i = 0; i < n; i++) hub.publish(body);
    return (performance.now() - started) / n;
  };
  let growing = Infinity;
  let full = Infinity;
  for (let round = 0; round < 3; round++) {
    const small = new EventHub({ path: NO_CHANNEL, historySize: 100 });
    const large = new EventHub({ path: NO_CHANNEL, historySize: 1_000_000 });
    perEvent(small, 1000);
    growing = Math.min(growing, perEvent(large, 200_000) / perEvent(small, 200_000));
    const kept = new EventHub({ path: NO_CHANNEL, historySize: 200_000 });
    perEvent(kept, 200_000);
    full = Math.min(full, perEvent(kept, 20_000) / perEvent(small, 20_000));
  }
  t.ok(growing < 5, `200,000 into a history of 1,000,000 vs 100: ${growing.toFixed(2)}x per event`);
  t.ok(full < 5, `into a full history of 200,000 vs 100: ${full.toFixed(2)}x per event`);
});

t.test('a cap on open streams, and heartbeats', async (t) => {
  const hub = new EventHub({ path: NO_CHANNEL, epoch: 'g6' });
  const base = await routesOnly(t, hub, { maxStreams: 2, heartbeatMs: 100 });
  const a = await connect(`${base}/v1/events`);
  const b = await connect(`${base}/v1/events`);
  t.same([a.res.status, b.res.status], [200, 200], 'two streams open');
  const third = await connect(`${base}/v1/events`);
  await third.until(() => false);  // the body to its end (a stream let in would end only when closed)
  await third.close();
  t.equal(third.res.status, 503, 'a third, over maxStreams 2: 503');
  t.equal(third.res.headers.get('retry-after'), '10', 'with Retry-After');
  t.match(third.res.status === 503 ? JSON.parse(third.frames.join('')) : null, {
    statusCode: 503, message: /^2 event streams are open, as many as this server serves: try again in 10 s$/,
  }, 'and says why');
  t.ok(await a.until((f) => f.filter((x) => x === ': ping').length >= 3), 'an idle stream hears a heartbeat every heartbeatMs');
  t.match(a.frames[0], /^retry: 2000\n/, 'and was told how soon to reconnect');
  await b.close();
  let again = 0;
  for (let i = 0; i < 50 && again !== 200; i++) {
    await sleep(50);
    const c = await connect(`${base}/v1/events`);
    again = c.res.status;
    await c.close();
  }
  t.equal(again, 200, 'once one closes, a new one is let in');
  await a.close();
  const bad = Fastify().withTypeProvider<TypeBoxTypeProvider>();
  await t.rejects(async () => { await bad.register(eventRoutes, { hub, maxStreams: 0 }); },
    /maxStreams must be a whole number from 1, not 0/, 'a cap of 0 is refused');
});

t.test('a replay larger than a client may have unread goes at the pace of its socket', async (t) => {
  const hub = new EventHub({ path: NO_CHANNEL, epoch: 'h7', historySize: 5000 });
  const base = await routesOnly(t, hub, { maxBufferedBytes: 64 << 10 });
  const body = { ...sample(1), device: 'x'.repeat(500) };
  for (let i = 0; i < 3000; i++) hub.publish(body);  // about 2 MB of frames, 32 times maxBufferedBytes
  const s = await connect(`${base}/v1/events?after=0`).catch((err: Error) => err);
  if (s instanceof Error) {
    t.fail(`the server cut the replay off before the client had anything: ${s.message}`);
    return;
  }
  const all = await s.until((f) => events(f).length >= 3000);
  await s.close();
  const ids = events(s.frames).map((e) => e.id);
  t.ok(all, `the whole history came (${ids.length} of 3000), not cut off for being long`);
  t.ok(ids.every((id, i) => id === i + 1), 'in order, once each');
});

t.test('a client that stops reading is cut off, not held without bound', async (t) => {
  const hub = new EventHub({ path: NO_CHANNEL, historySize: 100 });
  const app = await buildApp({ events: hub });
  t.teardown(() => app.close());
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
  const ac = new AbortController();
  const res = await fetch(`${base}/v1/events`, { signal: ac.signal });
  t.equal(res.status, 200, 'connected');
  // never read: publish more than the 4 MiB the server lets pile up for one client
  const big = { ...sample(1), device: 'x'.repeat(60) };
  let published = 0;
  for (let round = 0; round < 200 && !res.body?.locked; round++) {
    for (let i = 0; i < 2000; i++) { hub.publish(big); published++; }
    await new Promise((r) => setImmediate(r));
  }
  await sleep(200);
  const reader = res.body!.getReader();
  let ended = false;
  let gaveUp = false;
  const timer = setTimeout(() => { gaveUp = true; ac.abort(); }, 10_000);
  try {
    for (;;) {
      const { done } = await reader.read();
      if (done) { ended = true; break; }
    }
  } catch {
    // the server cut the connection (not our own time limit)
    ended = !gaveUp;
  } finally {
    clearTimeout(timer);
  }
  t.ok(ended, `after ${published} events unread, the server closed the stream (the client resumes with Last-Event-ID)`);
});

t.test('a client that stopped reading on a host gone quiet is cut off at a heartbeat', async (t) => {
  const hub = new EventHub({ path: NO_CHANNEL, epoch: 'k9', historySize: 5000 });
  const base = await routesOnly(t, hub, { maxStreams: 1, heartbeatMs: 200, maxBufferedBytes: 64 << 20 });
  const body = { ...sample(1), device: 'x'.repeat(4000) };
  for (let i = 0; i < 5000; i++) hub.publish(body);  // about 20 MB of history, more than sockets hold
  // a raw connection that asks for it all and never reads: its socket fills, then nothing is published
  const url = new URL(`${base}/v1/events?after=0`);
  const sock = createConnection({ host: url.hostname, port: Number(url.port) });
  t.teardown(() => { sock.destroy(); });
  await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
  sock.write(`GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);
  sock.pause();
  const closed = new Promise<boolean>((resolve) => {
    sock.once('close', () => resolve(true));
    setTimeout(() => resolve(false), 10_000);
  });
  // a second stream is refused while the first holds the only place
  await sleep(100);
  const refused = await connect(`${base}/v1/events`);
  await refused.until(() => false);
  await refused.close();
  t.equal(refused.res.status, 503, 'the stalled stream holds the one place meanwhile');
  // the server closes it once its socket has stayed full for two heartbeats (the client's data is
  // still buffered on its side, so reading here would only find the close after it)
  let again = 0;
  for (let i = 0; i < 40 && again !== 200; i++) {
    await sleep(100);
    const c = await connect(`${base}/v1/events`);
    again = c.res.status;
    await c.close();
  }
  t.equal(again, 200, 'within a few heartbeats with no event published, the server gave its place to another');
  sock.resume();
  t.ok(await closed, 'and closed the stalled connection');
});

t.test('closing the server ends open streams instead of waiting on them', async (t) => {
  const hub = new EventHub({ path: NO_CHANNEL });
  const app = await buildApp({ events: hub });
  const base = await app.listen({ port: 0, host: '127.0.0.1' });
  const res = await fetch(`${base}/v1/events`);
  t.equal(res.status, 200, 'a client is connected');
  const reader = res.body!.getReader();
  const ended = (async () => { for (;;) { const { done } = await reader.read(); if (done) return true; } })();
  const started = Date.now();
  await app.close();
  t.ok(Date.now() - started < 2000, `close() returned in ${Date.now() - started} ms`);
  t.equal(await ended, true, 'and the client saw its stream end');
});

t.test('device notifications', async (t) => {
  t.same(monitorOpened('7.2.13+deb14-amd64'), { state: 'open', message: null }, 'Linux 7.2 sends them');
  t.same(monitorOpened('6.12.107+deb13-amd64'), { state: 'open', message: null }, 'so does 6.12');
  t.match(monitorOpened('6.1.0-56-amd64'), { state: 'unsupported', message: /Linux 6\.1 sends no device notifications/ },
    '6.1 does not, and the status says so');
  t.match(eventFromChange({ event: 2, index: 3, device: 'pfnic1', port: 1, netdev: 'd1' }), {
    type: 'device', reason: 'netdev_attach', device: 'pfnic1', port: 1, netdev: 'd1', mrn: null,
  }, 'a notification as an event: netdev_attach of d1 to pfnic1 port 1');
  t.match(eventFromChange({ event: 9 }), { reason: 'event_9', device: null }, 'one this code does not know keeps its number');
  t.match(eventFromAsync('pfnic0', { event: 10, port: 1 }), {
    type: 'async', reason: 'port_err', device: 'pfnic0', port: 1, mrn: null,
  }, 'a verbs async event as an event: port_err of pfnic0 port 1');
  t.match(eventFromAsync('pfnic0', { event: 8 }), { reason: 'device_fatal', port: null }, 'device_fatal has no port');
  t.match(eventFromAsync('pfnic0', { event: 42 }), { reason: 'event_42' }, 'an async event this code does not know keeps its number');
  const hub = new EventHub({ path: NO_CHANNEL, devicesDir: '/nonexistent/infiniband' });
  hub.start();
  for (let i = 0; i < 50 && hub.monitorStatus.state === 'opening'; i++) await sleep(100);
  t.same(hub.asyncStatus(), [], 'without devices no async events are read');
  t.match(hub.monitorStatus.state, /^(unsupported|open)$/, `on this host the monitor is ${hub.monitorStatus.state} (${hub.monitorStatus.message})`);
  hub.stop();
});
