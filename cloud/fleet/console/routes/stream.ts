import type { FastifyInstance } from 'fastify';
import type { CloudServices } from '../../../services.js';
import { requireRole } from '../auth.js';

/**
 * Server-sent events for live views. EventSource cannot send headers, so this one route also
 * takes the token as `?token=` (checked, with the failed sign-in limiter, by the server's
 * authentication hook); it only ever reads.
 */
export async function registerStreamRoute(app: FastifyInstance, s: CloudServices): Promise<void> {
  const viewer = requireRole(s.tokens, 'viewer');
  app.get<{ Querystring: { token?: string } }>(
    '/api/stream',
    { preHandler: viewer },
    async (request, reply) => {
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
    },
  );
}
