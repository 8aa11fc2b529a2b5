import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';

import { DeviceNotFoundError, getDevice, listDevices } from '../../../control/src/index.js';
import { Device, DeviceParams, ErrorReply } from '../schemas.js';

export const deviceRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/v1/devices', {
    schema: {
      summary: 'Every RDMA device on this host (pfnic, rxe, hardware), with ports and GIDs',
      tags: ['devices'],
      response: { 200: Type.Array(Device), 503: ErrorReply },
    },
  }, async () => listDevices());

  app.get('/v1/devices/:name', {
    schema: {
      summary: 'One RDMA device: its attributes, ODP capabilities, ports and GID table',
      tags: ['devices'],
      params: DeviceParams,
      response: { 200: Device, 400: ErrorReply, 404: ErrorReply, 503: ErrorReply },
    },
  }, async (request, reply) => {
    try {
      return await getDevice(request.params.name);
    } catch (err) {
      if (err instanceof DeviceNotFoundError) return reply.notFound(err.message);
      throw err;
    }
  });
};
