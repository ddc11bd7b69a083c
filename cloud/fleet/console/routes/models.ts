import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { FleetError } from '../../../../shared/errors/index.js';
import { recommendVariant } from '../../../compression/index.js';
import type { CloudServices } from '../../../services.js';
import { requireRole } from '../auth.js';
import { doc } from '../openapi.js';
import { isUploadedFile } from '../upload.js';
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

  app.get(
    '/api/models',
    { ...doc({ summary: 'registered models and variants', role: 'viewer' }), preHandler: viewer },
    async () => ({ models: s.models.list() }),
  );

  app.get<{ Params: { id: string } }>(
    '/api/models/:id',
    { ...doc({ summary: 'one model', role: 'viewer' }), preHandler: viewer },
    async (request) => s.models.get(request.params.id),
  );

  /** The original and every variant made from it, with measured metrics and device latencies. */
  const family = (id: string) => {
    const model = s.models.get(id);
    const rootId = model.sourceModelId ?? model.id;
    const members = s.models.list().filter((m) => m.id === rootId || m.sourceModelId === rootId);
    const benches = s.db
      .prepare(
        `SELECT b.sha256, d.profile, b.device_id, b.p50_ms FROM bench_reports b JOIN devices d ON d.id = b.device_id
         WHERE b.id IN (SELECT max(id) FROM bench_reports GROUP BY device_id, sha256)`,
      )
      .all() as Array<{ sha256: string; profile: string | null; device_id: string; p50_ms: number }>;
    return {
      root: rootId,
      variants: members.map((m) => {
        const byProfile: Record<string, { devices: number; p50Ms: number }> = {};
        for (const b of benches.filter((x) => x.sha256 === m.sha256)) {
          const entry = (byProfile[b.profile ?? 'unprofiled'] ??= { devices: 0, p50Ms: 0 });
          entry.p50Ms = (entry.p50Ms * entry.devices + b.p50_ms) / (entry.devices + 1);
          entry.devices++;
        }
        return { ...m, deviceLatency: byProfile };
      }),
    };
  };
  app.get<{ Params: { id: string } }>(
    '/api/models/:id/variants',
    {
      ...doc({
        summary: 'a model family: the original and its variants with metrics and device latencies',
        role: 'viewer',
      }),
      preHandler: viewer,
    },
    async (request) => family(request.params.id),
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
      const { variants } = family(request.params.id);
      const candidates = variants
        .filter((v) => v.profile === null || v.profile === profile)
        .map((v) => ({
          id: v.id,
          name: v.variant,
          accepted: v.metrics ? v.metrics.accepted !== false : true,
          latencyMs: (v.metrics?.latencyMs as number | undefined) ?? null,
          deviceLatencyMs: v.deviceLatency[profile]?.p50Ms ?? null,
        }));
      const best = recommendVariant(candidates);
      return { profile, recommended: candidates.find((c) => c.name === best) ?? null, candidates };
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
      const bytes = await request.body.take();
      const model = await s.models.add(bytes, { name: query.name, variant: query.variant });
      s.audit.record(request.caller?.name ?? '?', 'model.add', { id: model.id, sha256: model.sha256 });
      return reply.status(201).send(model);
    },
  );
}
