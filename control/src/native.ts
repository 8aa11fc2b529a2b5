// The native addon (control/native, built by cmake-js) and the checks its results pass
// before they reach the model: nothing unchecked crosses this boundary.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { Compile, type Validator } from 'typebox/compile';
import { Value } from 'typebox/value';
import type { Static, TSchema } from 'typebox';

/** What the compiled addon exports; its results are unchecked until validated below. */
export interface NativeBinding {
  queryDevices(): Promise<unknown>;
  queryDevice(name: string): Promise<unknown>;
  /** Every device's MRs, or those of the device named (none if the host has no such device). */
  queryMrs(device?: string): Promise<unknown>;
  /** One MR as queryMrs lists it; rejects with code ENOENT (no such MR) or ENODEV (no such device). */
  queryMr(device: string, mrn: number): Promise<unknown>;
  /**
   * Changes a memory block's state on the addon's own thread. Rejects with code EALREADY
   * while a change of that block is waiting or in progress, EAGAIN while blockStateLimit
   * changes are, else with the kernel's errno name.
   */
  writeBlockState(block: number, action: string, timeoutMs: number): Promise<void>;
  /** How many block state changes may be waiting or in progress at once. */
  readonly blockStateLimit: number;
  /**
   * Each directory's files holding a decimal number, as [name, value] pairs, read on a worker
   * thread; null for a directory that is not there. Rejects with the errno name otherwise.
   */
  readCounterDirs(dirs: string[]): Promise<unknown>;
  EventWatch: new (path: string, callback: (err: Error | null, records: unknown) => void) => { close(): void };
  DeviceMonitor: new (callback: (err: Error | null, changes: unknown) => void) => { close(): void };
  AsyncEventWatch: new (device: string, callback: (err: Error | null, events: unknown) => void) => { close(): void };
}

/** The kernel or libibverbs refused a query (permission, device gone, ...). */
export class DeviceQueryError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
    this.name = 'DeviceQueryError';
  }
}

const here = path.dirname(fileURLToPath(import.meta.url));

/** Where the addon is: PFNIC_ADDON, else cmake-js's output at the top of the tree. */
function addonPath(): string {
  if (process.env.PFNIC_ADDON) return process.env.PFNIC_ADDON;
  // here is control/src (sources run by tap) or dist/control/src (compiled)
  const top = here.includes(`${path.sep}dist${path.sep}`)
    ? path.resolve(here, '../../..')
    : path.resolve(here, '../..');
  return path.join(top, 'build/cmake/Release/pfnic_addon.node');
}

let binding: NativeBinding | undefined;

/** The native binding, loaded on first use. */
export function nativeBinding(): NativeBinding {
  if (!binding) {
    const file = addonPath();
    if (!existsSync(file)) {
      throw new Error(`pfnic's native addon is not built (npm run build:addon): no ${file}`);
    }
    const require = createRequire(import.meta.url);
    const loaded: unknown = require(file);
    if (!isBinding(loaded)) throw new Error(`${file} is not pfnic's addon`);
    binding = loaded;
  }
  return binding;
}

function isBinding(v: unknown): v is NativeBinding {
  return typeof v === 'object' && v !== null &&
    typeof (v as Record<string, unknown>).queryDevices === 'function' &&
    typeof (v as Record<string, unknown>).queryDevice === 'function' &&
    typeof (v as Record<string, unknown>).queryMrs === 'function' &&
    typeof (v as Record<string, unknown>).queryMr === 'function' &&
    typeof (v as Record<string, unknown>).writeBlockState === 'function' &&
    typeof (v as Record<string, unknown>).blockStateLimit === 'number' &&
    typeof (v as Record<string, unknown>).readCounterDirs === 'function' &&
    typeof (v as Record<string, unknown>).EventWatch === 'function' &&
    typeof (v as Record<string, unknown>).DeviceMonitor === 'function' &&
    typeof (v as Record<string, unknown>).AsyncEventWatch === 'function';
}

// Schemas compiled to checking functions once each: interpreting a schema over 10,000 MRs
// took seconds in a guest, the compiled check a fraction of that.
const validators = new WeakMap<TSchema, Validator>();

function validator(schema: TSchema): Validator {
  let v = validators.get(schema);
  if (!v) {
    v = Compile(schema);
    validators.set(schema, v);
  }
  return v;
}

/** @p value as @p schema types it, or an error naming the first mismatch. */
export function checked<S extends TSchema>(schema: S, value: unknown, what: string): Static<S> {
  if (validator(schema).Check(value)) return value as Static<S>;
  const first = Value.Errors(schema, value)[0];
  throw new Error(`the addon returned a malformed ${what}: ${JSON.stringify(first ?? {})}`);
}

/** The addon's rejection as a DeviceQueryError, with the errno name it gave. */
export function queryError(err: unknown): Error {
  if (err instanceof Error) {
    const code = (err as Error & { code?: unknown }).code;
    return new DeviceQueryError(err.message, typeof code === 'string' ? code : 'EIO');
  }
  return new DeviceQueryError(String(err), 'EIO');
}

