// The device routes, answered from the model (control/src/model.ts), which reads the device
// list again on rdma netlink's notifications and every 30 s. A device the model does not hold
// yet is looked for in the kernel before the answer is 404.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';

import { DeviceNotFoundError, getDevice, type HostModel } from '../../../control/src/index.js';
import { HttpProblem } from '../problem.js';
import { Device, DeviceParams, ErrorReply } from '../schemas.js';

/** Whether the client asked for data fresher than the model keeps ("Cache-Control: no-cache"). */
export const wantsFresh = (request: FastifyRequest): boolean =>
  /\b(no-cache|max-age=0)\b/.test(String(request.headers['cache-control'] ?? ''));

/**
 * Waits for the model's first read of the devices (with @p mrs, of their MRs too; for a
 * client that wants fresh data, a read no older than a second); a 503 when the device list
 * could never be read.
 */
export async function modelFor(request: FastifyRequest, model: HostModel, mrs = false): Promise<void> {
  if (mrs) await (wantsFresh(request) ? model.refresh(1000) : model.mrsReady());
  else await (wantsFresh(request) ? model.refreshDevices(1000) : model.ready());
  if (!model.started()) {
    throw new HttpProblem(503, `this host's RDMA devices cannot be read: ${model.status().devices_error ?? 'not yet'}`);
  }
}

export interface DeviceRouteOptions {
  model: HostModel;
}

export const deviceRoutes: FastifyPluginAsyncTypebox<DeviceRouteOptions> = async (app, options) => {
  const { model } = options;

  app.get('/v1/devices', {
    schema: {
      operationId: 'listDevices',
      summary: 'Every RDMA device on this host (pfnic, rxe, hardware), with ports and GIDs',
      tags: ['devices'],
      response: { 200: Type.Array(Device), 503: ErrorReply },
    },
  }, async (request) => {
    await modelFor(request, model);
    return [...model.devices()];
  });

  app.get('/v1/devices/:name', {
    schema: {
      operationId: 'getDevice',
      summary: 'One RDMA device: its attributes, ODP capabilities, ports and GID table',
      tags: ['devices'],
      params: DeviceParams,
      response: { 200: Device, 400: ErrorReply, 404: ErrorReply, 503: ErrorReply },
    },
  }, async (request, reply) => {
    await modelFor(request, model);
    const held = model.devices().find((d) => d.name === request.params.name);
    if (held) return held;
    try {
      return await getDevice(request.params.name);
    } catch (err) {
      if (err instanceof DeviceNotFoundError) return reply.notFound(err.message);
      throw err;
    }
  });
};
