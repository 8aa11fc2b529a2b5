// The API's own schemas (requests, errors, health). Device shapes come from the control
// plane's model, which is their single source.
import { Type, type Static } from 'typebox';

import { MrKind } from '../../control/src/schema.js';

export { Device, MemoryBlock, Mr } from '../../control/src/schema.js';

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
