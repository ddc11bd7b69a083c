import { FleetError, isFleetError } from '../../../shared/errors/index.js';

/**
 * Whether an error means "the database cannot be reached right now" (a PostgreSQL restart, a
 * failover, a cut connection) rather than "this operation is wrong". The first kind is worth
 * retrying after a pause; the second never is.
 */
export function isStoreUnavailable(error: unknown): boolean {
  for (let e = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (matches(e)) return true;
  }
  return false;
}

/** SQLSTATEs of a server that went away or is not ready yet (PostgreSQL appendix A). */
const SERVER_GONE = new Set([
  '57P01', // admin_shutdown: terminating connection due to administrator command
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now: the database system is starting up / shutting down
  '53300', // too_many_connections (replicas reconnecting at once)
]);

/** Socket errors of a server that is not there (node's err.code). */
const SOCKET_GONE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTCONN']);

/** node-postgres and pg-pool say these in words, without a code. */
const MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'is not queryable',
  'Client has encountered a connection error',
];

function matches(e: unknown): boolean {
  const { code, message, errors } = e as { code?: unknown; message?: unknown; errors?: unknown };
  if (typeof code === 'string' && (SERVER_GONE.has(code) || code.startsWith('08') || SOCKET_GONE.has(code)))
    return true;
  if (typeof message === 'string' && MESSAGES.some((m) => message.includes(m))) return true;
  // Node reports a refused localhost connection (IPv4 and IPv6 tried) as an AggregateError.
  return Array.isArray(errors) && errors.some(matches);
}

/** pg-pool's words when no pooled connection came free within its wait (connectionTimeoutMillis). */
const POOL_WAIT_TIMEOUT = 'timeout exceeded when trying to connect';

/**
 * The coded error for a store that cannot answer right now: STORE_UNAVAILABLE (retryable, 503)
 * when the database cannot be reached or no pooled connection came free in time. Anything else,
 * coded errors included, is returned as it is. Without this, such failures surfaced as INTERNAL,
 * which callers must not retry.
 */
export function codedStoreError(error: unknown): unknown {
  if (isFleetError(error) || !isStoreUnavailable(error)) return error;
  const { message, code } = error as { message?: string; code?: string };
  // Node reports a refused connection to localhost as an AggregateError with no message.
  const detail = message || code || String(error);
  const why = detail.includes(POOL_WAIT_TIMEOUT)
    ? 'every pooled connection of the fleet database stayed busy for the whole wait (pool_max, pool_wait_ms in the database URL: docs/scale.md)'
    : `the fleet database did not answer (${detail})`;
  return new FleetError('STORE_UNAVAILABLE', why, undefined, { cause: error });
}
