// The server's settings: defaults, a config file, environment variables over it, and a
// clear error for every bad value, naming it and where it came from.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';

import { ConfigError, loadConfig } from '../api/src/config.js';

const dir = mkdtempSync(path.join(tmpdir(), 'pfnic-config-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};

t.test('defaults', async (t) => {
  t.same(loadConfig({}), {
    port: 8080, host: '127.0.0.1', log_level: 'info', block_timeout_s: 20, metrics_mr_series: 50,
    rate_limit: 600, event_history: 10_000, token: undefined,
  }, 'with nothing set');
});

t.test('a file, and the environment over it', async (t) => {
  const tokenFile = file('token', 'a-token-from-a-file-1234\n');
  const cfg = file('ok.json', JSON.stringify({ port: 9000, host: '0.0.0.0', rate_limit: 100, token_file: tokenFile }));
  const c = loadConfig({ PFNIC_CONFIG: cfg, PORT: '9100', LOG_LEVEL: 'warn', PFNIC_EVENT_HISTORY: '500' });
  t.match(c, { port: 9100, host: '0.0.0.0', rate_limit: 100, log_level: 'warn', event_history: 500 },
    'file values, with PORT, LOG_LEVEL and PFNIC_EVENT_HISTORY over them');
  t.equal(c.token, 'a-token-from-a-file-1234', 'the token from token_file\'s first line');
  t.equal(loadConfig({ PFNIC_API_TOKEN: 'x'.repeat(16) }).token, 'x'.repeat(16), 'or from PFNIC_API_TOKEN');
});

t.test('bad values stop it, saying which and where', async (t) => {
  const cases: [NodeJS.ProcessEnv, RegExp][] = [
    [{ PORT: '70000' }, /^PORT: .*65535/],
    [{ PORT: 'http' }, /^PORT: /],
    [{ LOG_LEVEL: 'loud' }, /^LOG_LEVEL: /],
    [{ PFNIC_BLOCK_TIMEOUT_S: '0' }, /^PFNIC_BLOCK_TIMEOUT_S: /],
    [{ PFNIC_METRICS_MR_SERIES: '1.5' }, /^PFNIC_METRICS_MR_SERIES: /],
    [{ PFNIC_API_TOKEN: 'short' }, /PFNIC_API_TOKEN.*at least 16/],
    [{ PFNIC_API_TOKEN: 'has a space in it ok' }, /without spaces/],
    [{ PFNIC_API_TOKEN_FILE: path.join(dir, 'nope') }, /token file .*nope.*cannot be read/],
    [{ PFNIC_CONFIG: path.join(dir, 'missing.json') }, /config file .*missing\.json.*cannot be read/],
    [{ PFNIC_CONFIG: file('array.json', '[1]') }, /must hold a JSON object/],
    [{ PFNIC_CONFIG: file('bad.json', '{"port": ') }, /cannot be read/],
    [{ PFNIC_CONFIG: file('typo.json', '{"prot": 1}') }, /"prot" is not a setting/],
    [{ PFNIC_CONFIG: file('type.json', '{"rate_limit": "many"}') }, /type\.json: rate_limit: /],
  ];
  for (const [env, message] of cases) {
    t.throws(() => loadConfig(env), { name: 'ConfigError', message }, `${JSON.stringify(env).slice(0, 60)}: ${message}`);
  }
  t.ok(new ConfigError('x') instanceof Error, 'a ConfigError is an Error');
});
