// The server's settings: a JSON file (PFNIC_CONFIG names it) and environment variables,
// which win. The schema below is the one source of their names, types, limits and defaults;
// a bad value stops the server at start with a message naming it and where it came from.
import { readFileSync } from 'node:fs';
import { Type, type Static } from 'typebox';
import { Value } from 'typebox/value';

import { MIN_TOKEN_LENGTH } from './auth.js';

export const Config = Type.Object(
  {
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
    host: Type.String({ minLength: 1, default: '127.0.0.1' }),
    log_level: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
      { default: 'info' }),
    token_file: Type.Optional(Type.String({ minLength: 1, description: 'a file holding the bearer token' })),
    block_timeout_s: Type.Number({ minimum: 1, maximum: 3600, default: 20 }),
    metrics_mr_series: Type.Integer({ minimum: 0, maximum: 10_000, default: 50 }),
    rate_limit: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 600, description: 'requests per minute per client' }),
    event_history: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 10_000 }),
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
  block_timeout_s: 'PFNIC_BLOCK_TIMEOUT_S',
  metrics_mr_series: 'PFNIC_METRICS_MR_SERIES',
  rate_limit: 'PFNIC_RATE_LIMIT',
  event_history: 'PFNIC_EVENT_HISTORY',
};

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** The settings and the bearer token (PFNIC_API_TOKEN, or the token file's first line). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config & { token: string | undefined } {
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
    const v = env[name];
    if (v === undefined || v === '') continue;
    const prop = Config.properties[key as keyof Config];
    merged[key] = 'type' in prop && (prop.type === 'integer' || prop.type === 'number') && /^-?[0-9.e+]+$/.test(v) ? Number(v) : v;
    source[key] = name;
  }
  const config = Value.Default(Config, merged) as Record<string, unknown>;
  const first = Value.Errors(Config, config)[0];
  if (first) {
    const key = first.instancePath.replace(/^\//, '') || Object.keys(config).find((k) => !(k in Config.properties)) || '';
    const where = source[key] ?? key;
    throw new ConfigError(`${where || 'the config'}: ${key in Config.properties ? first.message : `"${key}" is not a setting`}` +
      (key in Config.properties ? ` (${JSON.stringify(config[key])})` : ''));
  }
  const settings = config as Config;
  const token = settings.token_file ? readToken(settings.token_file, source.token_file ?? 'token_file') : env.PFNIC_API_TOKEN;
  if (token !== undefined && token !== '' && (token.length < MIN_TOKEN_LENGTH || !/^[\x21-\x7e]+$/.test(token))) {
    throw new ConfigError(`the API token (${settings.token_file ? source.token_file : 'PFNIC_API_TOKEN'}) must be at least ` +
      `${MIN_TOKEN_LENGTH} printable characters without spaces`);
  }
  return { ...settings, token: token === '' ? undefined : token };
}

function readToken(file: string, where: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n')[0]!.trim();
  } catch (err) {
    throw new ConfigError(`the token file ${file} (${where}) cannot be read: ${(err as Error).message}`);
  }
}
