// Errors as RFC 9457 problem details ("application/problem+json"): type, title, status,
// detail, the request's path as instance, and the errno name when the kernel gave one (code).
// statusCode, error and message repeat status, title and detail for the clients of the API's
// first version, whose errors had only those.
import { STATUS_CODES } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';

import type { ErrorReply } from './schemas.js';

export const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';

/** An errno name (EBUSY, ENODEV, ...), as the kernel and the addon give them. */
const ERRNO = /^E[A-Z0-9]{2,15}$/;

/** An error a route throws to answer with @p status, saying @p detail, with an errno name if there is one. */
export class HttpProblem extends Error {
  override name = 'HttpProblem';
  constructor(readonly statusCode: number, detail: string, readonly code?: string) {
    super(detail);
  }
}

/** The problem document of an answer. */
export function problem(request: FastifyRequest, status: number, detail: string, code?: unknown): ErrorReply {
  const title = STATUS_CODES[status] ?? 'Error';
  return {
    type: 'about:blank', title, status, detail, instance: request.url.split('?')[0]!,
    ...(typeof code === 'string' && ERRNO.test(code) ? { code } : {}),
    statusCode: status, error: title, message: detail,
  };
}

/** Answers with a problem document. */
export function sendProblem(request: FastifyRequest, reply: FastifyReply, status: number, detail: string,
  code?: unknown): FastifyReply {
  return reply.status(status).type(PROBLEM_TYPE).send(problem(request, status, detail, code));
}
