import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { FleetError } from '../../../../shared/errors/index.js';
import { parseShapeFlags } from '../../../../shared/serving-shape.js';
import { checkModelLoads, describeOnnx } from '../../../compression/index.js';
import type { CloudServices } from '../../../services.js';
import { Lineage } from '../../inventory/lineage.js';
import { requireRole } from '../auth.js';
import { doc } from '../openapi.js';
import { isUploadedFile } from '../upload.js';
import { parseInput } from '../validate.js';

const uploadQuery = z.object({
  name: z.string().min(1).max(128),
  variant: z.string().min(1).max(64).optional(),
  /** The original this is a variant of (model id). */
  variantOf: z.string().min(1).max(128).optional(),
  /** Serving shape: `1,3,48,192` (single input) or `name=1,3,48,192`, repeated per input. */
  shape: z.union([z.string().max(2048), z.array(z.string().max(2048)).max(64)]).optional(),
});

const resolveQuery = z.object({
  ref: z.string().min(1).max(256),
  release: z.coerce.number().int().positive().optional(),
  variant: z.string().min(1).max(64).optional(),
  profile: z.string().min(1).max(64).optional(),
});

/** Largest model upload: 2 GiB is ONNX's protobuf limit without external data. */
const MODEL_UPLOAD_LIMIT_BYTES = 2 * 1024 * 1024 * 1024 - 1;

/** Models: upload (raw ONNX bytes), list, details. */
export async function registerModelRoutes(app: FastifyInstance, s: CloudServices): Promise<void> {
  const viewer = requireRole(s.tokens, 'viewer');
  const operator = requireRole(s.tokens, 'operator');
  const lineage = new Lineage(s.fleet, s.models, (sha256s) => s.telemetry.artifactBenches(sha256s));

  app.get(
    '/api/models',
    { ...doc({ summary: 'registered models and variants', role: 'viewer' }), preHandler: viewer },
    async () => ({ models: await s.models.list() }),
  );

  app.get<{ Params: { id: string } }>(
    '/api/models/:id',
    { ...doc({ summary: 'one model', role: 'viewer' }), preHandler: viewer },
    async (request) => s.models.get(request.params.id),
  );

  app.get<{ Params: { id: string } }>(
    '/api/models/:id/variants',
    {
      ...doc({
        summary: 'a model family: the original and its variants with metrics and device latencies',
        role: 'viewer',
      }),
      preHandler: viewer,
    },
    async (request) => lineage.family(request.params.id),
  );

  /**
   * Closed loop: the variant to ship to a profile. Variants within the accuracy budget compete
   * on what devices of that profile measured (so INT8 loses where it ran slower there), falling
   * back to the compression job's measurement on the cloud machine.
   */
  app.get<{ Params: { id: string }; Querystring: { profile?: string } }>(
    '/api/models/:id/recommendation',
    {
      ...doc({
        summary: 'the variant to ship to a profile (closed loop on device measurements)',
        role: 'viewer',
      }),
      preHandler: viewer,
    },
    async (request) => {
      const profile = s.profiles.get(request.query.profile ?? '').name;
      return { profile, ...(await lineage.recommendation(request.params.id, profile)) };
    },
  );

  app.get(
    '/api/model-resolution',
    {
      ...doc({
        summary: 'the model a deployment of NAME means: explicit release/variant, or the recommended one',
        role: 'viewer',
        query: resolveQuery,
      }),
      preHandler: viewer,
    },
    async (request) => {
      const q = parseInput(resolveQuery, request.query);
      return lineage.resolve({
        ref: q.ref,
        release: q.release,
        variant: q.variant,
        profile: q.profile ? s.profiles.get(q.profile).name : undefined,
      });
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/api/models/:id',
    {
      ...doc({ summary: 'delete a model no device, target or rollout uses', role: 'operator' }),
      preHandler: operator,
    },
    async (request) => {
      const model = await s.models.remove(request.params.id);
      await s.audit.record(request.caller?.name ?? '?', 'model.remove', {
        id: model.id,
        sha256: model.sha256,
      });
      return model;
    },
  );

  app.post(
    '/api/models',
    {
      ...doc({
        summary: 'upload an ONNX model (raw bytes), stored by SHA-256',
        role: 'operator',
        query: uploadQuery,
        rawBody: 'application/octet-stream',
      }),
      // The role is checked before the body is read: only operators may make the cloud store bytes.
      onRequest: operator,
      bodyLimit: Math.min(s.limits?.modelUploadBytes ?? MODEL_UPLOAD_LIMIT_BYTES, MODEL_UPLOAD_LIMIT_BYTES),
    },
    async (request, reply) => {
      const query = parseInput(uploadQuery, request.query);
      if (!isUploadedFile(request.body) || request.body.size === 0) {
        throw new FleetError(
          'INPUT_INVALID',
          'send the ONNX file as the body with Content-Type application/octet-stream',
        );
      }
      const shapes = query.shape === undefined ? [] : [query.shape].flat();
      const bytes = await request.body.take();
      // Refuse here what a device would refuse: onnxruntime loads it in a throw-away process.
      describeOnnx(bytes); // not ONNX at all: ONNX_DECODE at once, without starting a process
      await checkModelLoads(bytes);
      const model = await s.models.add(bytes, {
        name: query.name,
        variant: query.variant,
        sourceModelId: query.variantOf,
        servingShapes: shapes.length > 0 ? parseShapeFlags(shapes, 'shape') : undefined,
      });
      await s.audit.record(request.caller?.name ?? '?', 'model.add', { id: model.id, sha256: model.sha256 });
      return reply.status(201).send(model);
    },
  );
}
