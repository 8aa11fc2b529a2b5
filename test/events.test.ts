// The event routes on this host, over real HTTP: the SSE stream's framing, replay from
// Last-Event-ID with a gap event when the history no longer holds some, paging through
// the history, bad input. The events are published into the hub here (this host has no
// pfnic); the in-VM suite has the kernel make them.
import t from 'tap';

import { buildApp } from '../api/src/app.js';
import { EventHub, eventFromAsync, eventFromChange, monitorOpened, type Event } from '../control/src/index.js';

const sample = (pages: number): Omit<Event, 'id'> => ({
  time: new Date().toISOString(), type: 'invalidate', reason: 'clear', device: 'pfnic0', port: null, netdev: null, mrn: 1,
  lkey: '0x10', pid: 42, start: '0x1000', end: '0x2000', pages, node: null, block: null,
  offlining: false, lost: null,
});

/** Reads an SSE stream until @p until says enough; returns the frames. */
async function readStream(url: string, headers: Record<string, string>, until: (frames: string[]) => boolean,
  onOpen?: () => void): Promise<{ status: number; type: string | null; frames: string[] }> {
  const ac = new AbortController();
  const res = await fetch(url, { headers, signal: ac.signal });
  const frames: string[] = [];
  if (res.status !== 200 || !res.body) return { status: res.status, type: res.headers.get('content-type'), frames };
  onOpen?.();
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  const timer = setTimeout(() => ac.abort(), 10_000);
  try {
    while (!until(frames)) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        frames.push(buf.slice(0, i));
        buf = buf.slice(i + 2);
      }
    }
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return { status: res.status, type: res.headers.get('content-type'), frames };
}

const dataOf = (frame: string): unknown => JSON.parse(/^data: (.*)$/m.exec(frame)?.[1] ?? 'null');
const events = (frames: string[]): Event[] => frames.filter((f) => /^event: (?!gap)/m.test(f)).map((f) => dataOf(f) as Event);

t.test('the event stream and its history', async (t) => {
  const hub = new EventHub({ path: '/nonexistent/pfnic-events', historySize: 5 });
  const app = await buildApp({ events: hub });
  t.teardown(() => app.close());
  const base = await app.listen({ port: 0, host: '127.0.0.1' });

  const empty = await app.inject({ method: 'GET', url: '/v1/events/history' });
  t.equal(empty.statusCode, 200, 'the history answers 200');
  t.match(empty.json(), { events: [], missed: 0, next: null, oldest: null, newest: null }, 'and is empty');
  // the reading thread says so soon after it tried (a busy host may take a while)
  for (let i = 0; i < 50 && hub.status.state !== 'absent'; i++) await new Promise((r) => setTimeout(r, 100));
  const absent = await app.inject({ method: 'GET', url: '/v1/events/history' });
  t.match(absent.json(), { channel: { state: 'absent', message: /nonexistent/ } },
    'without the channel it says it is absent, and why');

  // live: events published after the client connected
  const live = readStream(`${base}/v1/events`, {}, (f) => events(f).length >= 2,
    () => setTimeout(() => { hub.publish(sample(1)); hub.publish(sample(2)); }, 50));
  const got = await live;
  t.equal(got.status, 200, 'GET /v1/events answers 200');
  t.match(got.type, /^text\/event-stream/, 'as text/event-stream');
  t.match(got.frames[0], /^retry: \d+/, 'it tells the client how soon to reconnect');
  t.same(events(got.frames).map((e) => [e.id, e.pages]), [[1, 1], [2, 2]], 'each event as it comes, in order');
  t.match(got.frames.find((f) => f.includes('id: 1')), /^id: 1\nevent: invalidate\ndata: \{/, 'framed with its id and type');

  // replay: what was missed since Last-Event-ID, then live
  for (let i = 3; i <= 6; i++) hub.publish(sample(i));
  const replay = await readStream(`${base}/v1/events`, { 'last-event-id': '3' }, (f) => events(f).length >= 3);
  t.same(events(replay.frames).map((e) => e.id), [4, 5, 6], 'Last-Event-ID 3 replays 4, 5, 6');
  const query = await readStream(`${base}/v1/events?after=5`, {}, (f) => events(f).length >= 1);
  t.same(events(query.frames).map((e) => e.id), [6], '?after=5 does the same');

  // the history keeps 5: ids 2..6; after=0 has lost 1
  const gap = await readStream(`${base}/v1/events`, { 'last-event-id': '0' }, (f) => events(f).length >= 5);
  const gapFrame = gap.frames.find((f) => f.startsWith('event: gap'));
  t.same(gapFrame && dataOf(gapFrame), { after: 0, missed: 1 }, 'a gap event says how many the history no longer holds');
  t.same(events(gap.frames).map((e) => e.id), [2, 3, 4, 5, 6], 'then the rest');

  // paging
  const p1 = (await app.inject({ method: 'GET', url: '/v1/events/history?after=0&limit=2' })).json() as { events: Event[]; next: number | null; missed: number; oldest: number; newest: number };
  t.same([p1.events.map((e) => e.id), p1.next, p1.missed, p1.oldest, p1.newest], [[2, 3], 3, 1, 2, 6], 'a page of 2 from the start');
  const p2 = (await app.inject({ method: 'GET', url: `/v1/events/history?after=${p1.next}&limit=10` })).json() as { events: Event[]; next: number | null };
  t.same([p2.events.map((e) => e.id), p2.next], [[4, 5, 6], null], 'the next page is the last');
  hub.publish({ ...sample(9), type: 'memory', reason: 'offline', device: null, mrn: null, lkey: null, pid: null, block: 3, node: 1 });
  const mem = (await app.inject({ method: 'GET', url: '/v1/events/history?type=memory' })).json() as { events: Event[] };
  t.same(mem.events.map((e) => [e.id, e.type, e.block]), [[7, 'memory', 3]], '?type=memory keeps memory events');

  for (const [url, headers] of [
    ['/v1/events/history?limit=0', {}], ['/v1/events/history?limit=1001', {}], ['/v1/events/history?type=boom', {}],
    ['/v1/events/history?after=-1', {}], ['/v1/events/history?since=1', {}], ['/v1/events?after=x', {}],
    ['/v1/events', { 'last-event-id': 'abc' }], ['/v1/events', { 'last-event-id': '-1' }],
  ] as const) {
    const res = await app.inject({ method: 'GET', url, headers });
    t.equal(res.statusCode, 400, `${url} ${JSON.stringify(headers)}: 400`);
  }
});

t.test('a client that stops reading is cut off, not held without bound', async (t) => {
  const hub = new EventHub({ path: '/nonexistent/pfnic-events', historySize: 100 });
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
  await new Promise((r) => setTimeout(r, 200));
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

t.test('closing the server ends open streams instead of waiting on them', async (t) => {
  const hub = new EventHub({ path: '/nonexistent/pfnic-events' });
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
  const hub = new EventHub({ path: '/nonexistent/pfnic-events', devicesDir: '/nonexistent/infiniband' });
  hub.start();
  for (let i = 0; i < 50 && hub.monitorStatus.state === 'opening'; i++) await new Promise((r) => setTimeout(r, 100));
  t.same(hub.asyncStatus(), [], 'without devices no async events are read');
  t.match(hub.monitorStatus.state, /^(unsupported|open)$/, `on this host the monitor is ${hub.monitorStatus.state} (${hub.monitorStatus.message})`);
  hub.stop();
});
