// The server's settings: a JSON file (PFNIC_CONFIG names it) and environment variables,
// which win. The schema below is the one source of their names, types, limits and defaults;
// a bad value stops the server at start with a message naming it and where it came from.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { Type, type Static } from 'typebox';
import { Value } from 'typebox/value';

import { tokenDigest, tokenProblem, type Credential } from './auth.js';

const TokenName = Type.String({ pattern: '^[A-Za-z0-9_.@-]{1,64}$', description: 'who holds the token (the audit log names it)' });
const RoleSetting = Type.Union([Type.Literal('read'), Type.Literal('admin')]);
const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$', description: 'the SHA-256 digest of the token, in hex' });

export const Config = Type.Object(
  {
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
    host: Type.String({ minLength: 1, default: '127.0.0.1' }),
    log_level: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
      { default: 'info' }),
    token_file: Type.Optional(Type.String({ minLength: 1, description: 'a file holding an admin\'s bearer token' })),
    tokens: Type.Array(Type.Object({ name: TokenName, role: RoleSetting, sha256: Sha256 }, { additionalProperties: false }),
      { default: [], description: 'tokens the server accepts, by digest' }),
    token_dir: Type.Optional(Type.String({
      minLength: 1, description: 'a directory of tokens, a file each: its name the token\'s, its line "ROLE SHA256"',
    })),
    anonymous_read: Type.Boolean({ default: true, description: 'whether requests without a token may read (never MR keys)' }),
    tls_cert: Type.Optional(Type.String({ minLength: 1, description: 'a PEM certificate (chain): the server speaks HTTPS' })),
    tls_key: Type.Optional(Type.String({ minLength: 1, description: 'the PEM private key of tls_cert' })),
    trust_proxy: Type.Union([Type.Boolean(), Type.Integer({ minimum: 1, maximum: 16 }), Type.String({ minLength: 1 })], {
      default: false,
      description: 'which proxies\' X-Forwarded-For to believe: true (any), a number of hops, or addresses and CIDRs, comma-separated',
    }),
    block_timeout_s: Type.Number({ minimum: 1, maximum: 3600, default: 20 }),
    metrics_mr_series: Type.Integer({ minimum: 0, maximum: 10_000, default: 50 }),
    rate_limit: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 600, description: 'requests per minute per client' }),
    event_history: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 10_000 }),
    event_streams: Type.Integer({ minimum: 1, maximum: 10_000, default: 100, description: 'event streams open at once at most' }),
  },
  { additionalProperties: false },
);
export type Config = Static<typeof Config>;

/** Each setting's environment variable. */
const ENV: Record<keyof Config, string> = {
  port: 'PORT',
  host: 'HOST',
  log_level: 'LOG_LEVEL',
  token_file: 'PFNIC_API_TOKEN_FILE',
  tokens: '',
  token_dir: 'PFNIC_TOKEN_DIR',
  anonymous_read: 'PFNIC_ANONYMOUS_READ',
  tls_cert: 'PFNIC_TLS_CERT',
  tls_key: 'PFNIC_TLS_KEY',
  trust_proxy: 'PFNIC_TRUST_PROXY',
  block_timeout_s: 'PFNIC_BLOCK_TIMEOUT_S',
  metrics_mr_series: 'PFNIC_METRICS_MR_SERIES',
  rate_limit: 'PFNIC_RATE_LIMIT',
  event_history: 'PFNIC_EVENT_HISTORY',
  event_streams: 'PFNIC_EVENT_STREAMS',
};

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** The settings, with what they name read in: the tokens the server accepts and its TLS identity. */
export type Settings = Config & {
  credentials: Credential[];
  tls: { cert: Buffer; key: Buffer } | undefined;
};

/** An environment variable's text as the type its setting has. */
function fromEnv(prop: unknown, text: string): unknown {
  const types = typeof prop === 'object' && prop !== null && 'anyOf' in prop
    ? (prop as { anyOf: { type?: string }[] }).anyOf.map((p) => p.type)
    : [(prop as { type?: string }).type];
  // only text that is a number (not an address such as 10.0.0.1) becomes one
  if ((types.includes('integer') || types.includes('number')) && /^-?\d+(\.\d+)?(e[+-]?\d+)?$/i.test(text)) return Number(text);
  if (types.includes('boolean') && /^(true|false|1|0|yes|no)$/i.test(text)) return /^(true|1|yes)$/i.test(text);
  return text;
}

/** The settings (defaults, then PFNIC_CONFIG's file, then the environment), checked. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Settings {
  const merged: Record<string, unknown> = {};
  const source: Record<string, string> = {};
  if (env.PFNIC_CONFIG) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(env.PFNIC_CONFIG, 'utf8'));
    } catch (err) {
      throw new ConfigError(`the config file ${env.PFNIC_CONFIG} (PFNIC_CONFIG) cannot be read: ${(err as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new ConfigError(`the config file ${env.PFNIC_CONFIG} must hold a JSON object`);
    }
    for (const [k, v] of Object.entries(parsed)) {
      merged[k] = v;
      source[k] = `${env.PFNIC_CONFIG}: ${k}`;
    }
  }
  for (const [key, name] of Object.entries(ENV)) {
    const v = name === '' ? undefined : env[name];
    if (v === undefined || v === '') continue;
    merged[key] = fromEnv(Config.properties[key as keyof Config], v);
    source[key] = name;
  }
  const config = Value.Default(Config, merged) as Record<string, unknown>;
  const first = Value.Errors(Config, config)[0];
  if (first) {
    const inner = first.instancePath.replace(/^\//, '');
    const key = inner.split('/')[0] || Object.keys(config).find((k) => !(k in Config.properties)) || '';
    const where = source[key] ?? key;
    throw new ConfigError(`${where || 'the config'}: ${key in Config.properties
      ? `${inner !== key ? `${inner.slice(key.length + 1)} ` : ''}${first.message} (${JSON.stringify(config[key])})`
      : `"${key}" is not a setting`}`);
  }
  const settings = config as Config;
  if ((settings.tls_cert === undefined) !== (settings.tls_key === undefined)) {
    throw new ConfigError(`${source.tls_cert ?? source.tls_key}: HTTPS needs both tls_cert and tls_key (PFNIC_TLS_CERT, PFNIC_TLS_KEY)`);
  }
  if (typeof settings.trust_proxy === 'string') checkProxies(settings.trust_proxy, source.trust_proxy ?? 'trust_proxy');
  const tls = settings.tls_cert !== undefined && settings.tls_key !== undefined
    ? { cert: readSetting(settings.tls_cert, source.tls_cert!, 'certificate'), key: readSetting(settings.tls_key, source.tls_key!, 'key') }
    : undefined;
  return { ...settings, credentials: credentials(settings, source, env), tls };
}

/** Every token the settings give, checked: names unique, plain tokens digested at once. */
function credentials(settings: Config, source: Record<string, string>, env: NodeJS.ProcessEnv): Credential[] {
  const out: { credential: Credential; where: string }[] = settings.tokens.map((t, i) => ({
    credential: t, where: `${source.tokens ?? 'tokens'}[${i}]`,
  }));
  if (settings.token_dir !== undefined) out.push(...readTokenDir(settings.token_dir, source.token_dir ?? 'token_dir'));
  const plain = (token: string | undefined, name: string, role: Credential['role'], where: string): void => {
    if (token === undefined || token === '') return;
    const problem = tokenProblem(token);
    if (problem) throw new ConfigError(`the token of ${where} ${problem}`);
    out.push({ credential: { name, role, sha256: tokenDigest(token) }, where });
  };
  if (settings.token_file !== undefined) {
    const where = source.token_file ?? 'token_file';
    if (env.PFNIC_API_TOKEN) throw new ConfigError(`${where} and PFNIC_API_TOKEN both give the admin's token: give one`);
    const token = readSetting(settings.token_file, where, 'token').toString('utf8').split('\n')[0]!.trim();
    if (token === '') throw new ConfigError(`the token file ${settings.token_file} (${where}) is empty`);
    plain(token, 'admin', 'admin', where);
  } else {
    plain(env.PFNIC_API_TOKEN, 'admin', 'admin', 'PFNIC_API_TOKEN');
  }
  plain(env.PFNIC_API_READ_TOKEN, 'reader', 'read', 'PFNIC_API_READ_TOKEN');
  const names = new Map<string, string>();
  const digests = new Map<string, string>();
  for (const { credential: c, where } of out) {
    const sameName = names.get(c.name);
    if (sameName !== undefined) throw new ConfigError(`${where}: the token name "${c.name}" is taken by ${sameName}`);
    const sameToken = digests.get(c.sha256);
    if (sameToken !== undefined) throw new ConfigError(`${where}: the same token as ${sameToken}`);
    names.set(c.name, where);
    digests.set(c.sha256, where);
  }
  return out.map((o) => o.credential);
}

/** A token directory's files: each named after its token, holding "ROLE SHA256". */
function readTokenDir(dir: string, where: string): { credential: Credential; where: string }[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => !n.startsWith('.')).sort();
  } catch (err) {
    throw new ConfigError(`the token directory ${dir} (${where}) cannot be read: ${(err as Error).message}`);
  }
  return names.map((name) => {
    const file = path.join(dir, name);
    const at = `${file} (${where})`;
    let isFile = false;
    try {
      isFile = statSync(file).isFile();
    } catch {
      // a dangling link: said below as not a file
    }
    if (!isFile) throw new ConfigError(`${at} is not a file`);
    const m = /^(read|admin)\s+([0-9a-f]{64})\s*$/.exec(readSetting(file, where, 'token').toString('utf8'));
    if (!m) throw new ConfigError(`${at} must hold one line "read SHA256" or "admin SHA256" (npm run token makes one)`);
    if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(name)) throw new ConfigError(`${at}: a token's name is 1 to 64 of A-Z a-z 0-9 _ . @ -`);
    return { credential: { name, role: m[1] as Credential['role'], sha256: m[2]! }, where: at };
  });
}

function readSetting(file: string, where: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new ConfigError(`the ${what} file ${file} (${where}) cannot be read: ${(err as Error).message}`);
  }
}

/** A trust_proxy list: addresses and CIDRs, comma-separated. */
function checkProxies(text: string, where: string): void {
  for (const part of text.split(',').map((p) => p.trim())) {
    const [addr = '', bits, extra] = part.split('/');
    const family = isIP(addr);
    const max = family === 6 ? 128 : 32;
    if (!family || extra !== undefined || (bits !== undefined && !(/^\d+$/.test(bits) && Number(bits) <= max))) {
      throw new ConfigError(`${where}: "${part}" is not an address or CIDR (trust_proxy takes true, a number of hops, or addresses and CIDRs)`);
    }
  }
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

/** What an operator should hear at start about who can reach the server and what they see. */
export function exposureWarnings(settings: Settings): string[] {
  const out: string[] = [];
  if (!settings.anonymous_read && !settings.credentials.length) {
    out.push('anonymous_read is false and the server has no token: nobody can read (give it tokens, or allow anonymous reads)');
  }
  if (LOOPBACK.test(settings.host)) return out;
  if (!settings.tls) {
    out.push(`listening on ${settings.host} without TLS: tokens and replies cross the network in clear ` +
      '(set tls_cert and tls_key, or keep the server on loopback behind a proxy that has TLS)');
  }
  if (settings.anonymous_read) {
    out.push(`listening on ${settings.host} with anonymous_read: whoever reaches it sees this host's devices, ` +
      'MRs (without their keys) and memory; set anonymous_read to false to ask everyone for a token');
  }
  return out;
}
