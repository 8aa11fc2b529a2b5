import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';

import {
  BlockNotFoundError, BlockStateError, getBlock, listBlocks, setBlockState, type BlockAction,
} from '../../../control/src/index.js';
import { sendProblem } from '../problem.js';
import { BlockParams, ErrorReply, MemoryBlock, OnlineQuery } from '../schemas.js';

export interface MemoryRouteOptions {
  /** How long a block may take to change state before the kernel is told to stop. */
  timeoutMs: number;
}

/** Changes a block's state for a request, audited: who asked, what, what came of it. */
async function changeBlock(request: FastifyRequest, reply: FastifyReply, block: number, what: BlockAction,
  timeoutMs: number) {
  const audit = { action: what, block, by: request.caller.name, from: request.ip };
  try {
    const changed = await setBlockState(block, what, timeoutMs);
    request.log.info({ audit: { ...audit, outcome: 'done', state: changed.state } }, 'memory block changed');
    return changed;
  } catch (err) {
    const code = err instanceof BlockStateError ? err.code : err instanceof BlockNotFoundError ? 'ENOENT' : 'EIO';
    request.log.warn({ audit: { ...audit, outcome: 'refused', code } }, 'memory block not changed');
    if (err instanceof BlockNotFoundError) return sendProblem(request, reply, 404, err.message, code);
    if (err instanceof BlockStateError) {
      if (code === 'EPERM' || code === 'EACCES') return sendProblem(request, reply, 403, err.message, code);
      if (code === 'EAGAIN') {
        // the queue is full: there is room at the latest when the change in progress ends
        reply.header('retry-after', String(Math.max(1, Math.ceil(timeoutMs / 1000))));
        return sendProblem(request, reply, 503, err.message, code);
      }
      // the kernel's errno names why (EBUSY: a page would not move, EALREADY: one at a time)
      return sendProblem(request, reply, 409, err.message, code);
    }
    throw err;
  }
}

export const memoryRoutes: FastifyPluginAsyncTypebox<MemoryRouteOptions> = async (app, options) => {
  app.get('/v1/memory/blocks', {
    schema: {
      operationId: 'listMemoryBlocks',
      summary: 'The memory blocks of this host: state, zone, NUMA node, physical range',
      tags: ['memory'],
      response: { 200: Type.Array(MemoryBlock) },
    },
  }, async () => listBlocks());

  app.get('/v1/memory/blocks/:block', {
    schema: {
      operationId: 'getMemoryBlock',
      summary: 'One memory block',
      tags: ['memory'],
      params: BlockParams,
      response: { 200: MemoryBlock, 400: ErrorReply, 404: ErrorReply },
    },
  }, async (request, reply) => {
    try {
      return await getBlock(request.params.block);
    } catch (err) {
      if (err instanceof BlockNotFoundError) return reply.notFound(err.message);
      throw err;
    }
  });

  app.post('/v1/memory/blocks/:block/offline', {
    schema: {
      operationId: 'offlineMemoryBlock',
      summary: 'Takes a memory block offline (its pages are migrated out first; ODP MRs in it are updated, pinned ones make it fail). Needs an admin token; audited',
      tags: ['memory'],
      params: BlockParams,
      security: [{ bearer: [] }],
      response: { 200: MemoryBlock, 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 404: ErrorReply, 409: ErrorReply, 503: ErrorReply },
    },
    config: { access: 'admin', rateLimit: { max: 30, timeWindow: '1 minute' } },
  }, async (request, reply) => changeBlock(request, reply, request.params.block, 'offline', options.timeoutMs));

  app.post('/v1/memory/blocks/:block/online', {
    schema: {
      operationId: 'onlineMemoryBlock',
      summary: 'Brings a memory block online, into the Movable or a kernel zone if asked. Needs an admin token; audited',
      tags: ['memory'],
      params: BlockParams,
      querystring: OnlineQuery,
      security: [{ bearer: [] }],
      response: { 200: MemoryBlock, 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 404: ErrorReply, 409: ErrorReply, 503: ErrorReply },
    },
    config: { access: 'admin', rateLimit: { max: 30, timeWindow: '1 minute' } },
  }, async (request, reply) => {
    const zone = request.query.zone;
    const what = zone === 'movable' ? 'online_movable' : zone === 'kernel' ? 'online_kernel' : 'online';
    return changeBlock(request, reply, request.params.block, what, options.timeoutMs);
  });
};
