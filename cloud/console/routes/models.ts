import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { FleetError } from '../../../shared/errors/index.js';
import type { CloudServices } from '../../services.js';
import { requireRole } from '../auth.js';
import { parseInput } from '../validate.js';

const uploadQuery = z.object({
  name: z.string().min(1).max(128),
  variant: z.string().min(1).max(64).optional(),
});

/** Largest model upload: 2 GiB is ONNX's protobuf limit without external data. */
const MODEL_UPLOAD_LIMIT_BYTES = 2 * 1024 * 1024 * 1024 - 1;

/** Models: upload (raw ONNX bytes), list, details. */
export async function registerModelRoutes(app: FastifyInstance, s: CloudServices): Promise<void> {
  const viewer = requireRole(s.tokens, 'viewer');
  const operator = requireRole(s.tokens, 'operator');

  app.get('/api/models', { preHandler: viewer }, async () => ({ models: s.models.list() }));

  app.get<{ Params: { id: string } }>('/api/models/:id', { preHandler: viewer }, async (request) =>
    s.models.get(request.params.id),
  );

  app.post(
    '/api/models',
    { preHandler: operator, bodyLimit: MODEL_UPLOAD_LIMIT_BYTES },
    async (request, reply) => {
      const query = parseInput(uploadQuery, request.query);
      if (!Buffer.isBuffer(request.body) || request.body.length === 0) {
        throw new FleetError(
          'INPUT_INVALID',
          'send the ONNX file as the body with Content-Type application/octet-stream',
        );
      }
      const model = await s.models.add(request.body, { name: query.name, variant: query.variant });
      s.audit.record(request.caller?.name ?? '?', 'model.add', { id: model.id, sha256: model.sha256 });
      return reply.status(201).send(model);
    },
  );
}
