// Runs inside a two-node guest whose node 1 is a hot-pluggable DIMM, with pfnic0
// (test/vm-foundation.test.ts boots it), prints TAP. events.js: what the kernel says on
// /dev/pfnic-events reaches the API's live stream (SSE) and its history: an ODP MR's pages
// given back (an invalidation naming the MR, its process and the pages, matching the MR's
// counter), a memory block taken offline and back online (its state changes, in order);
// a client that reconnects with Last-Event-ID gets what it missed, once; and /metrics says
// the same (event counts, the MR's counters, the port's); and a device added and deleted
// comes as device events (Linux 6.12 on); verbs async events of pfnic0's port (d0 down and
// up, an address added) and of a pfnic device deleted while watched, and rxe left alone.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import t from 'tap';

import type { Event, MemoryBlock, Mr } from '../../control/src/schema.js';
import { startApi } from './api-server.js';
import { hold } from './mr-hold.js';
import { rdmaJson } from './rdma.js';
import { readSse } from './sse.js';

const run = promisify(execFile);
const top = process.env.PFNIC_TOP ?? process.cwd();
const kernel = process.env.PFNIC_KERNEL ?? 'unknown';
// TCG guests are slow; the rig's own time limit bounds the whole run
t.setTimeout(10 * 60_000);
const token = 'guest-events-token-0123456789';
// an admin's: events and MRs with their keys, which the test matches
const admin = { authorization: `Bearer ${token}` };

/** An SSE client that collects events until closed. */
function stream(url: string, headers: Record<string, string> = {}) {
  const events: Event[] = [];
  let notify: (() => void) | undefined;
  const sse = readSse(url, headers, (event, data) => {
    if (event !== 'gap') { events.push(JSON.parse(data) as Event); notify?.(); }
  });
  return {
    events,
    /** Waits until @p pred holds of the events (20 s at most). */
    async until(pred: (e: Event[]) => boolean): Promise<boolean> {
      const deadline = Date.now() + 20_000;
      while (!pred(events) && Date.now() < deadline) {
        await new Promise<void>((r) => { notify = r; setTimeout(r, 200); });
      }
      return pred(events);
    },
    close: () => sse.close(),
  };
}

t.test(`events from the kernel to the API's stream and history (kernel ${kernel})`, async (t) => {
  const base = await startApi(t, top, 18083, { env: { PFNIC_API_TOKEN: token } });
  const live = stream(`${base}/v1/events`, admin);
  const holder = await hold(t, top, 'pfnic0', ['-t', '64']);
  const odp = holder.mrs.find((m) => m.kind === 'explicit');
  t.ok(odp, 'mr_hold holds an explicit ODP MR with 16 pages prefetched');
  if (!odp) return;
  // the server's model of the MRs may be a read behind the kernel: asked until it has caught up
  let mrs: Mr[] = [];
  for (let i = 0; i < 20 && !mrs.length; i++) {
    if (i) await new Promise((r) => setTimeout(r, 500));
    mrs = (await (await fetch(`${base}/v1/mrs?pid=${holder.pid}&kind=explicit`, { headers: { ...admin, 'cache-control': 'no-cache' } })).json()) as Mr[];
  }
  t.equal(mrs.length, 1, 'the API lists the MR');
  const before = mrs[0]!;

  // an invalidation
  await holder.command('dontneed');
  const got = await live.until((es) => es.some((e) => e.type === 'invalidate' && e.pid === holder.pid));
  t.ok(got, 'MADV_DONTNEED of its pages reaches the stream');
  const inval = live.events.find((e) => e.type === 'invalidate' && e.pid === holder.pid)!;
  t.match(inval, {
    type: 'invalidate', reason: 'clear', device: 'pfnic0', mrn: before.mrn, lkey: odp.lkey, pid: holder.pid,
    start: odp.addr, pages: 16, offlining: false,
  }, 'naming the MR, its process, the range and the 16 pages it took');
  const after = ((await (await fetch(`${base}/v1/mrs/pfnic0/${before.mrn}`, { headers: admin })).json()) as Mr);
  t.equal((after.counters.page_invalidations ?? 0) - (before.counters.page_invalidations ?? 0), inval.pages,
    'as many pages as the MR\'s page_invalidations counter went up by');
  t.equal(after.mapped_pages, 0, 'and the MR maps none of them any more');

  // a memory block taken offline and back
  const blocks = (await (await fetch(`${base}/v1/memory/blocks`)).json()) as MemoryBlock[];
  const b = blocks.filter((x) => x.node === 1 && x.zone === 'Movable').pop()!;
  const auth = admin;
  const offlineOfNode1 = async (): Promise<number> => {
    const text = await (await fetch(`${base}/metrics`)).text();
    return [...text.matchAll(/^rdma_memory_blocks\{state="offline",zone="[^"]*",node="1"\} (\d+)$/gm)]
      .reduce((n, m) => n + Number(m[1]), 0);
  };
  const offlineBefore = await offlineOfNode1();
  const off = await fetch(`${base}/v1/memory/blocks/${b.block}/offline`, { method: 'POST', headers: auth });
  t.equal(off.status, 200, `block ${b.block} goes offline`);
  // /metrics keeps the blocks it read until a memory event says they changed
  let offlineAfter = await offlineOfNode1();
  for (let i = 0; i < 20 && offlineAfter <= offlineBefore; i++) {
    await new Promise((r) => setTimeout(r, 500));
    offlineAfter = await offlineOfNode1();
  }
  t.equal(offlineAfter, offlineBefore + 1, `/metrics counts it offline at once (${offlineBefore}, then ${offlineAfter})`);
  const on = await fetch(`${base}/v1/memory/blocks/${b.block}/online?zone=movable`, { method: 'POST', headers: auth });
  t.equal(on.status, 200, 'and back online');
  const steps = ['going_offline', 'offline', 'going_online', 'online'];
  const memOf = (es: Event[]) => es.filter((e) => e.type === 'memory' && e.block === b.block).map((e) => e.reason);
  t.ok(await live.until((es) => memOf(es).length >= 4), 'its state changes reach the stream');
  t.same(memOf(live.events), steps, `in order: ${steps.join(', ')}`);
  const mem = live.events.find((e) => e.type === 'memory' && e.reason === 'offline')!;
  t.match(mem, { node: 1, start: b.start, device: null, mrn: null }, 'with its node and physical range');

  // ids, the history, and a client that comes back
  const ids = live.events.map((e) => e.id);
  t.same(ids, [...ids].sort((x, y) => x - y), 'ids only grow');
  const history = (await (await fetch(`${base}/v1/events/history?limit=1000`, { headers: admin })).json()) as
    { epoch: string; events: Event[]; channel: { state: string } };
  t.equal(history.channel.state, 'open', 'the history says the channel is open');
  t.same(history.events.map((e) => e.id), ids, 'the history holds the same events, same ids');
  t.ok(live.events.every((e) => e.epoch === history.epoch), `all of this run's epoch, ${history.epoch}`);
  await live.close();

  const lastSeen = ids[ids.length - 1]!;
  await holder.command('prefetch');
  await holder.command('dontneed');
  const missedWhileAway = await (async () => {
    for (let i = 0; i < 50; i++) {
      const h = (await (await fetch(`${base}/v1/events/history?after=${lastSeen}`)).json()) as { events: Event[] };
      if (h.events.length) return h.events;
      await new Promise((r) => setTimeout(r, 200));
    }
    return [];
  })();
  t.ok(missedWhileAway.length >= 1, 'while no client listens, events still come (to the history)');
  // the SSE id the stream gave the last event seen: <epoch>-<id>
  const back = stream(`${base}/v1/events`, { ...admin, 'last-event-id': `${history.epoch}-${lastSeen}` });
  t.ok(await back.until((es) => es.length >= missedWhileAway.length), 'a client back with Last-Event-ID gets them');
  t.same(back.events.map((e) => e.id), missedWhileAway.map((e) => e.id), 'exactly those, once each');
  await back.close();

  // devices coming and going (rdma netlink's notifications, from Linux 6.12)
  const hist = async () => (await (await fetch(`${base}/v1/events/history?type=device&limit=1000`)).json()) as
    { events: Event[]; devices: { state: string; message: string | null } };
  const monitor = (await hist()).devices;
  if (monitor.state === 'unsupported') {
    t.equal(kernel, '6.1', `only 6.1 lacks device notifications: ${monitor.message}`);
  } else {
    t.equal(monitor.state, 'open', 'the API listens to rdma netlink\'s device notifications');
    // a device of its own needs a netdev of its own (pfnic0 has d0)
    const ip = existsSync('/usr/bin/ip') ? '/usr/bin/ip' : '/bin/ip';
    await run(ip, ['link', 'add', 'd1', 'type', 'dummy']);
    await run(ip, ['link', 'set', 'd1', 'up']);
    await run('rdma', ['link', 'add', 'pfnic1', 'type', 'pfnic', 'netdev', 'd1']);
    await run('rdma', ['link', 'delete', 'pfnic1']);
    let reasons: string[] = [];
    for (let i = 0; i < 50; i++) {
      reasons = (await hist()).events.filter((e) => e.device === 'pfnic1').map((e) => e.reason);
      if (reasons.includes('unregister')) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    t.ok(reasons.includes('register') && reasons.includes('unregister') &&
      reasons.indexOf('register') < reasons.lastIndexOf('unregister'),
    `rdma link add and delete of pfnic1 come as device events: ${reasons.join(', ')}`);
  }

  // verbs async events, read from a context of the control plane's own on each device whose
  // driver lets the device go while contexts are open (pfnic); none is kept on rxe, whose
  // removal would wait for it
  type AsyncState = { device: string; state: string; message: string | null };
  const asyncHist = async () => (await (await fetch(`${base}/v1/events/history?type=async&limit=1000`)).json()) as
    { events: Event[]; async: AsyncState[] };
  const asyncState = async (device: string, want: string[]): Promise<AsyncState | undefined> => {
    let s: AsyncState | undefined;
    for (let i = 0; i < 125; i++) {
      s = (await asyncHist()).async.find((a) => a.device === device);
      if (s && want.includes(s.state)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    return s;
  };
  const asyncEvent = async (pred: (e: Event) => boolean): Promise<Event | undefined> => {
    for (let i = 0; i < 100; i++) {
      const e = (await asyncHist()).events.find(pred);
      if (e) return e;
      await new Promise((r) => setTimeout(r, 200));
    }
    return undefined;
  };
  t.equal((await asyncState('pfnic0', ['open']))?.state, 'open', 'pfnic0\'s async events are read');
  const rxeState = await asyncState('rxe0', ['not_watched']);
  t.equal(rxeState?.state, 'not_watched', `rxe0's are not: ${rxeState?.message ?? '-'}`);
  const ipTool = existsSync('/usr/bin/ip') ? '/usr/bin/ip' : '/bin/ip';
  const firstAsync = (await asyncHist()).events.length;
  await run(ipTool, ['link', 'set', 'd0', 'down']);
  const down = await asyncEvent((e) => e.device === 'pfnic0' && e.reason === 'port_err');
  await run(ipTool, ['link', 'set', 'd0', 'up']);
  const up = await asyncEvent((e) => e.device === 'pfnic0' && e.reason === 'port_active' && e.id > (down?.id ?? 0));
  t.ok(down && up && down.port === 1 && up.port === 1,
    `d0 down and up: pfnic0 port 1 reports port_err (event ${down?.id ?? '-'}), then port_active (${up?.id ?? '-'})`);
  await run(ipTool, ['addr', 'add', '10.66.0.1/24', 'dev', 'd0']);
  const gid = await asyncEvent((e) => e.device === 'pfnic0' && e.reason === 'gid_change');
  t.equal(gid?.port, 1, 'an address added to d0 comes as gid_change on pfnic0 port 1');
  t.notOk((await asyncHist()).events.slice(firstAsync).some((e) => e.device === 'rxe0'), 'and nothing of rxe0, which is not watched');
  // a device going away while the control plane reads its events: its removal goes on
  await run(ipTool, ['link', 'add', 'd2', 'type', 'dummy']);
  await run(ipTool, ['link', 'set', 'd2', 'up']);
  await run('rdma', ['link', 'add', 'pfnic2', 'type', 'pfnic', 'netdev', 'd2']);
  t.equal((await asyncState('pfnic2', ['open']))?.state, 'open', 'a new device, pfnic2, is watched');
  const started = Date.now();
  await run('timeout', ['60', 'rdma', 'link', 'delete', 'pfnic2']);
  const fatal = await asyncEvent((e) => e.device === 'pfnic2' && e.reason === 'device_fatal');
  t.ok(fatal, `rdma link delete pfnic2 returns (in ${Date.now() - started} ms) with the control plane's context on it, which hears device_fatal`);
  await run('rdma', ['link', 'add', 'rxe9', 'type', 'rxe', 'netdev', 'd2']);
  t.equal((await asyncState('rxe9', ['not_watched', 'open', 'error']))?.state, 'not_watched', 'a new rxe device is seen and left alone');
  await run('timeout', ['60', 'rdma', 'link', 'delete', 'rxe9']);
  t.pass('so that rdma link delete rxe9 returns');
  await run(ipTool, ['link', 'delete', 'd2']);

  // the same, as Prometheus scrapes it
  const metrics = await (await fetch(`${base}/metrics`)).text();
  const sample = (key: string): number | undefined => {
    const line = metrics.split('\n').find((l) => l.startsWith(`${key} `));
    return line === undefined ? undefined : Number(line.slice(key.length + 1));
  };
  const all = ((await (await fetch(`${base}/v1/events/history?limit=1000`)).json()) as { events: Event[] }).events;
  t.equal(sample('pfnic_event_channel_up'), 1, '/metrics: the event channel is up');
  t.equal(sample('pfnic_events_total{type="invalidate",reason="clear"}'),
    all.filter((e) => e.type === 'invalidate' && e.reason === 'clear').length, '/metrics counts the invalidations the history has');
  t.equal(sample('pfnic_events_total{type="memory",reason="offline"}'),
    all.filter((e) => e.type === 'memory' && e.reason === 'offline').length, 'and the blocks gone offline');
  // against the kernel's own view: rdma's resource tracker and MR statistics
  const stat = (await rdmaJson(['statistic', 'mr'])).find((s) => s.ifname === 'pfnic0' && s.mrn === before.mrn);
  t.equal(sample(`rdma_mr_counter_total{device="pfnic0",mrn="${before.mrn}",counter="page_invalidations"}`),
    stat?.page_invalidations, `the MR's own page_invalidations series, as rdma statistic mr has it (${String(stat?.page_invalidations)})`);
  const explicit = (await rdmaJson(['-dd', 'resource', 'show', 'mr']))
    .filter((r) => r.ifname === 'pfnic0' && r.drv_odp === 'explicit').length;
  t.equal(sample('rdma_mrs{device="pfnic0",kind="explicit"}'), explicit, `rdma_mrs counts pfnic0's explicit MRs as rdma resource does (${explicit})`);
  const sysfs = Number((await readFile('/sys/class/infiniband/pfnic0/ports/1/hw_counters/page_invalidations', 'utf8')).trim());
  t.equal(sample('rdma_port_hw_counter_total{device="pfnic0",port="1",counter="page_invalidations"}'), sysfs,
    `the port's page_invalidations counter as sysfs has it (${sysfs})`);
  await holder.exit();
});
