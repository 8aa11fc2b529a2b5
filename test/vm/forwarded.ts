// A guest whose port is forwarded to this machine (test/vm/run.sh --forward), for the tests
// that reach into it from here: the lab's, the dashboard's.
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Test } from 'tap';

/** A TCP port nothing listens on now. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

export interface ForwardedGuest {
  port: number;
  /** What the guest printed so far. */
  output(): string;
}

/**
 * Boots a guest with `run.sh [options] --forward PORT kernel -- command...` (the command
 * gets the port as `{port}`), stopped at @p t's teardown, and waits until @p ready answers
 * at http://127.0.0.1:PORT (every 0.5 s, for @p waitS seconds). Returns undefined if it never did.
 */
export async function startForwardedGuest(t: Test, top: string, options: string[], kernel: string,
  command: string[], ready = '/v1/health', waitS = 120): Promise<ForwardedGuest | undefined> {
  const port = await freePort();
  const vm = spawn('bash', [path.join(top, 'test/vm/run.sh'), ...options, '--forward', String(port), kernel, '--',
    ...command.map((a) => a.replaceAll('{port}', String(port)))],
  { cwd: top, detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  vm.stdout.setEncoding('utf8');
  vm.stdout.on('data', (chunk: string) => { out += chunk; });
  const exited = new Promise<void>((resolve) => vm.on('close', () => resolve()));
  t.teardown(async () => {
    if (vm.pid) process.kill(-vm.pid, 'SIGTERM');
    await exited;
  });
  for (let i = 0; i < waitS * 2; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}${ready}`)).ok) return { port, output: () => out };
    } catch {
      // the guest is still booting
    }
    await sleep(500);
  }
  t.fail(`the guest answered ${ready} on the forwarded port within ${waitS} s`, { guest: out.slice(-2000) });
  return undefined;
}
