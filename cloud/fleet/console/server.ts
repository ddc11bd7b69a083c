import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { ERROR_CATALOG } from '../../../shared/errors/index.js';
import type { Logger } from '../../../shared/logger.js';
import type { CloudServices } from '../../services.js';
import { authenticate, needsToken } from './auth.js';
import { installErrorReplies } from './error-reply.js';
import { buildOpenApi, type DocumentedRoute, type RouteDoc } from './openapi.js';
import { registerCompressionRoutes } from './routes/compression.js';
import { registerDeviceRoutes } from './routes/devices.js';
import { registerManifestRoutes } from './routes/manifests.js';
import { registerModelRoutes } from './routes/models.js';
import { registerMonitoringRoutes } from './routes/monitoring.js';
import { registerRolloutRoutes } from './routes/rollouts.js';
import { registerStreamRoute } from './routes/stream.js';
import { registerTokenRoutes } from './routes/tokens.js';
import { registerOctetStreamUploads } from './upload.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route registered, for the auth test that walks them all and the OpenAPI document. */
    fleetmlRoutes: DocumentedRoute[];
  }
}

export interface ConsoleServerOptions {
  services: CloudServices;
  logger: Logger;
  /** Largest JSON request body in bytes; default 1 MiB. Model uploads have their own limit. */
  bodyLimit?: number;
  /** Requests per minute per client address; default 1200. */
  rateLimitPerMinute?: number;
  /** Where uploads stream to while they arrive; default <os tmp>/fleetml-uploads. */
  uploadDir?: string;
}

/** The HTTP side of the cloud: JSON API under /api and the web console at /. */
export async function buildConsoleServer(options: ConsoleServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: options.logger.child({ component: 'http' }) as unknown as FastifyBaseLogger,
    // Request lines are noise at fleet scale; errors are still logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
  });
  // Every route, for the auth test that walks them all and for the OpenAPI document.
  const routes: DocumentedRoute[] = [];
  app.addHook('onRoute', (route) => {
    const routeDoc = (route.config as { openapi?: RouteDoc } | undefined)?.openapi;
    for (const method of [route.method].flat()) routes.push({ method, url: route.url, doc: routeDoc });
  });
  app.decorate('fleetmlRoutes', routes);
  registerOctetStreamUploads(app, { dir: options.uploadDir });

  installErrorReplies(app, options.logger);

  await app.register(fastifyRateLimit, {
    max: options.rateLimitPerMinute ?? 1200,
    timeWindow: 60_000,
    errorResponseBuilder: (_request, context) => ({
      statusCode: 429,
      error: {
        code: 'RATE_LIMITED',
        message: `more than ${context.max} requests a minute; retry in ${context.after}`,
      },
    }),
  });
  // Who is calling is settled before anything else, in particular before a body is read: an
  // anonymous client cannot make the cloud buffer or store a byte. Routes then check roles.
  app.addHook('onRequest', async (request) => {
    if (!needsToken(request.url)) return;
    const allowQueryToken = request.url.split('?')[0] === '/api/stream';
    request.caller = await authenticate(options.services.tokens, request, allowQueryToken);
  });
  app.get('/api/openapi.json', async () => buildOpenApi(routes, '0.1.0'));
  app.get('/api/health', async () => ({ ok: true, errorCodes: Object.keys(ERROR_CATALOG).length }));
  await registerDeviceRoutes(app, options.services);
  await registerModelRoutes(app, options.services);
  await registerTokenRoutes(app, options.services);
  await registerRolloutRoutes(app, options.services);
  await registerStreamRoute(app, options.services);
  await registerCompressionRoutes(app, options.services);
  await registerManifestRoutes(app, options.services);
  await registerMonitoringRoutes(app, options.services);

  const here = dirname(fileURLToPath(import.meta.url));
  await app.register(fastifyStatic, { root: join(here, 'public'), prefix: '/' });
  // Browsers and tools ask for /favicon.ico whatever the page links: answer with the SVG icon.
  app.get('/favicon.ico', (_request, reply) =>
    reply.type('image/svg+xml').header('cache-control', 'public, max-age=86400').sendFile('favicon.svg'),
  );
  const uplotDir = dirname(fileURLToPath(import.meta.resolve('uplot/dist/uPlot.iife.min.js')));
  await app.register(fastifyStatic, { root: uplotDir, prefix: '/vendor/uplot/', decorateReply: false });
  return app;
}
