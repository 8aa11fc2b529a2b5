// Who is asking, and what they may do. Callers are known by bearer tokens, each with a name
// and a role: "read" sees what the host's RDMA devices, MRs and memory are doing; "admin"
// also sees MR keys (an rkey with its address is what a peer needs to read or write that
// memory) and may change the host (take memory offline). A request without a token is
// anonymous: it may read, without secrets, unless the settings turn that off. Tokens are kept
// as SHA-256 digests only: a token is long and random, so its digest is enough to check it
// and useless to whoever reads the settings.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

export type Role = 'read' | 'admin';

/** What a route needs: nothing (health, the dashboard's files), a reader, or an admin. */
export type Access = 'public' | 'read' | 'admin';

/** The caller of a request: a token's name and role, or anonymous. */
export interface Caller {
  name: string;
  role: Role | 'anonymous';
}

/** A token the server accepts: its name (for the audit log), role and SHA-256 digest (hex). */
export interface Credential {
  name: string;
  role: Role;
  sha256: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller;
  }
  interface FastifyContextConfig {
    /** Who may call the route; without it, a reader. */
    access?: Access;
  }
}

/** The shortest token accepted: guessing one must be hopeless. */
export const MIN_TOKEN_LENGTH = 16;

export const ANONYMOUS: Caller = Object.freeze({ name: 'anonymous', role: 'anonymous' });

const digest = (token: string): Buffer => createHash('sha256').update(token).digest();

/** The digest a Credential keeps of @p token. */
export const tokenDigest = (token: string): string => digest(token).toString('hex');

/** A fresh token: 32 random bytes, URL-safe, with a prefix that says what it is when found in a file. */
export const newToken = (): string => `pfnic_${randomBytes(32).toString('base64url')}`;

/** Why a token cannot be used, or null when it can. */
export function tokenProblem(token: string): string | null {
  if (token.length < MIN_TOKEN_LENGTH) return `must be at least ${MIN_TOKEN_LENGTH} characters`;
  if (!/^[\x21-\x7e]+$/.test(token)) return 'must be printable ASCII without spaces';
  return null;
}

/** The tokens a server accepts. */
export class Tokens {
  private readonly entries: { name: string; role: Role; digest: Buffer }[];

  constructor(credentials: readonly Credential[]) {
    this.entries = credentials.map((c) => ({ name: c.name, role: c.role, digest: Buffer.from(c.sha256, 'hex') }));
  }

  /** Whether some token has @p role. */
  has(role: Role): boolean {
    return this.entries.some((e) => e.role === role);
  }

  /**
   * The caller a token names, or undefined. Every entry is compared, in constant time, and
   * the search does not stop at a match: how long it takes says nothing of which token, or
   * how much of one, matched.
   */
  identify(token: string): Caller | undefined {
    const presented = digest(token);
    let found: Caller | undefined;
    for (const e of this.entries) {
      if (timingSafeEqual(presented, e.digest) && found === undefined) found = { name: e.name, role: e.role };
    }
    return found;
  }
}

function challenge(reply: FastifyReply, error?: 'invalid_token' | 'insufficient_scope'): void {
  reply.header('www-authenticate', `Bearer realm="pfnic"${error ? `, error="${error}"` : ''}`);
}

export interface AuthOptions {
  tokens: Tokens;
  /** Whether a request without a token may read (without secrets). */
  anonymousRead: boolean;
}

/**
 * An onRequest hook: names the caller (401 for a token the server does not know) and lets
 * the request on only if the route's access allows the caller.
 */
export function authenticate(options: AuthOptions) {
  const { tokens, anonymousRead } = options;
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const need = request.routeOptions.config.access ?? 'read';
    request.caller = ANONYMOUS;
    if (need === 'public') return;
    const header = request.headers.authorization;
    if (header !== undefined) {
      // the scheme's name is case-insensitive (RFC 9110); the token is not
      const m = /^bearer ([\x21-\x7e]+)$/i.exec(header);
      const who = m ? tokens.identify(m[1]!) : undefined;
      if (!who) {
        challenge(reply, m ? 'invalid_token' : undefined);
        return reply.unauthorized(m ? 'the bearer token is not one this server was given'
          : 'the Authorization header must be "Bearer <token>"');
      }
      request.caller = who;
    }
    const caller = request.caller;
    if (need === 'read' && (caller.role !== 'anonymous' || anonymousRead)) return;
    if (need === 'admin' && caller.role === 'admin') return;
    if (need === 'admin' && !tokens.has('admin')) {
      return reply.forbidden('this route changes the host and is off: give the server an admin token ' +
        '(PFNIC_API_TOKEN, token_file, or tokens or token_dir in its settings) to turn it on');
    }
    if (caller.role === 'anonymous') {
      challenge(reply);
      return reply.unauthorized(need === 'admin' ? 'this route needs "Authorization: Bearer <token>" of an admin'
        : 'this server reads only for callers with a token: send "Authorization: Bearer <token>"');
    }
    challenge(reply, 'insufficient_scope');
    return reply.forbidden(`the token "${caller.name}" may read; this route needs an admin's`);
  };
}

/**
 * Whether the request's caller may see MR keys and other secrets: an admin's. A route served
 * without authenticate() in front (a test's bare server) has no caller, and sees none.
 */
export const seesSecrets = (request: FastifyRequest): boolean => (request.caller as Caller | null)?.role === 'admin';
