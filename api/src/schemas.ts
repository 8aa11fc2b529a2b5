// The API's own schemas (requests, errors, health). Device shapes come from the control
// plane's model, which is their single source.
import { Type, type Static } from 'typebox';

import { Event, EventType, MrKind } from '../../control/src/schema.js';

export { Device, Event, MemoryBlock, Mr } from '../../control/src/schema.js';

/** Every error reply: the HTTP status, its name and a sentence saying what went wrong. */
export const ErrorReply = Type.Object(
  {
    statusCode: Type.Integer(),
    error: Type.String(),
    message: Type.String(),
  },
  { title: 'Error' },
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
  },
  { additionalProperties: false },
);
export type MrQuery = Static<typeof MrQuery>;

export const Health = Type.Object(
  {
    status: Type.Literal('ok'),
    version: Type.String(),
    uptime_s: Type.Number({ description: 'seconds since the server started' }),
  },
  { title: 'Health' },
);
export type Health = Static<typeof Health>;

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

export const EventStreamHeaders = Type.Object({
  'last-event-id': Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$', description: 'resume after this id' })),
});

export const EventStreamQuery = Type.Object(
  { after: Type.Optional(EventId) },
  { additionalProperties: false },
);
export type EventStreamQuery = Static<typeof EventStreamQuery>;

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
