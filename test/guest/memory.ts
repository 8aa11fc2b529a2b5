// Runs inside a two-node guest whose node 1 is a hot-pluggable DIMM onlined as Movable, with
// pfnic0 (test/vm-foundation.test.ts boots it), prints TAP. memory.js: the API's memory
// blocks against sysfs; a block taken offline and brought back online through the API, the
// bearer token required and every action in the audit log; and a block a pinned MR holds
// pages of, which cannot go offline: the API says so within its time limit and the block
// stays online, until the MR is gone. Meanwhile another change of that block is refused
// (409), and changes beyond the addon's limit too (503, Retry-After); a worker thread ended
// while its offlining is under way ends at once, leaving the block online.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import t from 'tap';

import { nativeBinding } from '../../control/src/native.js';
import type { MemoryBlock, Mr } from '../../control/src/schema.js';
import { startApi } from './api-server.js';
import { hold } from './mr-hold.js';

const top = process.env.PFNIC_TOP ?? process.cwd();
// TCG guests are slow; the rig's own time limit bounds the whole run
t.setTimeout(10 * 60_000);
const kernel = process.env.PFNIC_KERNEL ?? 'unknown';
const token = 'guest-test-token-0123456789';
const auth = { authorization: `Bearer ${token}` };
const sys = '/sys/devices/system/memory';

async function call<T>(base: string, method: string, url: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${url}`, { method, headers });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as T };
}

async function sysfsBlock(n: number): Promise<{ state: string; zones: string; node: number | null }> {
  const dir = path.join(sys, `memory${n}`);
  const node = (await readdir(dir)).map((e) => /^node(\d+)$/.exec(e)).find((m) => m);
  return {
    state: (await readFile(path.join(dir, 'state'), 'utf8')).trim(),
    zones: (await readFile(path.join(dir, 'valid_zones'), 'utf8')).trim(),
    node: node ? Number(node[1]) : null,
  };
}

t.test(`memory blocks through the API (kernel ${kernel})`, async (t) => {
  const log: string[] = [];
  const base = await startApi(t, top, 18082, { env: { PFNIC_API_TOKEN: token, PFNIC_BLOCK_TIMEOUT_S: '3' }, log });
  // how many block changes the server's addon takes at once
  const limit = nativeBinding().blockStateLimit;

  const { status, body: blocks } = await call<MemoryBlock[]>(base, 'GET', '/v1/memory/blocks');
  t.equal(status, 200, 'GET /v1/memory/blocks answers 200');
  const names = (await readdir(sys)).filter((e) => /^memory\d+$/.test(e));
  t.equal(blocks.length, names.length, `every block sysfs has (${names.length})`);
  const disagree: string[] = [];
  for (const b of blocks) {
    const s = await sysfsBlock(b.block);
    const zones = s.zones === 'none' ? '' : s.zones;
    if (b.state !== s.state || b.node !== s.node ||
        (b.online ? (b.zone ?? '') !== zones : b.valid_zones.join(' ') !== zones)) {
      disagree.push(`${b.block}: ${JSON.stringify(b)} vs ${JSON.stringify(s)}`);
    }
  }
  t.same(disagree, [], 'each block\'s state, node and zone as sysfs says');

  const dimm = blocks.filter((b) => b.node === 1 && b.zone === 'Movable');
  t.ok(dimm.length >= 2, `the DIMM's blocks are online and Movable on node 1 (${dimm.map((b) => b.block).join(' ')})`);
  const a = dimm[dimm.length - 1]!;

  // the token is required
  const noToken = await call<{ message: string }>(base, 'POST', `/v1/memory/blocks/${a.block}/offline`);
  t.equal(noToken.status, 401, 'offlining without the token: 401');
  t.equal((await sysfsBlock(a.block)).state, 'online', 'and the block stays online');

  const off = await call<MemoryBlock>(base, 'POST', `/v1/memory/blocks/${a.block}/offline`, auth);
  t.equal(off.status, 200, `block ${a.block} goes offline: 200`);
  t.match(off.body, { block: a.block, state: 'offline', online: false, zone: null }, 'the reply is the block, offline');
  t.equal((await sysfsBlock(a.block)).state, 'offline', 'sysfs agrees');
  t.ok(off.body.valid_zones.includes('Movable'), `it may come back as Movable (${off.body.valid_zones.join(' ')})`);
  const on = await call<MemoryBlock>(base, 'POST', `/v1/memory/blocks/${a.block}/online?zone=movable`, auth);
  t.equal(on.status, 200, 'and back online as Movable: 200');
  t.match(on.body, { state: 'online', online: true, zone: 'Movable' }, 'the reply says so');

  // a pinned MR in the DIMM: it has to be in a kernel zone (the kernel moves pages out of
  // Movable memory before it pins them), so block a comes back as Normal first
  await call(base, 'POST', `/v1/memory/blocks/${a.block}/offline`, auth);
  const normal = await call<MemoryBlock>(base, 'POST', `/v1/memory/blocks/${a.block}/online?zone=kernel`, auth);
  t.match(normal, { status: 200, body: { online: true, zone: 'Normal' } }, `block ${a.block} online into a kernel zone: Normal`);
  const holder = await hold(t, top, 'pfnic0', ['-p', '8192', '-n', '1', '-o', '0']);
  // the server's view of the MRs may lag a refresh behind: ask until it has the new one
  let held = await call<Mr[]>(base, 'GET', `/v1/mrs?pid=${holder.pid}`, { 'cache-control': 'no-cache' });
  for (let i = 0; i < 20 && held.body.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 500));
    held = await call<Mr[]>(base, 'GET', `/v1/mrs?pid=${holder.pid}`, { 'cache-control': 'no-cache' });
  }
  const pinned = held.body[0]?.pinned_blocks ?? [];
  const b = pinned.find((n) => n === a.block);
  t.ok(b !== undefined, `the pinned MR holds pages of block ${a.block}, node 1's Normal memory (${pinned.join(' ')})`);
  if (b === undefined) return;
  const started = Date.now();
  let answered = false;
  const refusing = call<{ message: string }>(base, 'POST', `/v1/memory/blocks/${b}/offline`, auth)
    .finally(() => { answered = true; });

  // While that change is under way (the kernel keeps trying to move the pinned pages until
  // the time limit), another change of the block is refused, and so are changes of other
  // blocks beyond the addon's limit; those within it wait their turn.
  await new Promise((r) => setTimeout(r, 500));
  const other = await call<{ message: string }>(base, 'POST', `/v1/memory/blocks/${b}/online`, auth);
  const underWay = !answered;
  const others = blocks.filter((x) => x.online && x.block !== b).slice(0, limit).map((x) => x.block);
  const queued = await Promise.all(others.map(async (n) => {
    const res = await call<{ message: string }>(base, 'POST', `/v1/memory/blocks/${n}/online`, auth);
    return { ...res, whileRunning: !answered };
  }));
  if (!underWay) {
    t.comment(`the kernel refused block ${b} at once: no change was under way to check against`);
  } else {
    t.match(other, { status: 409, body: { message: /another request is changing its state/ } },
      `another change of block ${b} while its offlining is under way: 409 (${other.body.message})`);
    t.equal(others.length, limit, `${limit} other online blocks to ask to come online`);
    const full = queued.filter((q) => q.status === 503);
    t.equal(full.length, 1, `with one change running, ${limit - 1} more wait and the ${limit}th is refused: 503`);
    t.ok(full.every((q) => q.whileRunning), 'at once, while the first is under way');
    t.match(full[0], { retryAfter: '3', body: { message: /try again later/ } }, 'with Retry-After: the time limit');
    t.ok(queued.filter((q) => q.status !== 503).every((q) => q.status === 200 || !/another request|try again later/.test(q.body.message)),
      'the others waited for their turn (then the kernel had its say: they are online already)');
  }

  const refused = await refusing;
  const took = (Date.now() - started) / 1000;
  t.equal(refused.status, 409, `offlining block ${b}, which the MR pins: 409 after ${took.toFixed(1)} s`);
  t.match(refused.body.message, /pinned/, `the reply says why: ${refused.body.message}`);
  t.ok(took < 30, 'at once (EBUSY) or within the time limit (3 s here), never forever');
  t.equal((await sysfsBlock(b)).state, 'online', 'the block is still online');

  // A worker thread whose offlining is under way (a ten-minute limit) when it is
  // terminated: its environment's teardown interrupts the write and joins the thread.
  const worker = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads');
    require(workerData.addon).writeBlockState(workerData.block, 'offline', 600000)
      .then(() => parentPort.postMessage('done'), (e) => parentPort.postMessage(e.code));
  `, { eval: true, workerData: { addon: path.join(top, 'build/cmake/Release/pfnic_addon.node'), block: b } });
  let result: string | undefined;
  worker.on('message', (m: string) => { result = m; });
  await new Promise((r) => setTimeout(r, 2000));
  const stopping = Date.now();
  await worker.terminate();
  const stopTook = (Date.now() - stopping) / 1000;
  if (result !== undefined) {
    t.comment(`the kernel answered the worker at once (${result}): no write was under way when it ended`);
  } else {
    t.ok(stopTook < 10, `a worker ended while its offlining of block ${b} is under way ends in ${stopTook.toFixed(1)} s`);
  }
  t.equal((await sysfsBlock(b)).state, 'online', 'and the block is still online');

  await holder.exit();
  // what the exited process left in kernel memory there is freed after a grace period
  let freed = await call<MemoryBlock>(base, 'POST', `/v1/memory/blocks/${b}/offline`, auth);
  for (let i = 0; i < 20 && freed.status === 409; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    freed = await call<MemoryBlock>(base, 'POST', `/v1/memory/blocks/${b}/offline`, auth);
  }
  t.equal(freed.status, 200, 'once the MR is gone, the block goes offline');
  const back = await call<MemoryBlock>(base, 'POST', `/v1/memory/blocks/${b}/online?zone=movable`, auth);
  t.equal(back.status, 200, 'and online again');

  // the audit log: each action, who asked, what came of it, and never the token
  await new Promise((r) => setTimeout(r, 200));
  const audits = log.map((l) => { try { return JSON.parse(l) as { audit?: Record<string, unknown> }; } catch { return {}; } })
    .filter((e) => e.audit).map((e) => e.audit!);
  t.match(audits.slice(0, 4), [
    { action: 'offline', block: a.block, outcome: 'done', state: 'offline' },
    { action: 'online_movable', block: a.block, outcome: 'done', state: 'online' },
    { action: 'offline', block: a.block, outcome: 'done' },
    { action: 'online_kernel', block: a.block, outcome: 'done' },
  ], 'the log audits every action taken');
  t.ok(audits.some((x) => x.action === 'offline' && x.block === b && x.outcome === 'refused' &&
    /^(EBUSY|ETIMEDOUT)$/.test(String(x.code))), 'the refused one with its reason');
  if (underWay) {
    t.ok(audits.some((x) => x.action === 'online' && x.block === b && x.code === 'EALREADY'),
      'the one refused while another was under way (EALREADY)');
    t.ok(audits.some((x) => x.action === 'online' && x.outcome === 'refused' && x.code === 'EAGAIN'),
      'and the one refused for the full queue (EAGAIN)');
  }
  t.match(audits.slice(-2), [
    { action: 'offline', block: b, outcome: 'done' },
    { action: 'online_movable', block: b, outcome: 'done' },
  ], 'to the last');
  t.ok(audits.every((x) => typeof x.from === 'string'), 'with where it came from');
  t.notOk(log.some((l) => l.includes(token)), 'and the token appears nowhere in the log');
  t.ok(log.every((l) => !l.includes('authorization')), 'nor does the Authorization header');
});
