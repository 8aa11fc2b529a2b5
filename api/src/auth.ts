// Bearer-token authorization for the routes that change the host (taking memory offline).
// Without a token configured those routes are off: a control plane started with no
// thought of security cannot be used to take a machine's memory away.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';

const digest = (text: string): Buffer => createHash('sha256').update(text).digest();

/** The shortest token accepted: guessing one must be hopeless. */
export const MIN_TOKEN_LENGTH = 16;

/** A preHandler that lets a request through only with "Authorization: Bearer <token>". */
export function requireToken(token: string | undefined) {
  const want = token === undefined ? undefined : digest(token);
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (want === undefined) {
      return reply.forbidden('this route changes the host and is off: start the server with ' +
        'PFNIC_API_TOKEN (or PFNIC_API_TOKEN_FILE) set to turn it on');
    }
    const m = /^Bearer ([\x21-\x7e]+)$/.exec(request.headers.authorization ?? '');
    // compared as digests, in constant time: how much matched says nothing
    if (!m || !timingSafeEqual(digest(m[1]!), want)) {
      reply.header('www-authenticate', 'Bearer realm="pfnic"');
      return reply.unauthorized(m ? 'the bearer token is not the one this server was given'
        : 'this route needs "Authorization: Bearer <token>"');
    }
  };
}
