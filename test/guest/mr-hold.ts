// mr_hold (build/cmake/tests/mr_hold, test/guest/mr_hold.c) driven from a test: a process
// that registers MRs, holds them, and changes their memory when told.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import type { Test } from 'tap';

export interface HeldMr { kind: string; length: bigint; lkey: string; rkey: string; addr: string }

export interface Holder {
  pid: number;
  mrs: HeldMr[];
  proc: ChildProcessWithoutNullStreams;
  /** Sends a command ("dontneed") and waits for its "done". */
  command(cmd: string): Promise<void>;
  /** Closes its input and waits for it to exit (its MRs go with it). */
  exit(): Promise<void>;
}

/** Starts mr_hold on @p device with @p args and waits until it holds its MRs. */
export async function hold(t: Test, top: string, device: string, args: string[]): Promise<Holder> {
  const proc = spawn(path.join(top, 'build/cmake/tests/mr_hold'), ['-d', device, ...args]);
  t.teardown(() => { proc.stdin.end(); });
  let out = '';
  let waiting: (() => void) | undefined;
  let done = 0;
  proc.stdout.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    proc.stdout.on('data', (chunk: string) => {
      out += chunk;
      if (/^ready$/m.test(out)) resolve();
      const n = (out.match(/^done$/gm) ?? []).length;
      if (n > done && waiting) { done = n; const w = waiting; waiting = undefined; w(); }
    });
    proc.on('exit', (code) => reject(new Error(`mr_hold -d ${device} exited (${code}) before it was ready: ${out}`)));
  });
  const mrs = [...out.matchAll(/^mr (\w+) (\d+) (0x[0-9a-f]+) (0x[0-9a-f]+) (\S+)$/gm)].map((m) => ({
    kind: m[1]!, length: BigInt(m[2]!), lkey: m[3]!, rkey: m[4]!, addr: m[5]!,
  }));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  return {
    pid: proc.pid!,
    mrs,
    proc,
    command: (cmd) => new Promise<void>((resolve) => { waiting = resolve; proc.stdin.write(`${cmd}\n`); }),
    exit: async () => { proc.stdin.end(); await exited; },
  };
}
