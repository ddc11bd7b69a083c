import type { FastifyInstance } from 'fastify';
import { httpStatusOf, isFleetError } from '../../../shared/errors/index.js';
import type { Logger } from '../../../shared/logger.js';
import { codedStoreError } from '../store/unavailable.js';

/**
 * Seconds a client is asked to wait (`Retry-After`) before repeating a request refused with a
 * retryable 503: long enough for a PostgreSQL restart or a busy pool, short for a person.
 */
export const RETRY_AFTER_S = 5;

/**
 * Every error a route or hook throws becomes `{ error: { code, message } }` with the status of
 * its code. A store that cannot answer (a PostgreSQL outage, a pool with no free connection) is
 * STORE_UNAVAILABLE, 503 with `Retry-After`, not a 500 INTERNAL the caller would not retry.
 */
export function installErrorReplies(app: FastifyInstance, logger: Logger): void {
  app.setErrorHandler((thrown, _request, reply) => {
    const error = codedStoreError(thrown);
    if (isFleetError(error)) {
      const status = httpStatusOf(error.code);
      if (status === 503 && error.retryable) reply.header('retry-after', String(RETRY_AFTER_S));
      if (error.code === 'STORE_UNAVAILABLE') logger.warn({ err: error.message }, 'request failed: store');
      return reply.status(status).send({ error: error.toJSON() });
    }
    const fastifyError = error as { validation?: unknown; statusCode?: number; message: string };
    if (fastifyError.validation) {
      return reply.status(400).send({ error: { code: 'INPUT_INVALID', message: fastifyError.message } });
    }
    const status = fastifyError.statusCode ?? 500;
    if (status >= 500) logger.error({ err: error }, 'request failed');
    const code = status >= 500 ? 'INTERNAL' : 'INPUT_INVALID';
    return reply.status(status).send({ error: { code, message: fastifyError.message } });
  });
}
