import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

import { Health } from '../schemas.js';
import { version } from '../version.js';

export const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/v1/health', {
    schema: {
      summary: 'Liveness: the server is up and answering',
      tags: ['health'],
      response: { 200: Health },
    },
  }, async () => ({ status: 'ok' as const, version, uptime_s: process.uptime() }));
};
