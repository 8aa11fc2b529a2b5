// The native addon's argument checks and its contract: promises, never a blocked loop.
import t from 'tap';

import { getDevice, listDevices, nativeBinding, DeviceNotFoundError } from '../control/src/index.js';

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
  t.throws(() => b.queryMrs!('extra'), TypeError, 'queryMrs takes no arguments');
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
