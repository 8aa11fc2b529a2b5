// The API's own schemas (requests, errors, health). Device shapes come from the control
// plane's model, which is their single source.
import { Type, type Static } from 'typebox';

import { Event, EventType, MrKind } from '../../control/src/schema.js';

export { Device, Event, MemoryBlock, Mr, UmmunotifyState } from '../../control/src/schema.js';

/** Every error reply: an RFC 9457 problem document, with the fields of the API's first version. */
export const ErrorReply = Type.Object(
  {
    type: Type.String({ description: 'what kind of problem: about:blank, the HTTP status says it' }),
    title: Type.String({ description: 'the HTTP status\'s name' }),
    status: Type.Integer({ description: 'the HTTP status' }),
    detail: Type.String({ description: 'what went wrong, in a sentence' }),
    instance: Type.Optional(Type.String({ description: 'the path of the request' })),
    code: Type.Optional(Type.String({ description: 'the errno name the kernel gave (EBUSY, EPERM, ENODEV, ...)' })),
    statusCode: Type.Integer({ description: 'status, as the API\'s first version named it' }),
    error: Type.String({ description: 'title, as the API\'s first version named it' }),
    message: Type.String({ description: 'detail, as the API\'s first version named it' }),
  },
  { title: 'Problem' },
);
export type ErrorReply = Static<typeof ErrorReply>;

/** RDMA device names as the kernel forms them (mlx5_0, rxe0, rocep1s0f0, pfnic0). */
export const DeviceName = Type.String({
  pattern: '^[A-Za-z0-9_.-]{1,63}$',
  description: 'an RDMA device name: 1 to 63 letters, digits, "_", "." or "-"',
});

export const DeviceParams = Type.Object({ name: DeviceName });
export type DeviceParams = Static<typeof DeviceParams>;

const Mrn = Type.Integer({ minimum: 0, maximum: 0xffffffff, description: 'an MR number' });

export const MrParams = Type.Object({ device: DeviceName, mrn: Mrn });
export type MrParams = Static<typeof MrParams>;

export const MrQuery = Type.Object(
  {
    device: Type.Optional(DeviceName),
    pid: Type.Optional(Type.Integer({ minimum: 0, maximum: 0x7fffffff, description: 'a process id' })),
    kind: Type.Optional(MrKind),
    state: Type.Optional(Type.String({ pattern: '^[a-z_]{1,32}$', description: 'the driver\'s state of the MR (pfnic: active, suspended, faulting, ...)' })),
    sort: Type.Optional(Type.String({
      pattern: '^-?[a-z_]{1,40}$',
      description: 'a field (device, mrn, kind, state, length, pid, owner, pdn, mapped_pages, suspended_pages, translation_tables) ' +
        'or a counter (page_faults, page_invalidations, ...); "-" first for the largest first. Default: by device and mrn',
    })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, description: 'MRs per page; without it, every MR' })),
    cursor: Type.Optional(Type.String({ maxLength: 1024, description: 'where the page starts: from the "next" link of the page before' })),
    fields: Type.Optional(Type.String({
      pattern: '^[a-z_]+(,[a-z_]+)*$', description: 'comma-separated fields to give (device and mrn always come)',
    })),
  },
  { additionalProperties: false },
);
export type MrQuery = Static<typeof MrQuery>;

export const MrSummary = Type.Object(
  {
    mrs: Type.Integer({ description: 'MRs the server holds' }),
    age_s: Type.Number({ description: 'seconds since the least recently read device\'s MRs were read' }),
    totals: Type.Array(Type.Object({
      device: Type.String(),
      kind: MrKind,
      mrs: Type.Integer(),
      bytes: Type.Number({ description: 'registered (implicit MRs, which span all memory, left out)' }),
      mapped_pages: Type.Integer(),
      suspended_pages: Type.Integer(),
      counters: Type.Record(Type.String(), Type.Number(), {
        description: 'each per-MR counter summed, with what MRs that went had counted: it only grows',
      }),
    })),
  },
  { title: 'MrSummary' },
);
export type MrSummary = Static<typeof MrSummary>;

export const Health = Type.Object(
  {
    status: Type.Literal('ok'),
    version: Type.String(),
    uptime_s: Type.Number({ description: 'seconds since the server started' }),
  },
  { title: 'Health' },
);
export type Health = Static<typeof Health>;

const SourceState = Type.Object({
  state: Type.String(),
  message: Type.Union([Type.String(), Type.Null()], { description: 'why it is not as it should be' }),
});

export const Readiness = Type.Object(
  {
    status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]),
    addon: Type.Object({
      state: Type.Union([Type.Literal('loaded'), Type.Literal('missing')], { description: 'the native addon, through which the server reads the kernel' }),
      message: Type.Union([Type.String(), Type.Null()]),
    }),
    devices: SourceState,
    event_channel: SourceState,
    device_notifications: SourceState,
    mrs: Type.Array(Type.Object({
      device: Type.String(),
      mrs: Type.Integer({ description: 'MRs the server holds for it' }),
      refreshed_at: Type.Union([Type.Number(), Type.Null()], { description: 'when its MRs were last read (ms since the epoch)' }),
      dump_ms: Type.Union([Type.Number(), Type.Null()], { description: 'how long reading them took' }),
      error: Type.Union([Type.String(), Type.Null()], { description: 'why the last read failed' }),
    })),
  },
  { title: 'Readiness' },
);

export const BlockParams = Type.Object({
  block: Type.Integer({ minimum: 0, maximum: 0x7fffffff, description: 'a memory block number' }),
});
export type BlockParams = Static<typeof BlockParams>;

export const OnlineQuery = Type.Object(
  {
    zone: Type.Optional(Type.Union([Type.Literal('movable'), Type.Literal('kernel')], {
      description: 'movable: its pages can move out again (hot-unplug); kernel: a kernel zone',
    })),
  },
  { additionalProperties: false },
);
export type OnlineQuery = Static<typeof OnlineQuery>;

const EventId = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'an event id' });

// The stream takes any text as the id to resume after: a browser's EventSource gives up for
// good on any answer but 200, so an id it cannot use starts the stream from now, with a gap
// event saying so, rather than a 400.
export const EventStreamHeaders = Type.Object({
  'last-event-id': Type.Optional(Type.String({
    description: 'resume after this SSE id (<epoch>-<id>); sent by EventSource when it reconnects, and preferred to ?after=',
  })),
});

export const EventStreamQuery = Type.Object(
  {
    after: Type.Optional(Type.String({
      description: 'resume after this id: a number of the current epoch (as the history gives them) or an SSE id <epoch>-<id>',
    })),
  },
  { additionalProperties: false },
);
export type EventStreamQuery = Static<typeof EventStreamQuery>;

/** The data of the stream's "gap" event: events the client may have missed. */
export const EventGap = Type.Object(
  {
    after: Type.Union([Type.Integer(), Type.String()], {
      description: 'trimmed: the id (of this epoch) the stream resumed after; epoch, malformed: the id as the client sent it',
    }),
    missed: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], {
      description: 'how many events the client missed; null when that is unknown',
    }),
    reason: Type.Union([Type.Literal('trimmed'), Type.Literal('epoch'), Type.Literal('malformed')], {
      description: 'trimmed: the history no longer holds them; epoch: the id is of another run of the server ' +
        '(whose events after it are gone), so this run\'s are all sent; malformed: the id was not understood, ' +
        'so the stream starts from now',
    }),
  },
  { title: 'EventGap' },
);
export type EventGap = Static<typeof EventGap>;

export const EventHistoryQuery = Type.Object(
  {
    after: Type.Optional(EventId),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'events per page (100)' })),
    type: Type.Optional(EventType),
  },
  { additionalProperties: false },
);
export type EventHistoryQuery = Static<typeof EventHistoryQuery>;

export const EventHistory = Type.Object(
  {
    epoch: Type.String({ description: 'the epoch of this run of the server: ids are numbers within it, "after" is one' }),
    events: Type.Array(Event),
    missed: Type.Integer({ description: 'events after "after" the history no longer holds' }),
    next: Type.Union([Type.Integer(), Type.Null()], { description: 'the "after" of the next page; null at the end' }),
    oldest: Type.Union([Type.Integer(), Type.Null()]),
    newest: Type.Union([Type.Integer(), Type.Null()]),
    channel: Type.Object({
      state: Type.String({ description: 'opening, open, absent (pfnic is not loaded), error or stopped' }),
      message: Type.Union([Type.String(), Type.Null()]),
    }),
    devices: Type.Object({
      state: Type.String({ description: 'rdma netlink\'s device notifications: opening, open, unsupported (before Linux 6.12), error or stopped' }),
      message: Type.Union([Type.String(), Type.Null()]),
    }),
    async: Type.Array(Type.Object({
      device: Type.String(),
      state: Type.String({ description: 'how its verbs async events are read: opening, open, not_watched (its driver makes removal wait for open contexts), ended (DEVICE_FATAL) or error' }),
      message: Type.Union([Type.String(), Type.Null()]),
    })),
  },
  { title: 'EventHistory' },
);
