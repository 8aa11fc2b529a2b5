// Runs the control plane's API: PORT (8080) on HOST (127.0.0.1), until a signal. The
// routes that change the host need a bearer token: PFNIC_API_TOKEN_FILE (a file holding
// it) or PFNIC_API_TOKEN; without one they are off. PFNIC_BLOCK_TIMEOUT_S bounds how long a
// memory block may take to go offline, PFNIC_METRICS_MR_SERIES how many MRs get /metrics
// series of their own.
import { readFileSync } from 'node:fs';
import closeWithGrace from 'close-with-grace';

import { buildApp } from './app.js';
import { MIN_TOKEN_LENGTH } from './auth.js';

function listenPort(): number {
  const raw = process.env.PORT ?? '8080';
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`PORT must be a TCP port number (0-65535), not "${raw}"`);
  }
  return port;
}

function apiToken(): string | undefined {
  const file = process.env.PFNIC_API_TOKEN_FILE;
  const token = file ? readFileSync(file, 'utf8').trim() : process.env.PFNIC_API_TOKEN;
  if (token === undefined || token === '') return undefined;
  if (token.length < MIN_TOKEN_LENGTH || !/^[\x21-\x7e]+$/.test(token)) {
    throw new Error(`the API token (${file ? `PFNIC_API_TOKEN_FILE ${file}` : 'PFNIC_API_TOKEN'}) must be at ` +
      `least ${MIN_TOKEN_LENGTH} printable characters without spaces`);
  }
  return token;
}

/** PFNIC_BLOCK_TIMEOUT_S: how long a memory block may take to go offline (default 20). */
function blockTimeoutMs(): number | undefined {
  const raw = process.env.PFNIC_BLOCK_TIMEOUT_S;
  if (raw === undefined) return undefined;
  const s = Number(raw);
  if (!Number.isFinite(s) || s < 1 || s > 3600) {
    throw new Error(`PFNIC_BLOCK_TIMEOUT_S must be 1 to 3600 seconds, not "${raw}"`);
  }
  return s * 1000;
}

/** PFNIC_METRICS_MR_SERIES: MRs with /metrics series of their own at most (default 50). */
function perMrSeries(): number | undefined {
  const raw = process.env.PFNIC_METRICS_MR_SERIES;
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 10_000) {
    throw new Error(`PFNIC_METRICS_MR_SERIES must be 0 to 10000 MRs, not "${raw}"`);
  }
  return n;
}

const app = await buildApp({
  logger: { level: process.env.LOG_LEVEL ?? 'info' },
  token: apiToken(),
  blockTimeoutMs: blockTimeoutMs(),
  perMrSeries: perMrSeries(),
});
app.server.requestTimeout = 30_000;

closeWithGrace({ delay: 5_000 }, async ({ signal, err }) => {
  if (err) app.log.error({ err }, 'closing after an error');
  else app.log.info({ signal }, 'closing');
  await app.close();
});

await app.listen({ port: listenPort(), host: process.env.HOST ?? '127.0.0.1' });
