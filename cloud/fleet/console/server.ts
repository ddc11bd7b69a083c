import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { ERROR_CATALOG, isFleetError } from '../../../shared/errors/index.js';
import type { Logger } from '../../../shared/logger.js';
import type { CloudServices } from '../../services.js';
import { buildOpenApi, type DocumentedRoute, type RouteDoc } from './openapi.js';
import { registerCompressionRoutes } from './routes/compression.js';
import { registerDeviceRoutes } from './routes/devices.js';
import { registerManifestRoutes } from './routes/manifests.js';
import { registerModelRoutes } from './routes/models.js';
import { registerMonitoringRoutes } from './routes/monitoring.js';
import { registerRolloutRoutes } from './routes/rollouts.js';
import { registerStreamRoute } from './routes/stream.js';
import { registerTokenRoutes } from './routes/tokens.js';

const STATUS_BY_CODE: Record<string, number> = {
  INPUT_INVALID: 400,
  ONNX_DECODE: 400,
  ONNX_INVALID: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  ARTIFACT_NOT_FOUND: 404,
  CONFLICT: 409,
  RATE_LIMITED: 429,
  MANIFEST_SIGNATURE: 400,
  TARGET_SIGNATURE: 400,
  MANIFEST_INVALID: 422,
  NPY_INVALID: 400,
  QUANT_FAILED: 422,
};

export interface ConsoleServerOptions {
  services: CloudServices;
  logger: Logger;
  /** Largest JSON request body in bytes; default 1 MiB. Model uploads have their own limit. */
  bodyLimit?: number;
  /** Requests per minute per client address; default 1200. */
  rateLimitPerMinute?: number;
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
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_req, body, done) =>
    done(null, body),
  );

  app.setErrorHandler((error, _request, reply) => {
    if (isFleetError(error)) {
      return reply.status(STATUS_BY_CODE[error.code] ?? 500).send({ error: error.toJSON() });
    }
    const fastifyError = error as { validation?: unknown; statusCode?: number; message: string };
    if (fastifyError.validation) {
      return reply.status(400).send({ error: { code: 'INPUT_INVALID', message: fastifyError.message } });
    }
    const status = fastifyError.statusCode ?? 500;
    if (status >= 500) options.logger.error({ err: error }, 'request failed');
    const code = status === 413 ? 'INPUT_INVALID' : status >= 500 ? 'INTERNAL' : 'INPUT_INVALID';
    return reply.status(status).send({ error: { code, message: fastifyError.message } });
  });

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
  const uplotDir = dirname(fileURLToPath(import.meta.resolve('uplot/dist/uPlot.iife.min.js')));
  await app.register(fastifyStatic, { root: uplotDir, prefix: '/vendor/uplot/', decorateReply: false });
  return app;
}
