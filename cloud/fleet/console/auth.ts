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

/** Routes anyone may call without a token: a load balancer's health probe and the API description. */
export const PUBLIC_ROUTES: readonly string[] = ['/api/health', '/api/openapi.json'];

/**
 * Counts failed sign-ins per client address in a sliding minute, so that guessing tokens is
 * slow: past `maxFailures` the address gets RATE_LIMITED for wrong tokens until its failures
 * age out. A valid token is always accepted: an attacker sharing the address (a NAT, a proxy)
 * must not be able to lock the operator out.
 */
export class FailedAuthLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    /** Failed attempts allowed per address per window; default 20. */
    private readonly maxFailures = 20,
    /** Window length in ms; default one minute. */
    private readonly windowMs = 60_000,
  ) {}

  isLimited(address: string, now = Date.now()): boolean {
    const recent = (this.failures.get(address) ?? []).filter((t) => now - t < this.windowMs);
    if (recent.length === 0) this.failures.delete(address);
    else this.failures.set(address, recent);
    return recent.length >= this.maxFailures;
  }

  fail(address: string, now = Date.now()): void {
    const list = this.failures.get(address) ?? [];
    list.push(now);
    // Past the limit only the count matters: keep the list bounded.
    if (list.length > this.maxFailures) list.shift();
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

/** The token a request carries: the bearer header, or `?token=` where `allowQueryToken` (EventSource cannot send headers). */
function presentedToken(request: FastifyRequest, allowQueryToken: boolean): string | undefined {
  const header = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '')?.[1];
  if (header || !allowQueryToken) return header;
  const query = request.query as { token?: unknown } | undefined;
  return typeof query?.token === 'string' && query.token ? query.token : undefined;
}

/**
 * Who is calling: checks the token before anything else happens to the request (in particular
 * before its body is read). A valid token always passes; a missing or wrong one counts as a
 * failed sign-in, and an address past the failure limit gets RATE_LIMITED instead of 401.
 */
export async function authenticate(
  tokens: TokenRepository,
  request: FastifyRequest,
  allowQueryToken = false,
): Promise<Caller> {
  const limiter = limiterFor(tokens);
  const token = presentedToken(request, allowQueryToken);
  const caller = token ? await tokens.apiTokenRole(token) : undefined;
  if (caller) return caller;
  if (limiter.isLimited(request.ip)) {
    throw new FleetError('RATE_LIMITED', 'too many failed sign-ins from this address; retry in a minute');
  }
  limiter.fail(request.ip);
  throw new FleetError('UNAUTHORIZED', token ? 'unknown or revoked token' : 'missing bearer token');
}

/** True for URLs that need a token: everything under /api and /metrics except PUBLIC_ROUTES. */
export function needsToken(url: string): boolean {
  const path = url.split('?')[0];
  if (PUBLIC_ROUTES.includes(path)) return false;
  return path.startsWith('/api/') || path === '/api' || path === '/metrics';
}

/** Checks the caller's role (authenticating first if no earlier hook did); UNAUTHORIZED / FORBIDDEN otherwise. */
export function requireRole(tokens: TokenRepository, needed: Role) {
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const caller = request.caller ?? (await authenticate(tokens, request));
    if (!roleAllows(caller.role, needed)) {
      throw new FleetError('FORBIDDEN', `this action needs the ${needed} role; the token has ${caller.role}`);
    }
    request.caller = caller;
  };
}
