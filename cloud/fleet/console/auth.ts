import type { FastifyReply, FastifyRequest } from 'fastify';
import { FleetError } from '../../../shared/errors/index.js';
import { type Role, roleAllows, type TokenRepository } from '../identity/tokens.js';

export interface Caller {
  name: string;
  role: Role;
}

declare module 'fastify' {
  interface FastifyRequest {
    caller?: Caller;
  }
}

/**
 * Counts failed sign-ins per client address in a sliding minute, so that guessing tokens is
 * slow: past `maxFailures` the address gets RATE_LIMITED until its failures age out.
 */
export class FailedAuthLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    /** Failed attempts allowed per address per window; default 20. */
    private readonly maxFailures = 20,
    /** Window length in ms; default one minute. */
    private readonly windowMs = 60_000,
  ) {}

  check(address: string, now = Date.now()): void {
    const recent = (this.failures.get(address) ?? []).filter((t) => now - t < this.windowMs);
    if (recent.length === 0) this.failures.delete(address);
    else this.failures.set(address, recent);
    if (recent.length >= this.maxFailures) {
      throw new FleetError('RATE_LIMITED', 'too many failed sign-ins from this address; retry in a minute');
    }
  }

  fail(address: string, now = Date.now()): void {
    const list = this.failures.get(address) ?? [];
    list.push(now);
    this.failures.set(address, list);
    if (this.failures.size > 10_000) this.failures.delete(this.failures.keys().next().value as string);
  }
}

// One limiter per token repository (that is, per running cloud), created on first use.
const limiters = new WeakMap<TokenRepository, FailedAuthLimiter>();

function limiterFor(tokens: TokenRepository): FailedAuthLimiter {
  let limiter = limiters.get(tokens);
  if (!limiter) limiters.set(tokens, (limiter = new FailedAuthLimiter()));
  return limiter;
}

/** Reads the bearer token and checks the caller's role; UNAUTHORIZED / FORBIDDEN otherwise. */
export function requireRole(tokens: TokenRepository, needed: Role) {
  const limiter = limiterFor(tokens);
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    limiter.check(request.ip);
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) throw new FleetError('UNAUTHORIZED', 'missing bearer token');
    const caller = tokens.apiTokenRole(match[1]);
    if (!caller) {
      limiter.fail(request.ip);
      throw new FleetError('UNAUTHORIZED', 'unknown or revoked token');
    }
    if (!roleAllows(caller.role, needed)) {
      throw new FleetError('FORBIDDEN', `this action needs the ${needed} role; the token has ${caller.role}`);
    }
    request.caller = caller;
  };
}
