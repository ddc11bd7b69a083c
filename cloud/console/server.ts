import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { ERROR_CATALOG, isFleetError } from '../../shared/errors/index.js';
import type { Logger } from '../../shared/logger.js';
import type { CloudServices } from '../services.js';
import { registerDeviceRoutes } from './routes/devices.js';
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
};

export interface ConsoleServerOptions {
  services: CloudServices;
  logger: Logger;
  /** Largest request body in bytes (model uploads); default 256 MiB. */
  bodyLimit?: number;
}

/** The HTTP side of the cloud: JSON API under /api and the web console at /. */
export async function buildConsoleServer(options: ConsoleServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: options.logger.child({ component: 'http' }) as unknown as FastifyBaseLogger,
    // Request lines are noise at fleet scale; errors are still logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimit ?? 256 * 1024 * 1024,
  });
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

  app.get('/api/health', async () => ({ ok: true, errorCodes: Object.keys(ERROR_CATALOG).length }));
  await registerDeviceRoutes(app, options.services);
  await registerModelRoutes(app, options.services);
  await registerTokenRoutes(app, options.services);
  await registerRolloutRoutes(app, options.services);
  await registerStreamRoute(app, options.services);
  await registerMonitoringRoutes(app, options.services);

  const here = dirname(fileURLToPath(import.meta.url));
  await app.register(fastifyStatic, { root: join(here, 'public'), prefix: '/' });
  const uplotDir = dirname(fileURLToPath(import.meta.resolve('uplot/dist/uPlot.iife.min.js')));
  await app.register(fastifyStatic, { root: uplotDir, prefix: '/vendor/uplot/', decorateReply: false });
  return app;
}
