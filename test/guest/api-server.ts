// The control plane's API server, started inside a guest for a test and stopped when the
// test ends: the compiled server (dist/), as `npm start` runs it.
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { Test } from 'tap';

export interface ApiOptions {
  /** Extra environment for the server (its token, time limits). */
  env?: Record<string, string>;
  /** Collects the server's log lines (JSON, level info and up) instead of passing them on. */
  log?: string[];
}

/** Starts the API on 127.0.0.1:@p port, stopped at @p t's teardown; its base URL. */
export async function startApi(t: Test, top: string, port: number, options: ApiOptions = {}): Promise<string> {
  const { log } = options;
  const server = spawn(process.execPath, [path.join(top, 'dist/api/src/server.js')], {
    env: {
      ...process.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: log ? 'info' : 'warn', ...options.env,
    },
    stdio: ['ignore', log ? 'pipe' : 'inherit', 'inherit'],
  });
  if (log && server.stdout) {
    let rest = '';
    server.stdout.setEncoding('utf8');
    server.stdout.on('data', (chunk: string) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      log.push(...lines);
    });
  }
  t.teardown(() => { server.kill('SIGTERM'); });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    try {
      const res = await fetch(`${base}/v1/health`);
      if (res.ok) return base;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the API server did not come up within 60 s');
}
