// The fastify application: plugins in order (external, then routes), one error handler.
// server.ts runs it; tests build it and use inject().
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, {
  type FastifyError, type FastifyInstance, type FastifyServerOptions,
} from 'fastify';
import compress from '@fastify/compress';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import sensible from '@fastify/sensible';
import fastifyStatic from '@fastify/static';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';

import {
  BLOCK_STATE_TIMEOUT_MS, DeviceQueryError, EventHub, HostModel, UmmunotifyView, kernelSource, type ModelOptions,
  type UmmunotifyViewOptions,
} from '../../control/src/index.js';
import { shareSchemas } from './openapi.js';
import { HttpProblem, sendProblem } from './problem.js';
import { ErrorReply } from './schemas.js';
import { ANONYMOUS, Tokens, authenticate, tokenDigest, type Credential } from './auth.js';
import { deviceRoutes } from './routes/devices.js';
import { eventRoutes } from './routes/events.js';
import { healthRoutes } from './routes/health.js';
import { memoryRoutes } from './routes/memory.js';
import { metricsRoutes } from './routes/metrics.js';
import { mrRoutes } from './routes/mrs.js';
import { ummunotifyRoutes } from './routes/ummunotify.js';
import { version } from './version.js';

export interface AppOptions {
  logger?: FastifyServerOptions['logger'];
  /** The tokens the server accepts (their digests, names and roles). */
  credentials?: Credential[] | undefined;
  /** An admin's token, in plain: a shorthand for one credential named "admin". */
  token?: string | undefined;
  /** Whether a request without a token may read (never secrets; default true). */
  anonymousRead?: boolean | undefined;
  /** HTTPS: the PEM certificate and key. */
  tls?: { cert: Buffer | string; key: Buffer | string } | undefined;
  /** Which proxies' X-Forwarded-For to believe (fastify's trustProxy). */
  trustProxy?: boolean | number | string | undefined;
  /** How long a memory block may take to go offline or online (default 20 s). */
  blockTimeoutMs?: number | undefined;
  /** The events the API serves; the app starts it, and stops it when it closes. */
  events?: EventHub | undefined;
  /** How the model of the host's devices and MRs is kept (its hub is the app's). */
  model?: Omit<ModelOptions, 'hub'> | undefined;
  /** How what processes watch through /dev/ummunotify is read (by default, the host's /proc). */
  ummunotify?: UmmunotifyViewOptions | undefined;
  /** MRs with /metrics series of their own at most (default 50). */
  perMrSeries?: number | undefined;
  /** Event streams open at once at most (default 100). */
  maxEventStreams?: number | undefined;
  /** Requests one client may make per minute (default 600; the routes that change the host allow 30). */
  rateLimit?: number | undefined;
}

function dashboardDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const top = here.includes(`${path.sep}dist${path.sep}`) ? path.resolve(here, '../../..') : path.resolve(here, '../..');
  return path.join(top, 'api/dashboard');
}

/** The trust_proxy setting as fastify takes it: a number is how many proxies in front to believe. */
function trustProxy(setting: AppOptions['trustProxy']): NonNullable<FastifyServerOptions['trustProxy']> {
  if (typeof setting === 'number') return (_address: string, hop: number) => hop < setting;
  if (typeof setting === 'string') return setting.split(',').map((p) => p.trim());
  return setting ?? false;
}

export async function buildApp(options: AppOptions = {}): Promise<FastifyInstance> {
  const common = {
    // an unknown query parameter (a mistyped filter) is an error, not silently dropped
    ajv: { customOptions: { removeAdditional: false } },
    trustProxy: trustProxy(options.trustProxy),
  };
  const logger = options.logger ?? false;
  // Fastify's types tell an HTTPS server from a plain one; the routes do not care which
  const app = (options.tls
    ? Fastify({ ...common, logger: logger as boolean, https: { cert: options.tls.cert, key: options.tls.key } }) as
      unknown as FastifyInstance
    : Fastify({ ...common, logger })).withTypeProvider<TypeBoxTypeProvider>();

  const credentials = [...options.credentials ?? []];
  if (options.token !== undefined) credentials.push({ name: 'admin', role: 'admin', sha256: tokenDigest(options.token) });
  // every request's caller is set by the onRequest hook below, before anything reads it
  app.decorateRequest('caller', null as unknown as typeof ANONYMOUS);

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
  // 10,000 MRs are megabytes of JSON that compress tenfold; gzip is the quick one
  await app.register(compress, { global: true, threshold: 1024, encodings: ['gzip', 'deflate'] });
  await app.register(rateLimit, {
    max: options.rateLimit ?? 600,
    timeWindow: '1 minute',
    errorResponseBuilder: (_request, context) => new HttpProblem(429,
      `more than ${context.max} requests in ${context.after === '1 minute' ? 'a minute' : context.after}: ` +
      `try again in ${Math.ceil(context.ttl / 1000)} s`),
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
    transformObject: (doc) => ('openapiObject' in doc ? shareSchemas(doc.openapiObject as Parameters<typeof shareSchemas>[0]) : doc.swaggerObject),
  });
  // Every route's document lists what any route may answer besides its own replies: a
  // problem for a request over the rate limit (429) and for a fault (500), and for a route
  // that needs a token, 401 and 403.
  app.addHook('onRoute', (route) => {
    if (!route.schema || route.schema.hide) return;
    const response = (route.schema.response ?? {}) as Record<string, unknown>;
    const shared: Record<string, unknown> = { 429: ErrorReply, 500: ErrorReply };
    if (route.config?.access !== 'public') Object.assign(shared, { 401: ErrorReply, 403: ErrorReply });
    for (const [code, schema] of Object.entries(shared)) response[code] ??= schema;
    route.schema.response = response;
    if (route.config?.access !== 'public') route.schema.security ??= [{ bearer: [] }, {}];
  });
  app.addHook('onRequest', authenticate({ tokens: new Tokens(credentials), anonymousRead: options.anonymousRead ?? true }));
  // the API's documentation and the dashboard's files hold no host data: anyone may load
  // them (the dashboard then asks for a token if the server wants one)
  const publicRoutes = async (scope: FastifyInstance): Promise<void> => {
    scope.addHook('onRoute', (route) => { route.config = { ...route.config, access: 'public' }; });
  };
  await app.register(async (scope) => {
    await publicRoutes(scope);
    await scope.register(swaggerUi, { routePrefix: '/docs' });
  });

  app.setErrorHandler<FastifyError>((err, request, reply) => {
    if (err.validation) {
      return sendProblem(request, reply, 400, `invalid ${err.validationContext ?? 'request'}: ${err.message}`);
    }
    if (err instanceof DeviceQueryError) {
      // The kernel or libibverbs said no: the reason helps the operator and reveals nothing.
      request.log.warn({ err }, 'device query failed');
      return sendProblem(request, reply, 503, err.message, err.code);
    }
    const status = err.statusCode ?? 500;
    if (status >= 500 && !(err instanceof HttpProblem)) {
      request.log.error({ err }, 'request failed');
      return sendProblem(request, reply, 500, 'internal error; see the server log');
    }
    return sendProblem(request, reply, status, err.message, err.code);
  });

  app.setNotFoundHandler((request, reply) => sendProblem(request, reply, 404, `no route ${request.method} ${request.url}`));

  const hub = options.events ?? new EventHub();
  hub.start();
  const model = new HostModel(kernelSource, { ...options.model, hub });
  model.start();
  app.addHook('onClose', async () => {
    model.stop();
    hub.stop();
  });
  await app.register(healthRoutes, { hub, model });
  await app.register(deviceRoutes, { model });
  await app.register(mrRoutes, { model });
  await app.register(memoryRoutes, { timeoutMs: options.blockTimeoutMs ?? BLOCK_STATE_TIMEOUT_MS });
  await app.register(eventRoutes, { hub, ...(options.maxEventStreams === undefined ? {} : { maxStreams: options.maxEventStreams }) });
  const ummunotify = new UmmunotifyView(options.ummunotify);
  await app.register(ummunotifyRoutes, { view: ummunotify });
  await app.register(metricsRoutes, { hub, model, ummunotify, perMrLimit: options.perMrSeries ?? 50 });
  // the dashboard: files of this tree, no build step (api/dashboard, from api/src or dist/api/src)
  await app.register(async (scope) => {
    await publicRoutes(scope);
    await scope.register(fastifyStatic, { root: dashboardDir(), prefix: '/', index: 'index.html' });
    // the chart library the dashboard draws with, from the installed package
    await scope.register(fastifyStatic, {
      root: path.join(path.dirname(createRequire(import.meta.url).resolve('uplot/package.json')), 'dist'),
      prefix: '/vendor/uplot/', decorateReply: false, allowedPath: (file) => /^\/uPlot\.(esm\.js|min\.css)$/.test(file),
    });
  });
  return app;
}
