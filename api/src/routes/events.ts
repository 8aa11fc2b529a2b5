// The event routes: the live stream (server-sent events, resumed with Last-Event-ID) and
// the history a page at a time. SSE ids are <epoch>-<id>, so an id of an earlier run of
// the server is known for one. Each stream sends from the hub's history at its own pace:
// it waits for the socket to drain rather than buffering, and a client that stops reading
// is cut off.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';

import type { Event, EventHub } from '../../../control/src/index.js';
import { seesSecrets } from '../auth.js';
import { sendProblem } from '../problem.js';
import {
  ErrorReply, EventGap, EventHistory, EventHistoryQuery, EventStreamHeaders, EventStreamQuery,
} from '../schemas.js';

export interface EventRouteOptions {
  hub: EventHub;
  /** A comment line this often keeps proxies from closing an idle stream (default 15 s). */
  heartbeatMs?: number;
  /**
   * A client whose socket will not drain while this much more is published is cut off
   * (default 4 MiB); it resumes with Last-Event-ID.
   */
  maxBufferedBytes?: number;
  /** Streams open at once at most (default 100); one more is answered 503. */
  maxStreams?: number;
}

/** The reconnection delay the stream asks EventSource for, in ms. */
const RECONNECT_MS = 2000;
/** Retry-After of a stream refused because too many are open, in s. */
const STREAMS_FULL_RETRY_S = 10;
/** Events a stream takes from the history at a time while it catches up. */
const BATCH = 256;
/**
 * Frames of the newest events kept ready, so that an event is serialized once for all the
 * streams. Bounded: keeping one per event of the history would double its memory; a client
 * resuming after a short break still finds its frames here.
 */
const FRAME_CACHE_SIZE = 4096;
/** How much of an id the client sent a gap event quotes back. */
const QUOTED_ID_CHARS = 64;

const sseId = (epoch: string, id: number): string => `${epoch}-${id}`;
const frame = (e: Event): string => `id: ${sseId(e.epoch, e.id)}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`;
const gapFrame = (epoch: string, resumeAfter: number, gap: EventGap): string =>
  `id: ${sseId(epoch, resumeAfter)}\nevent: gap\ndata: ${JSON.stringify(gap)}\n\n`;

/** The frames of the newest events, by id (a slot keeps the newest of the ids that share it). */
class FrameCache {
  constructor(private readonly shown: (e: Event) => Event = (e) => e) {}

  private readonly ids = new Float64Array(FRAME_CACHE_SIZE);  // 0: empty (ids start at 1)
  private readonly texts: string[] = new Array<string>(FRAME_CACHE_SIZE).fill('');

  of(e: Event): string {
    const slot = e.id % FRAME_CACHE_SIZE;
    const cached = this.ids[slot]!;
    if (cached === e.id) return this.texts[slot]!;
    const text = frame(this.shown(e));
    if (cached < e.id) {
      this.ids[slot] = e.id;
      this.texts[slot] = text;
    }
    return text;
  }
}

/** An event as callers without the admin role see it: no MR key. */
const withoutKey = (e: Event): Event => (e.lkey === null ? e : { ...e, lkey: null });

/** Where a stream starts, from the id the client gave (if any). */
type StreamStart =
  | { kind: 'now' }
  | { kind: 'after'; id: number }
  /** an id of another run of the server (or none this run has reached): what came after it is unknown */
  | { kind: 'foreign'; text: string }
  | { kind: 'malformed'; text: string };

const ID_FORM = /^(?:([0-9a-z]{1,16})-)?(0|[1-9][0-9]{0,15})$/;

/**
 * Reads @p text, an SSE id (<epoch>-<id>) or, from ?after= only (@p bareIsCurrent), a bare
 * number of the current epoch. A bare number in Last-Event-ID can only come from a server
 * before ids had epochs, so it is another run's.
 */
function streamStart(text: string | undefined, hub: EventHub, bareIsCurrent: boolean): StreamStart {
  if (text === undefined) return { kind: 'now' };
  const m = ID_FORM.exec(text);
  const id = m ? Number(m[2]) : NaN;
  if (!m || !Number.isSafeInteger(id)) return { kind: 'malformed', text };
  const epoch = m[1] ?? (bareIsCurrent ? hub.epoch : undefined);
  // an id this run has not reached yet is not one of its own either (a server of the same epoch)
  return epoch === hub.epoch && id <= (hub.range().newest ?? 0) ? { kind: 'after', id } : { kind: 'foreign', text };
}

export const eventRoutes: FastifyPluginAsyncTypebox<EventRouteOptions> = async (app, options) => {
  const { hub } = options;
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const maxBuffered = options.maxBufferedBytes ?? 4 << 20;
  const maxStreams = options.maxStreams ?? 100;
  const settings = { heartbeatMs, maxBufferedBytes: maxBuffered, maxStreams };
  for (const [name, value] of Object.entries(settings)) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`eventRoutes: ${name} must be a whole number from 1, not ${String(value)}`);
    }
  }
  // one frame per event for admins, one for everyone else, who get no MR key
  const adminFrames = new FrameCache();
  const readerFrames = new FrameCache(withoutKey);
  // open streams, ended when the server closes (they would hold its close up for ever)
  const open = new Set<() => void>();
  app.addHook('preClose', async () => { for (const end of [...open]) end(); });

  app.get('/v1/events', {
    schema: {
      operationId: 'streamEvents',
      summary: 'Server-sent events: every invalidation, migration and memory-block change as it happens. ' +
        'Last-Event-ID (else ?after=) replays what the history still holds after that id; a "gap" event says when ' +
        'some may be missing: trimmed from the history (and how many), of another run of the server, or not understood',
      tags: ['events'],
      headers: EventStreamHeaders,
      querystring: EventStreamQuery,
      produces: ['text/event-stream'],
      response: { 200: Type.String({ description: 'text/event-stream' }), 400: ErrorReply, 503: ErrorReply },
    },
  }, (request, reply) => {
    if (open.size >= maxStreams) {
      reply.header('retry-after', String(STREAMS_FULL_RETRY_S));
      void sendProblem(request, reply, 503,
        `${open.size} event streams are open, as many as this server serves: try again in ${STREAMS_FULL_RETRY_S} s`);
      return;
    }
    // Last-Event-ID wins: a browser that reconnects keeps the URL it began with, ?after= and all
    const header = request.headers['last-event-id'];
    const start = header !== undefined && header !== ''
      ? streamStart(header, hub, false)
      : streamStart(request.query.after, hub, true);

    reply.hijack();
    const frames = seesSecrets(request) ? adminFrames : readerFrames;
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    let opening = `retry: ${RECONNECT_MS}\n: pfnic events, channel ${hub.status.state}\n\n`;
    const { oldest, newest } = hub.range();
    /** The id of this epoch the client has everything up to. */
    let sent: number;
    switch (start.kind) {
      case 'now':
        sent = newest ?? 0;
        break;
      case 'after':
        sent = start.id;
        break;
      case 'foreign':
        // What came after that id died with the run that numbered it; every event of this
        // run is one the client cannot have had, so all the history holds is sent, not
        // only what comes from now (which would drop what happened since the restart).
        sent = (oldest ?? 1) - 1;
        opening += gapFrame(hub.epoch, sent, { after: start.text.slice(0, QUOTED_ID_CHARS), missed: null, reason: 'epoch' });
        break;
      case 'malformed':
        sent = newest ?? 0;
        opening += gapFrame(hub.epoch, sent, { after: start.text.slice(0, QUOTED_ID_CHARS), missed: null, reason: 'malformed' });
        break;
    }

    let closed = false;
    /** The socket said it is full: nothing more is written until it drains. */
    let waiting = false;
    /** What was published while waiting: the client is this far behind, beyond its socket. */
    let behindBytes = 0;
    /** When the socket last said it is full (performance.now()). */
    let waitingSince = 0;
    const write = (text: string): void => {
      if (!closed && !res.write(text) && !waiting) {
        waiting = true;
        waitingSince = performance.now();
      }
    };
    // Sends what the client has not had, from the history, until the socket is full or
    // the client has everything; a client whose history was trimmed meanwhile hears of it.
    const pump = (): void => {
      while (!closed && !waiting) {
        const { events, missed } = hub.after(sent, BATCH);
        if (missed > 0) {
          write(gapFrame(hub.epoch, sent + missed, { after: sent, missed, reason: 'trimmed' }));
          sent += missed;
        }
        for (const e of events) {
          if (waiting) break;
          write(frames.of(e));
          sent = e.id;
        }
        if (events.length < BATCH) return;
      }
    };
    const unsubscribe = hub.subscribe((e) => {
      if (!waiting) { pump(); return; }
      behindBytes += frames.of(e).length;
      if (res.writableLength + behindBytes > maxBuffered) {
        // stopped reading: cut off rather than held; it resumes from its last id
        request.log.warn({ buffered: res.writableLength, behind: behindBytes }, 'event stream client too slow, closing it');
        finish();
        res.destroy();
      }
    });
    // a client whose socket stays full for two heartbeats has stopped reading: on a quiet host
    // no event would come to find it out, and it would hold its place among the streams
    const heartbeat = setInterval(() => {
      if (!waiting) {
        write(': ping\n\n');
      } else if (performance.now() - waitingSince > 2 * heartbeatMs) {
        request.log.warn({ buffered: res.writableLength }, 'event stream client stopped reading, closing it');
        finish();
        res.destroy();
      }
    }, heartbeatMs);
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
    res.on('drain', () => {
      waiting = false;
      behindBytes = 0;
      pump();
    });
    write(opening);
    pump();
  });

  app.get('/v1/events/history', {
    schema: {
      operationId: 'getEventHistory',
      summary: 'The events the history still holds, oldest first, a page at a time: pass the "next" of a page as after. ' +
        'Ids are numbers within "epoch": a new epoch means the server restarted and numbered from 1 again',
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
      epoch: hub.epoch,
      events: seesSecrets(request) ? events : events.map(withoutKey),
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
