// The MR routes, answered from the model (control/src/model.ts): a request costs the kernel
// nothing however many clients ask, but one MR by number, which is read from the kernel
// alone. "Cache-Control: no-cache" asks for MRs no older than a second.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';

import { DeviceNotFoundError, MrNotFoundError, type HostModel, type Mr as MrModel } from '../../../control/src/index.js';
import { seesSecrets } from '../auth.js';
import { MrPage, MrQueryError, MrSorter, checkSort, mrPage } from '../mr-query.js';
import { ErrorReply, Mr, MrParams, MrQuery, MrSummary } from '../schemas.js';
import { modelFor } from './devices.js';

/**
 * An MR as a caller without the admin role sees it: no keys, no address. An rkey with the
 * address it covers is all a peer on the network needs to read or write the memory.
 */
export const withoutSecrets = (mr: MrModel): MrModel => ({ ...mr, lkey: null, rkey: null, iova: null });

export interface MrRouteOptions {
  model: HostModel;
}

// ETags name the server's run too: a version number starts again when the server does
const run = Date.now().toString(36);

/** Sets the validators of a reply from the model; true when the client's copy is current. */
function notModified(request: FastifyRequest, reply: FastifyReply, model: HostModel): boolean {
  const etag = `W/"${run}-${model.version}-${seesSecrets(request) ? 'a' : 'r'}"`;
  reply.header('etag', etag);
  // what a reply holds depends on who asks: no cache may hand an admin's to anyone else
  reply.header('cache-control', 'private, no-cache');
  reply.header('vary', 'authorization');
  reply.header('x-data-age', String(Math.max(0, Math.floor(model.age() / 1000))));
  const match = request.headers['if-none-match'];
  return match !== undefined && match.split(',').some((m) => m.trim() === etag || m.trim() === '*');
}

/**
 * Sends JSON written already (the serializer above passes text through): the reply's type
 * is the schema's, which the text was made from.
 */
const sendText = (reply: FastifyReply, text: string): FastifyReply => reply.send(text as never);

export const mrRoutes: FastifyPluginAsyncTypebox<MrRouteOptions> = async (app, options) => {
  const { model } = options;
  const sorter = new MrSorter();
  // the whole list, written once per version of the model and role
  let whole: { version: number; admin?: string; reader?: string } = { version: -1 };

  app.get('/v1/mrs', {
    schema: {
      operationId: 'listMrs',
      summary: 'The memory regions of every RDMA device: kind (pinned or ODP), size, mapped pages, state, counters, owner. ' +
        'Filtered, sorted and paged by the server: with limit, the Link header\'s "next" gives the next page; X-Total-Count ' +
        'says how many match',
      tags: ['mrs'],
      querystring: MrQuery,
      response: { 200: Type.Array(Type.Partial(Mr)), 304: Type.Null(), 400: ErrorReply, 503: ErrorReply },
    },
    // Replies are written from the model, which has its shape already (checked at the addon's
    // boundary): the generated serializer tried every alternative of each nullable field, eight
    // times as slow over 10,000 MRs.
    serializerCompiler: () => (data) => (typeof data === 'string' ? data : JSON.stringify(data)),
  }, async (request, reply) => {
    await modelFor(request, model, true);
    if (notModified(request, reply, model)) return reply.code(304).send(undefined as never);  // no body, no serializer
    const admin = seesSecrets(request);
    const query = request.query;
    const mrs = model.mrs();
    reply.type('application/json; charset=utf-8');
    if (Object.keys(query).length === 0) {
      if (whole.version !== model.version) whole = { version: model.version };
      const text = admin ? (whole.admin ??= JSON.stringify(mrs)) : (whole.reader ??= JSON.stringify(mrs.map(withoutSecrets)));
      reply.header('x-total-count', String(mrs.length));
      return sendText(reply, text);
    }
    let page: MrPage;
    try {
      const sort = query.sort ?? 'device';
      checkSort(sort, mrs);
      page = mrPage(sorter.sorted(mrs, model.version, sort), query, admin ? undefined : withoutSecrets);
    } catch (err) {
      if (err instanceof MrQueryError) return reply.badRequest(`invalid querystring: ${err.message}`);
      throw err;
    }
    reply.header('x-total-count', String(page.total));
    if (page.next !== null) {
      const next = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]));
      next.set('cursor', page.next);
      reply.header('link', `</v1/mrs?${next.toString()}>; rel="next"`);
    }
    return sendText(reply, JSON.stringify(page.items));
  });

  app.get('/v1/mrs/summary', {
    schema: {
      operationId: 'getMrSummary',
      summary: 'The MRs summed by device and kind: how many, bytes, pages mapped and suspended, and counters that only grow ' +
        '(a dashboard\'s rates come from them)',
      tags: ['mrs'],
      response: { 200: MrSummary, 304: Type.Null(), 503: ErrorReply },
    },
  }, async (request, reply) => {
    await modelFor(request, model, true);
    if (notModified(request, reply, model)) return reply.code(304).send(undefined as never);  // no body, no serializer
    return { mrs: model.mrs().length, age_s: model.age() / 1000, totals: [...model.totals()] };
  });

  app.get('/v1/mrs/:device/:mrn', {
    schema: {
      operationId: 'getMr',
      summary: 'One memory region, by device and MR number (the mrn of `rdma resource show mr`), read from the kernel now',
      tags: ['mrs'],
      params: MrParams,
      response: { 200: Mr, 400: ErrorReply, 404: ErrorReply, 503: ErrorReply },
    },
  }, async (request, reply) => {
    const { device, mrn } = request.params;
    let mr: MrModel | null;
    try {
      mr = await model.readMr(device, mrn);
    } catch (err) {
      // no such device: no such MR either
      if (err instanceof MrNotFoundError || err instanceof DeviceNotFoundError) mr = null;
      else throw err;
    }
    if (mr === null) return reply.notFound(new MrNotFoundError(device, mrn).message);
    return seesSecrets(request) ? mr : withoutSecrets(mr);
  });
};
