// Runs the control plane's API until a signal, as config.ts's settings say (a JSON file
// named by PFNIC_CONFIG, and environment variables: PORT, 8080, on HOST, 127.0.0.1, ...).
// Callers are known by bearer tokens with a role (read or admin; auth.ts); the routes that
// change the host need an admin's, and are off without one.
import closeWithGrace from 'close-with-grace';

import { EventHub } from '../../control/src/index.js';
import { buildApp } from './app.js';
import { ConfigError, exposureWarnings, loadConfig } from './config.js';

let config;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`pfnic control plane: ${err.message}\n`);
  process.exit(2);
}

const app = await buildApp({
  logger: { level: config.log_level },
  credentials: config.credentials,
  anonymousRead: config.anonymous_read,
  tls: config.tls,
  trustProxy: config.trust_proxy,
  blockTimeoutMs: config.block_timeout_s * 1000,
  perMrSeries: config.metrics_mr_series,
  rateLimit: config.rate_limit,
  maxEventStreams: config.event_streams,
  events: new EventHub({ historySize: config.event_history }),
});
app.server.requestTimeout = 30_000;

closeWithGrace({ delay: 5_000 }, async ({ signal, err }) => {
  if (err) app.log.error({ err }, 'closing after an error');
  else app.log.info({ signal }, 'closing');
  await app.close();
});

for (const warning of exposureWarnings(config)) app.log.warn(warning);
await app.listen({ port: config.port, host: config.host });
