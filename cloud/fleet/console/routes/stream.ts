import type { FastifyInstance } from 'fastify';
import { FleetError } from '../../../../shared/errors/index.js';
import type { CloudServices } from '../../../services.js';

/**
 * Server-sent events for live views. EventSource cannot send headers, so this one route also
 * takes the token as `?token=`; it only ever reads.
 */
export async function registerStreamRoute(app: FastifyInstance, s: CloudServices): Promise<void> {
  app.get<{ Querystring: { token?: string } }>('/api/stream', async (request, reply) => {
    const header = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '')?.[1];
    const token = header ?? request.query.token;
    if (!token || !s.tokens.apiTokenRole(token))
      throw new FleetError('UNAUTHORIZED', 'missing or unknown token');
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    res.write(': connected\n\n');
    const unsubscribe = s.events.subscribe((event) => {
      res.write(`event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
    });
    const keepAlive = setInterval(() => res.write(': ping\n\n'), 15_000);
    request.raw.on('close', () => {
      clearInterval(keepAlive);
      unsubscribe();
    });
  });
}
