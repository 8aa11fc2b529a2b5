// Runs the control plane's API: PORT (8080) on HOST (127.0.0.1), until a signal.
import closeWithGrace from 'close-with-grace';

import { buildApp } from './app.js';

function listenPort(): number {
  const raw = process.env.PORT ?? '8080';
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`PORT must be a TCP port number (0-65535), not "${raw}"`);
  }
  return port;
}

const app = await buildApp({
  logger: { level: process.env.LOG_LEVEL ?? 'info' },
});
app.server.requestTimeout = 30_000;

closeWithGrace({ delay: 5_000 }, async ({ signal, err }) => {
  if (err) app.log.error({ err }, 'closing after an error');
  else app.log.info({ signal }, 'closing');
  await app.close();
});

await app.listen({ port: listenPort(), host: process.env.HOST ?? '127.0.0.1' });
