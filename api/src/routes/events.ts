import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';

import type { Event, EventHub } from '../../../control/src/index.js';
import { ErrorReply, EventHistory, EventHistoryQuery, EventStreamHeaders, EventStreamQuery } from '../schemas.js';

export interface EventRouteOptions {
  hub: EventHub;
  /** A comment line this often keeps proxies from closing an idle stream (default 15 s). */
  heartbeatMs?: number;
  /** A client that lets this much pile up unread is cut off; it resumes with Last-Event-ID. */
  maxBufferedBytes?: number;
}

const frame = (e: Event): string => `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`;

export const eventRoutes: FastifyPluginAsyncTypebox<EventRouteOptions> = async (app, options) => {
  const { hub } = options;
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const maxBuffered = options.maxBufferedBytes ?? 4 << 20;
  // open streams, ended when the server closes (they would hold its close up for ever)
  const open = new Set<() => void>();
  app.addHook('preClose', async () => { for (const end of [...open]) end(); });

  app.get('/v1/events', {
    schema: {
      summary: 'Server-sent events: every invalidation, migration and memory-block change as it happens. ' +
        'Last-Event-ID (or ?after=) replays what the history still holds after that id; a "gap" event says how many it no longer does',
      tags: ['events'],
      headers: EventStreamHeaders,
      querystring: EventStreamQuery,
      produces: ['text/event-stream'],
      response: { 200: Type.String({ description: 'text/event-stream' }), 400: ErrorReply },
    },
  }, (request, reply) => {
    const header = request.headers['last-event-id'];
    const after = request.query.after ?? (header === undefined ? undefined : Number(header));
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(`retry: 2000\n: pfnic events, channel ${hub.status.state}\n\n`);
    let closed = false;
    const send = (text: string): void => {
      if (closed) return;
      res.write(text);
      if (res.writableLength > maxBuffered) {
        // too slow: better cut off than hold events without bound; it resumes from its last id
        request.log.warn({ buffered: res.writableLength }, 'event stream client too slow, closing it');
        finish();
        res.destroy();
      }
    };
    // subscribed before the replay, so nothing falls between the two
    const queued: Event[] = [];
    let replaying = true;
    const unsubscribe = hub.subscribe((e) => (replaying ? queued.push(e) : send(frame(e))));
    const heartbeat = setInterval(() => send(': ping\n\n'), heartbeatMs);
    const finish = (): void => {
      closed = true;
      clearInterval(heartbeat);
      unsubscribe();
      open.delete(endStream);
    };
    const endStream = (): void => {
      finish();
      res.end();
    };
    open.add(endStream);
    res.on('close', finish);
    if (after !== undefined) {
      const { events, missed } = hub.after(after);
      if (missed > 0) send(`event: gap\ndata: ${JSON.stringify({ after, missed })}\n\n`);
      let last = after;
      for (const e of events) { send(frame(e)); last = e.id; }
      for (const e of queued) if (e.id > last) send(frame(e));
    }
    replaying = false;
  });

  app.get('/v1/events/history', {
    schema: {
      summary: 'The events the history still holds, oldest first, a page at a time: pass the "next" of a page as after',
      tags: ['events'],
      querystring: EventHistoryQuery,
      response: { 200: EventHistory, 400: ErrorReply },
    },
  }, async (request) => {
    const { after = 0, limit = 100, type } = request.query;
    const { events, missed } = hub.after(after, limit, type);
    const { oldest, newest } = hub.range();
    const lastId = events[events.length - 1]?.id;
    return {
      events,
      missed,
      next: lastId !== undefined && newest !== null && lastId < newest ? lastId : null,
      oldest,
      newest,
      channel: hub.status,
      devices: hub.monitorStatus,
      async: hub.asyncStatus(),
    };
  });
};
