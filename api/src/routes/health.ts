// Liveness and readiness. /v1/health answers as long as the server runs, addon or not;
// /v1/ready says whether it can report the host: the addon loaded, the device list read, and
// how the event channel, rdma netlink's notifications and each device's MRs are kept.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

import { nativeBinding, type EventHub, type HostModel } from '../../../control/src/index.js';
import { Health, Readiness } from '../schemas.js';
import { version } from '../version.js';

export interface HealthRouteOptions {
  hub: EventHub;
  model: HostModel;
}

function addonState(): { state: 'loaded' | 'missing'; message: string | null } {
  try {
    nativeBinding();
    return { state: 'loaded', message: null };
  } catch (err) {
    return { state: 'missing', message: (err as Error).message };
  }
}

export const healthRoutes: FastifyPluginAsyncTypebox<HealthRouteOptions> = async (app, options) => {
  const { hub, model } = options;

  app.get('/v1/health', {
    config: { access: 'public' },
    schema: {
      summary: 'Liveness: the server is up and answering',
      operationId: 'getHealth',
      tags: ['health'],
      response: { 200: Health },
    },
  }, async () => ({ status: 'ok' as const, version, uptime_s: process.uptime() }));

  // it names devices and the kernel's errors: a reader's, like the rest of what the host says
  app.get('/v1/ready', {
    schema: {
      summary: 'Readiness: whether the server can report this host (503 when it cannot), and how each of its sources is',
      operationId: 'getReadiness',
      tags: ['health'],
      response: { 200: Readiness, 503: Readiness },
    },
  }, async (_request, reply) => {
    const addon = addonState();
    const { devices_error: devicesError, refresh } = model.status();
    const ready = addon.state === 'loaded' && devicesError === null && model.started();
    return reply.status(ready ? 200 : 503).send({
      status: ready ? 'ready' : 'not_ready',
      addon,
      devices: { state: devicesError === null ? (model.started() ? 'read' : 'reading') : 'error', message: devicesError },
      event_channel: hub.status,
      device_notifications: hub.monitorStatus,
      mrs: refresh,
    });
  });
};
