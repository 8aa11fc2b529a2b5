import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';

import { listBlocks, listDevices, listMrs, renderMetrics, type EventHub } from '../../../control/src/index.js';

export interface MetricsRouteOptions {
  hub: EventHub;
  /** MRs with series of their own at most: the rest are counted, not listed. */
  perMrLimit: number;
}

export const metricsRoutes: FastifyPluginAsyncTypebox<MetricsRouteOptions> = async (app, options) => {
  app.get('/metrics', {
    schema: {
      summary: 'Prometheus metrics: devices, ports and their counters, MRs, memory blocks, events',
      tags: ['metrics'],
      produces: ['text/plain'],
      response: { 200: Type.String() },
    },
  }, async (_request, reply) => {
    const [devices, mrs, blocks] = await Promise.all([listDevices(), listMrs(), listBlocks()]);
    const text = await renderMetrics({
      devices, mrs, blocks, events: options.hub.counts, channelUp: options.hub.status.state === 'open',
      perMrLimit: options.perMrLimit,
    });
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(text);
  });
};
