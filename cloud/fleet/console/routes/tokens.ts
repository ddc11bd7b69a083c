import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { CloudServices } from '../../../services.js';
import { requireRole } from '../auth.js';
import { doc } from '../openapi.js';
import { parseInput } from '../validate.js';

const enrollTokenSchema = z.object({
  ttlSeconds: z
    .number()
    .int()
    .min(60)
    .max(30 * 24 * 3600)
    .optional(),
  uses: z.number().int().min(1).max(10_000).optional(),
});
const apiTokenSchema = z.object({
  name: z.string().min(1).max(64),
  role: z.enum(['viewer', 'operator', 'admin']),
});

/** Enrollment tokens and API tokens: admins only. */
export async function registerTokenRoutes(app: FastifyInstance, s: CloudServices): Promise<void> {
  const admin = requireRole(s.tokens, 'admin');

  app.post(
    '/api/enroll-tokens',
    {
      ...doc({ summary: 'create an enrollment token', role: 'admin', body: enrollTokenSchema }),
      preHandler: admin,
    },
    async (request, reply) => {
      const body = parseInput(enrollTokenSchema, request.body ?? {});
      const created = await s.issueEnrollToken(body);
      await s.audit.record(request.caller?.name ?? '?', 'enroll-token.create', {
        expiresAt: created.expiresAt,
        uses: body.uses ?? 1,
      });
      return reply.status(201).send({ ...created, brokerUrl: s.brokerUrl, caPem: s.caPem });
    },
  );

  app.post(
    '/api/tokens',
    {
      ...doc({ summary: 'create an API token with a role', role: 'admin', body: apiTokenSchema }),
      preHandler: admin,
    },
    async (request, reply) => {
      const body = parseInput(apiTokenSchema, request.body);
      const token = await s.tokens.createApiToken(body.name, body.role);
      await s.audit.record(request.caller?.name ?? '?', 'api-token.create', {
        name: body.name,
        role: body.role,
      });
      return reply.status(201).send({ token, name: body.name, role: body.role });
    },
  );
}
