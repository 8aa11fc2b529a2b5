// The server's settings: defaults, a config file, environment variables over it, and a
// clear error for every bad value, naming it and where it came from.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';

import { tokenDigest } from '../api/src/auth.js';
import { ConfigError, exposureWarnings, loadConfig } from '../api/src/config.js';

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
    rate_limit: 600, event_history: 10_000, event_streams: 100, tokens: [], anonymous_read: true, trust_proxy: false,
    credentials: [], tls: undefined,
  }, 'with nothing set: loopback, anonymous reads, no token, no TLS');
});

t.test('a file, and the environment over it', async (t) => {
  const tokenFile = file('token', 'a-token-from-a-file-1234\n');
  const cfg = file('ok.json', JSON.stringify({ port: 9000, host: '0.0.0.0', rate_limit: 100, token_file: tokenFile }));
  const c = loadConfig({ PFNIC_CONFIG: cfg, PORT: '9100', LOG_LEVEL: 'warn', PFNIC_EVENT_HISTORY: '500' });
  t.match(c, { port: 9100, host: '0.0.0.0', rate_limit: 100, log_level: 'warn', event_history: 500 },
    'file values, with PORT, LOG_LEVEL and PFNIC_EVENT_HISTORY over them');
  t.same(c.credentials, [{ name: 'admin', role: 'admin', sha256: tokenDigest('a-token-from-a-file-1234') }],
    'an admin token from token_file\'s first line, kept as its digest');
  t.same(loadConfig({ PFNIC_API_TOKEN: 'x'.repeat(16), PFNIC_API_READ_TOKEN: 'y'.repeat(16) }).credentials, [
    { name: 'admin', role: 'admin', sha256: tokenDigest('x'.repeat(16)) },
    { name: 'reader', role: 'read', sha256: tokenDigest('y'.repeat(16)) },
  ], 'or an admin\'s from PFNIC_API_TOKEN and a reader\'s from PFNIC_API_READ_TOKEN');
  t.match(loadConfig({ PFNIC_ANONYMOUS_READ: 'false', PFNIC_TRUST_PROXY: '2' }), { anonymous_read: false, trust_proxy: 2 },
    'booleans and numbers from the environment');
  t.match(loadConfig({ PFNIC_TRUST_PROXY: '10.0.0.0/8, ::1' }), { trust_proxy: '10.0.0.0/8, ::1' }, 'trust_proxy as addresses');
  t.match(loadConfig({ PFNIC_TRUST_PROXY: '10.0.0.1' }), { trust_proxy: '10.0.0.1' }, 'or one address, which is not a number');
});

t.test('tokens by digest, in the settings and a directory', async (t) => {
  const tokens = path.join(dir, 'tokens');
  mkdirSync(tokens);
  writeFileSync(path.join(tokens, 'grafana'), `read ${tokenDigest('g'.repeat(20))}\n`);
  writeFileSync(path.join(tokens, 'ops'), `admin ${tokenDigest('o'.repeat(20))}\n`);
  writeFileSync(path.join(tokens, '.hidden'), 'anything');
  const cfg = file('tokens.json', JSON.stringify({
    tokens: [{ name: 'lab', role: 'read', sha256: tokenDigest('l'.repeat(20)) }], token_dir: tokens,
  }));
  t.same(loadConfig({ PFNIC_CONFIG: cfg }).credentials.map((c) => [c.name, c.role]),
    [['lab', 'read'], ['grafana', 'read'], ['ops', 'admin']], 'the settings\' tokens, then the directory\'s (dot files left out)');
  const bad = path.join(dir, 'badtokens');
  mkdirSync(bad);
  writeFileSync(path.join(bad, 'x'), 'root 1234\n');
  t.throws(() => loadConfig({ PFNIC_TOKEN_DIR: bad }), { message: /badtokens\/x .*PFNIC_TOKEN_DIR.* must hold one line "read SHA256"/ },
    'a token file that is not "ROLE SHA256" stops it, naming the file');
  const twice = file('twice.json', JSON.stringify({ tokens: [
    { name: 'a', role: 'read', sha256: tokenDigest('a'.repeat(20)) }, { name: 'a', role: 'admin', sha256: tokenDigest('b'.repeat(20)) },
  ] }));
  t.throws(() => loadConfig({ PFNIC_CONFIG: twice }), { message: /tokens\[1\]: the token name "a" is taken/ }, 'two tokens of one name');
  const same = file('same.json', JSON.stringify({ tokens: [{ name: 'a', role: 'read', sha256: tokenDigest('a'.repeat(20)) }] }));
  t.throws(() => loadConfig({ PFNIC_CONFIG: same, PFNIC_API_TOKEN: 'a'.repeat(20) }), { message: /PFNIC_API_TOKEN: the same token as/ },
    'one token under two names');
  const shortHash = file('short.json', JSON.stringify({ tokens: [{ name: 'a', role: 'read', sha256: 'abc' }] }));
  t.throws(() => loadConfig({ PFNIC_CONFIG: shortHash }), { message: /short\.json: tokens: 0\/sha256 / }, 'a digest that is not one');
});

t.test('TLS, and what an operator is warned of', async (t) => {
  const cert = file('cert.pem', 'CERT');
  const key = file('key.pem', 'KEY');
  const c = loadConfig({ PFNIC_TLS_CERT: cert, PFNIC_TLS_KEY: key });
  t.equal(c.tls?.cert.toString(), 'CERT', 'the certificate is read at start');
  t.equal(c.tls?.key.toString(), 'KEY', 'and its key');
  t.throws(() => loadConfig({ PFNIC_TLS_CERT: cert }), { message: /needs both tls_cert and tls_key/ }, 'a certificate without a key');
  t.throws(() => loadConfig({ PFNIC_TLS_CERT: cert, PFNIC_TLS_KEY: path.join(dir, 'nokey') }),
    { message: /key file .*nokey \(PFNIC_TLS_KEY\) cannot be read/ }, 'a key that cannot be read');
  t.same(exposureWarnings(loadConfig({})), [], 'on loopback, nothing to warn of');
  t.match(exposureWarnings(loadConfig({ PFNIC_ANONYMOUS_READ: 'false' })), [/nobody can read/],
    'but for a server nobody can read: no anonymous reads and no token');
  const wide = exposureWarnings(loadConfig({ HOST: '0.0.0.0' }));
  t.equal(wide.length, 2, 'bound wider without TLS and with anonymous reads: two warnings');
  t.match(wide[0], /without TLS/, 'one says the network sees tokens in clear');
  t.match(wide[1], /anonymous_read/, 'one says who can read');
  t.same(exposureWarnings(loadConfig({
    HOST: '0.0.0.0', PFNIC_TLS_CERT: cert, PFNIC_TLS_KEY: key, PFNIC_ANONYMOUS_READ: '0', PFNIC_API_READ_TOKEN: 'r'.repeat(20),
  })), [],
    'with TLS and tokens for everyone, none');
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
    [{ PFNIC_API_READ_TOKEN: 'short' }, /PFNIC_API_READ_TOKEN.*at least 16/],
    [{ PFNIC_API_TOKEN_FILE: path.join(dir, 'nope') }, /token file .*nope.*cannot be read/],
    [{ PFNIC_TOKEN_DIR: path.join(dir, 'nodir') }, /token directory .*nodir.*cannot be read/],
    [{ PFNIC_API_TOKEN_FILE: file('empty-token', '\n') }, /token file .*empty-token .* is empty/],
    [{ PFNIC_API_TOKEN_FILE: file('a-token', 'x'.repeat(20)), PFNIC_API_TOKEN: 'y'.repeat(20) }, /both give the admin's token/],
    [{ PFNIC_ANONYMOUS_READ: 'maybe' }, /^PFNIC_ANONYMOUS_READ: /],
    [{ PFNIC_TRUST_PROXY: '10.0.0.0/33' }, /^PFNIC_TRUST_PROXY: "10\.0\.0\.0\/33" is not an address/],
    [{ PFNIC_TRUST_PROXY: '0' }, /^PFNIC_TRUST_PROXY: /],
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
