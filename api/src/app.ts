// The fastify application: plugins in order (external, then routes), one error handler.
// server.ts runs it; tests build it and use inject().
import { STATUS_CODES } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import sensible from '@fastify/sensible';
import fastifyStatic from '@fastify/static';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';

import { BLOCK_STATE_TIMEOUT_MS, DeviceQueryError, EventHub } from '../../control/src/index.js';
import { deviceRoutes } from './routes/devices.js';
import { eventRoutes } from './routes/events.js';
import { healthRoutes } from './routes/health.js';
import { memoryRoutes } from './routes/memory.js';
import { metricsRoutes } from './routes/metrics.js';
import { mrRoutes } from './routes/mrs.js';
import { version } from './version.js';

export interface AppOptions {
  logger?: FastifyServerOptions['logger'];
  /** The bearer token of the routes that change the host; without one they are off. */
  token?: string | undefined;
  /** How long a memory block may take to go offline or online (default 20 s). */
  blockTimeoutMs?: number | undefined;
  /** The events the API serves; the app starts it, and stops it when it closes. */
  events?: EventHub | undefined;
  /** MRs with /metrics series of their own at most (default 50). */
  perMrSeries?: number | undefined;
  /** Requests one client may make per minute (default 600; the routes that change the host allow 30). */
  rateLimit?: number | undefined;
}

function dashboardDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const top = here.includes(`${path.sep}dist${path.sep}`) ? path.resolve(here, '../../..') : path.resolve(here, '../..');
  return path.join(top, 'api/dashboard');
}

export async function buildApp(options: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: options.logger ?? false,
    // an unknown query parameter (a mistyped filter) is an error, not silently dropped
    ajv: { customOptions: { removeAdditional: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  await app.register(sensible);
  // security headers; the pages this server serves load scripts and styles from it alone
  await app.register(helmet, {
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        // served over plain HTTP on a host's address, its pages must not be told to use HTTPS
        upgradeInsecureRequests: null,
      },
    },
  });
  await app.register(rateLimit, {
    max: options.rateLimit ?? 600,
    timeWindow: '1 minute',
    errorResponseBuilder: (_request, context) => ({
      statusCode: 429,
      error: 'Too Many Requests',
      message: `more than ${context.max} requests in ${context.after === '1 minute' ? 'a minute' : context.after}: ` +
        `try again in ${Math.ceil(context.ttl / 1000)} s`,
    }),
  });
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'pfnic control plane',
        description: 'RDMA devices, ports and memory regions of this host',
        version,
      },
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.setErrorHandler<FastifyError>((err, request, reply) => {
    const status = err.statusCode ?? 500;
    if (err.validation) {
      return reply.status(400).send({
        statusCode: 400,
        error: 'Bad Request',
        message: `invalid ${err.validationContext ?? 'request'}: ${err.message}`,
      });
    }
    if (err instanceof DeviceQueryError) {
      // The kernel or libibverbs said no: the reason helps the operator and reveals nothing.
      request.log.warn({ err }, 'device query failed');
      return reply.status(503).send({ statusCode: 503, error: 'Service Unavailable', message: err.message });
    }
    if (status >= 500) {
      request.log.error({ err }, 'request failed');
      return reply.status(500).send({
        statusCode: 500, error: 'Internal Server Error', message: 'internal error; see the server log',
      });
    }
    return reply.status(status).send({
      statusCode: status, error: STATUS_CODES[status] ?? 'Error', message: err.message,
    });
  });

  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({
      statusCode: 404, error: 'Not Found', message: `no route ${request.method} ${request.url}`,
    }));

  await app.register(healthRoutes);
  await app.register(deviceRoutes);
  await app.register(mrRoutes);
  await app.register(memoryRoutes, {
    token: options.token, timeoutMs: options.blockTimeoutMs ?? BLOCK_STATE_TIMEOUT_MS,
  });
  const hub = options.events ?? new EventHub();
  hub.start();
  app.addHook('onClose', async () => { hub.stop(); });
  await app.register(eventRoutes, { hub });
  await app.register(metricsRoutes, { hub, perMrLimit: options.perMrSeries ?? 50 });
  // the dashboard: files of this tree, no build step (api/dashboard, from api/src or dist/api/src)
  await app.register(fastifyStatic, { root: dashboardDir(), prefix: '/', index: 'index.html' });
  return app;
}
