// The native addon's argument checks and its contract: promises, never a blocked loop; memory
// block changes on a thread of its own, one per block at a time, a bounded number waiting.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import t from 'tap';

import {
  getDevice, getMr, listDevices, nativeBinding, DeviceNotFoundError, MrNotFoundError,
} from '../control/src/index.js';

const addonFile = process.env.PFNIC_ADDON ??
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../build/cmake/Release/pfnic_addon.node');
// Block numbers no host has: a write to one fails at open() (ENOENT) and changes nothing.
const noBlock = 999_999_000;

t.test('the binding checks its arguments', async (t) => {
  const b = nativeBinding() as unknown as Record<string, (...args: unknown[]) => unknown>;
  const queryDevice = b.queryDevice!;
  const queryDevices = b.queryDevices!;
  t.throws(() => queryDevice(), TypeError, 'queryDevice() without a name');
  t.throws(() => queryDevice(42), TypeError, 'queryDevice(number)');
  t.throws(() => queryDevice('a', 'b'), TypeError, 'queryDevice with two arguments');
  t.throws(() => queryDevice(''), RangeError, 'an empty name');
  t.throws(() => queryDevice('x'.repeat(64)), RangeError, 'a name longer than the kernel allows');
  t.throws(() => queryDevice('rxe\u00000'), RangeError, 'a name with a NUL');
  t.throws(() => queryDevices('extra'), TypeError, 'queryDevices takes no arguments');
  t.throws(() => b.queryMrs!('rxe0', 'extra'), TypeError, 'queryMrs takes one device at most');
  t.throws(() => b.queryMrs!(7), TypeError, 'queryMrs with a device that is a number');
  t.throws(() => b.queryMrs!(''), RangeError, 'queryMrs with an empty name');
  t.same(await b.queryMrs!('nosuchdev0'), [], 'queryMrs of a device the host does not have: none');
  const queryMr = b.queryMr!;
  t.throws(() => queryMr(), TypeError, 'queryMr() without arguments');
  t.throws(() => queryMr('rxe0'), TypeError, 'queryMr without an MR number');
  t.throws(() => queryMr(1, 1), TypeError, 'queryMr with a device that is a number');
  t.throws(() => queryMr('rxe0', '1'), TypeError, 'queryMr with an MR number that is a string');
  t.throws(() => queryMr('rxe0', 1, 2), TypeError, 'queryMr with three arguments');
  t.throws(() => queryMr('', 1), RangeError, 'queryMr with an empty device name');
  t.throws(() => queryMr('x'.repeat(64), 1), RangeError, 'queryMr with a name longer than the kernel allows');
  t.throws(() => queryMr('rxe\u00000', 1), RangeError, 'queryMr with a name with a NUL');
  for (const mrn of [-1, 1.5, 2 ** 32, Number.NaN, Number.POSITIVE_INFINITY]) {
    t.throws(() => queryMr('rxe0', mrn), RangeError, `queryMr with MR number ${mrn}`);
  }
  const largest = queryMr('nosuchdev0', 2 ** 32 - 1);
  t.ok(largest instanceof Promise, 'the largest MR number is one');
  await t.rejects(largest as Promise<unknown>, { code: 'ENODEV' }, 'and is looked up (on a device this host does not have)');
  const writeBlockState = b.writeBlockState!;
  t.throws(() => writeBlockState(1, 'offline'), TypeError, 'writeBlockState needs three arguments');
  t.throws(() => writeBlockState('1', 'offline', 1000), TypeError, 'a block number that is a string');
  t.throws(() => writeBlockState(-1, 'offline', 1000), RangeError, 'a negative block');
  t.throws(() => writeBlockState(1.5, 'offline', 1000), RangeError, 'a fractional block');
  t.throws(() => writeBlockState(1, 'reboot', 1000), RangeError, 'an action that is not one');
  t.throws(() => writeBlockState(1, 'offline', 0), RangeError, 'no time at all');
  const { EventWatch } = nativeBinding();
  t.throws(() => new EventWatch(42 as unknown as string, () => undefined), TypeError, 'an EventWatch path that is not a string');
  t.throws(() => new EventWatch('/x', undefined as unknown as () => void), TypeError, 'an EventWatch without a callback');
  const { DeviceMonitor } = nativeBinding();
  t.throws(() => new DeviceMonitor(undefined as unknown as () => void), TypeError, 'a DeviceMonitor without a callback');
  const { AsyncEventWatch } = nativeBinding();
  t.throws(() => new AsyncEventWatch(7 as unknown as string, () => undefined), TypeError, 'an AsyncEventWatch device that is not a string');
  t.throws(() => new AsyncEventWatch('rxe0', undefined as unknown as () => void), TypeError, 'an AsyncEventWatch without a callback');
});

t.test('an async event watch of a device that does not exist fails with ENODEV, once', async (t) => {
  const { AsyncEventWatch } = nativeBinding();
  const calls: { code: string | undefined; message: string }[] = [];
  const watch = new AsyncEventWatch('no-such-device', (err) => {
    calls.push({ code: (err as Error & { code?: string } | null)?.code, message: err?.message ?? 'no error' });
  });
  for (let i = 0; i < 50 && calls.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 200));
  watch.close();
  t.equal(calls.length, 1, 'one call');
  t.equal(calls[0]?.code, 'ENODEV', `with ENODEV: ${calls[0]?.message ?? '-'}`);
});

t.test('queries return promises and the event loop keeps running', async (t) => {
  const b = nativeBinding();
  const pending = b.queryDevices();
  t.ok(pending instanceof Promise, 'queryDevices returns a promise');
  let ticked = false;
  setImmediate(() => { ticked = true; });
  const devices = await pending;
  await new Promise((r) => setImmediate(r));
  t.ok(ticked, 'the loop ran while the query was out');
  t.ok(Array.isArray(devices), 'it resolves to a list');
  const mrs = b.queryMrs();
  t.ok(mrs instanceof Promise, 'queryMrs returns a promise');
  t.ok(Array.isArray(await mrs), 'it resolves to a list (of devices with their MRs)');
  // a block no host has: the write fails at open() and changes nothing
  await t.rejects(b.writeBlockState(999999999, 'offline', 1000), { code: 'ENOENT' },
    'writing the state of a block that does not exist rejects with ENOENT');
});

t.test('the facade', async (t) => {
  t.ok(Array.isArray(await listDevices()), 'listDevices resolves to a list');
  await t.rejects(getDevice('nosuchdev0'), DeviceNotFoundError, 'an unknown device rejects with DeviceNotFoundError');
  await t.rejects(getDevice('nosuchdev0'), { code: 'ENODEV', device: 'nosuchdev0' }, 'carrying ENODEV and the name');
  await t.rejects(nativeBinding().queryMr('nosuchdev0', 7), { code: 'ENODEV', message: /nosuchdev0/ },
    'queryMr of a device that does not exist rejects with ENODEV, naming it');
  await t.rejects(getMr('nosuchdev0', 7), MrNotFoundError, 'getMr there rejects with MrNotFoundError');
  await t.rejects(getMr('nosuchdev0', 7), { code: 'ENOENT', device: 'nosuchdev0', mrn: 7 }, 'carrying the device and the number');
  await t.rejects(getMr('nosuchdev0', -1), RangeError, 'getMr of a number that is not an MR number: RangeError');
});

type Outcome = { code: string; message: string } | 'done';

const outcome = (p: Promise<void>): Promise<Outcome> => p.then(() => 'done' as const, (err: unknown) => ({
  code: String((err as { code?: unknown }).code), message: err instanceof Error ? err.message : String(err),
}));

const codeOf = (o: Outcome): string => (o === 'done' ? o : o.code);

t.test('block state changes: one per block at a time, a bounded number waiting', async (t) => {
  const b = nativeBinding();
  const limit = b.blockStateLimit;
  t.ok(Number.isInteger(limit) && limit >= 2, `the addon takes a few changes at once (${limit})`);

  // A change is in progress from the call until its promise settles, which is never before
  // the calling code yields: requests made in one go overlap for certain.
  const first = outcome(b.writeBlockState(noBlock, 'offline', 1000));
  const again = outcome(b.writeBlockState(noBlock, 'online', 1000));
  t.match(await again, { code: 'EALREADY', message: new RegExp(`memory block ${noBlock}: .*already`) },
    'a second change of a block whose change is under way is refused: EALREADY');
  t.match(await first, { code: 'ENOENT' }, 'the first goes through (and fails at open: no such block)');
  t.match(await outcome(b.writeBlockState(noBlock, 'offline', 1000)), { code: 'ENOENT' },
    'once it is done, the block can be changed again');

  const many = Array.from({ length: limit + 3 }, (_, i) => outcome(b.writeBlockState(noBlock + 1 + i, 'offline', 1000)));
  const results = await Promise.all(many);
  t.same(results.slice(0, limit).map(codeOf), Array(limit).fill('ENOENT'),
    `the first ${limit} are taken`);
  t.same(results.slice(limit).map(codeOf), ['EAGAIN', 'EAGAIN', 'EAGAIN'],
    'the rest are refused: EAGAIN');
  t.match(results[limit], { message: new RegExp(`${limit} memory block changes are waiting or in progress`) },
    'saying how many are');
  const later = await Promise.all(Array.from({ length: limit }, (_, i) => outcome(b.writeBlockState(noBlock + 1 + i, 'offline', 1000))));
  t.same(later.map(codeOf), Array(limit).fill('ENOENT'), 'once they are done, there is room again for as many');
});

t.test('the block thread keeps a process alive while a change is out, and no longer', async (t) => {
  const run = promisify(execFile);
  const started = Date.now();
  const { stdout } = await run(process.execPath, ['-e', `
    const b = require(${JSON.stringify(addonFile)});
    b.writeBlockState(${noBlock}, 'offline', 1000).then(() => console.log('done'), (e) => console.log(e.code));
  `], { timeout: 30_000 });
  t.equal(stdout.trim(), 'ENOENT', 'the process waits for the change to settle');
  t.ok(Date.now() - started < 30_000, 'and exits once it has: the idle thread holds nothing');
});

t.test('workers with the addon end cleanly, changes outstanding or not', async (t) => {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const b = require(workerData.addon);
    for (let i = 0; i < b.blockStateLimit; i++) {
      b.writeBlockState(workerData.block + i, 'offline', 1000).then(() => parentPort.postMessage('done'),
        (e) => parentPort.postMessage(e.code));
    }
  `;
  for (let round = 0; round < 6; round++) {
    const worker = new Worker(code, { eval: true, workerData: { addon: addonFile, block: noBlock + 100 } });
    const codes: string[] = [];
    worker.on('message', (c: string) => codes.push(c));
    const exited = new Promise<number>((resolve) => worker.on('exit', resolve));
    if (round % 2 === 0) {
      await worker.terminate();
      t.pass(`round ${round}: a worker terminated at once, its changes dropped, ends`);
    } else {
      t.equal(await exited, 0, `round ${round}: a worker that runs out of work exits by itself`);
      t.same(codes, Array(nativeBinding().blockStateLimit).fill('ENOENT'), 'after its changes settled');
    }
  }
  t.match(await outcome(nativeBinding().writeBlockState(noBlock + 100, 'offline', 1000)), { code: 'ENOENT' },
    'this thread\'s own block changes are not affected');
});

t.test('an event watch reports what keeps it from reading, and stops', async (t) => {
  const { EventWatch } = nativeBinding();
  // the watch itself keeps nothing alive: this test waits with a timer of its own
  const keepAlive = setTimeout(() => undefined, 10_000);
  const first = (path: string) => new Promise<{ err: Error | null; watch: { close(): void } }>((resolve) => {
    const watch = new EventWatch(path, (err, records) => {
      if (err || (Array.isArray(records) && records.length === 0)) resolve({ err, watch });
    });
  });
  const missing = await first('/nonexistent/pfnic-events');
  t.match(missing.err, { code: 'ENOENT', message: /\/nonexistent\/pfnic-events/ }, 'a missing channel: ENOENT, naming it');
  missing.watch.close();
  missing.watch.close();
  t.pass('close() twice is harmless');
  const opened = await first('/dev/null');
  t.equal(opened.err, null, 'a device that opens: an empty batch says so');
  const ended = await new Promise<Error | null>((resolve) => {
    new EventWatch('/dev/null', (err) => { if (err) resolve(err); });
  });
  t.match(ended, { code: 'ENODATA' }, 'one whose reads end (not a channel): ENODATA, and the watch stops');
  opened.watch.close();
  clearTimeout(keepAlive);
});
