import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installErrorReplies, RETRY_AFTER_S } from '../../../../../cloud/fleet/console/error-reply.js';
import { FleetError } from '../../../../../shared/errors/index.js';
import { createLogger } from '../../../../../shared/logger.js';

// What the HTTP API answers for each kind of failure. The errors below are what the `pg` driver
// and pg-pool throw (a real outage through the whole cloud: test/integration/scale/pg-outage).
const thrown: Record<string, () => unknown> = {
  // The server ended the session (a restart): SQLSTATE 57P01.
  'admin-shutdown': () =>
    Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }),
  // pg-pool: every connection stayed checked out for the whole connectionTimeoutMillis.
  'pool-wait': () => new Error('timeout exceeded when trying to connect'),
  // Node's refused connection to localhost (IPv4 and IPv6 tried): no message of its own.
  refused: () =>
    new AggregateError([Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })]),
  bug: () => new Error('undefined is not a function'),
  'not-found': () => new FleetError('NOT_FOUND', 'no such device'),
  'syntax-error': () => Object.assign(new Error('syntax error at or near "SELEC"'), { code: '42601' }),
};

describe('HTTP error replies', () => {
  const app = Fastify();
  beforeAll(async () => {
    installErrorReplies(app, createLogger({ name: 't', level: 'silent' }));
    app.get('/fail/:kind', async (request) => {
      throw thrown[(request.params as { kind: string }).kind]();
    });
    await app.ready();
  });
  afterAll(() => app.close());

  const call = async (kind: string) => {
    const response = await app.inject({ method: 'GET', url: `/fail/${kind}` });
    return {
      status: response.statusCode,
      code: response.json().error.code,
      retryAfter: response.headers['retry-after'],
    };
  };

  it('answers a store that cannot be reached or has no free connection with a retryable 503', async () => {
    for (const kind of ['admin-shutdown', 'pool-wait', 'refused']) {
      expect(await call(kind), kind).toEqual({
        status: 503,
        code: 'STORE_UNAVAILABLE',
        retryAfter: String(RETRY_AFTER_S),
      });
    }
  });

  it('keeps 500 INTERNAL for bugs and a query the database refuses, without Retry-After', async () => {
    expect(await call('bug')).toEqual({ status: 500, code: 'INTERNAL', retryAfter: undefined });
    expect(await call('syntax-error')).toEqual({ status: 500, code: 'INTERNAL', retryAfter: undefined });
    expect(await call('not-found')).toEqual({ status: 404, code: 'NOT_FOUND', retryAfter: undefined });
  });
});
