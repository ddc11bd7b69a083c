import type { FastifyInstance } from 'fastify';
import { FleetError } from '../../../../shared/errors/index.js';
import { parseNpy } from '../../../compression/index.js';
import type { CloudServices } from '../../../services.js';
import { compressJobSchema } from '../../jobs/compression-jobs.js';
import { requireRole } from '../auth.js';
import { doc } from '../openapi.js';
import { isUploadedFile } from '../upload.js';
import { parseInput } from '../validate.js';

/** Largest dataset upload (.npy), bytes. */
const DATASET_LIMIT_BYTES = 1024 * 1024 * 1024;

/** Device profiles, datasets for compression, and compression jobs. */
export async function registerCompressionRoutes(app: FastifyInstance, s: CloudServices): Promise<void> {
  const viewer = requireRole(s.tokens, 'viewer');
  const operator = requireRole(s.tokens, 'operator');
  const admin = requireRole(s.tokens, 'admin');

  app.get(
    '/api/profiles',
    {
      ...doc({ summary: 'device profiles (built-in and user-defined)', role: 'viewer' }),
      preHandler: viewer,
    },
    // Profiles saved through another replica show up here too.
    async () => {
      await s.profileStore.loadInto(s.profiles);
      return { profiles: s.profiles.list() };
    },
  );

  app.post(
    '/api/profiles',
    { ...doc({ summary: 'add or replace a device profile', role: 'admin' }), preHandler: admin },
    async (request, reply) => {
      const profile = s.profiles.add(request.body);
      await s.profileStore.save(profile);
      s.events.emit({ type: 'profile', name: profile.name });
      await s.audit.record(request.caller?.name ?? '?', 'profile.save', { name: profile.name });
      return reply.status(201).send(profile);
    },
  );

  app.post(
    '/api/datasets',
    {
      ...doc({
        summary: 'upload a .npy dataset for compression jobs',
        role: 'operator',
        rawBody: 'application/octet-stream',
      }),
      // The role is checked before the body is read: only operators may make the cloud store bytes.
      onRequest: operator,
      bodyLimit: s.limits?.datasetUploadBytes ?? DATASET_LIMIT_BYTES,
    },
    async (request, reply) => {
      if (!isUploadedFile(request.body)) {
        throw new FleetError(
          'INPUT_INVALID',
          'send the .npy file as the body with Content-Type application/octet-stream',
        );
      }
      const bytes = await request.body.take();
      const array = parseNpy(bytes, 'upload');
      const { sha256, size } = await s.store.put(bytes);
      await s.audit.record(request.caller?.name ?? '?', 'dataset.add', { sha256, shape: array.shape });
      return reply.status(201).send({ sha256, size, shape: array.shape, dtype: array.dtype });
    },
  );

  app.post(
    '/api/jobs',
    {
      ...doc({ summary: 'start a compression job', role: 'operator', body: compressJobSchema }),
      preHandler: operator,
    },
    async (request, reply) => {
      const params = parseInput(compressJobSchema, request.body);
      const job = await s.jobs.start(params, request.caller?.name ?? '?');
      await s.audit.record(request.caller?.name ?? '?', 'job.start', { id: job.id, ...params });
      return reply.status(201).send(job);
    },
  );

  app.get(
    '/api/jobs',
    { ...doc({ summary: 'compression jobs', role: 'viewer' }), preHandler: viewer },
    async () => ({ jobs: await s.jobs.list() }),
  );
  app.get<{ Params: { id: string } }>(
    '/api/jobs/:id',
    {
      ...doc({ summary: 'one compression job with progress and report', role: 'viewer' }),
      preHandler: viewer,
    },
    async (request) => s.jobs.get(request.params.id),
  );
  app.post<{ Params: { id: string } }>(
    '/api/jobs/:id/cancel',
    { ...doc({ summary: 'cancel a running job', role: 'operator' }), preHandler: operator },
    async (request) => {
      const job = await s.jobs.cancel(request.params.id);
      await s.audit.record(request.caller?.name ?? '?', 'job.cancel', { id: job.id });
      return job;
    },
  );
}
