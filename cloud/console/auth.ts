import type { FastifyReply, FastifyRequest } from 'fastify';
import { FleetError } from '../../shared/errors/index.js';
import { type Role, roleAllows, type TokenRepository } from '../fleet/tokens.js';

export interface Caller {
  name: string;
  role: Role;
}

declare module 'fastify' {
  interface FastifyRequest {
    caller?: Caller;
  }
}

/** Reads the bearer token and checks the caller's role; UNAUTHORIZED / FORBIDDEN otherwise. */
export function requireRole(tokens: TokenRepository, needed: Role) {
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (!match) throw new FleetError('UNAUTHORIZED', 'missing bearer token');
    const caller = tokens.apiTokenRole(match[1]);
    if (!caller) throw new FleetError('UNAUTHORIZED', 'unknown or revoked token');
    if (!roleAllows(caller.role, needed)) {
      throw new FleetError('FORBIDDEN', `this action needs the ${needed} role; the token has ${caller.role}`);
    }
    request.caller = caller;
  };
}
