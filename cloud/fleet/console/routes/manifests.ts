import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { CloudServices } from '../../../services.js';
import { requireRole } from '../auth.js';
import { doc } from '../openapi.js';
import { parseInput } from '../validate.js';

const attachSchema = z.object({ signature: z.string().min(10).max(512) });

/** Release manifests for offline signing: list what waits, prepare one, attach a signature. */
export async function registerManifestRoutes(app: FastifyInstance, s: CloudServices): Promise<void> {
  const viewer = requireRole(s.tokens, 'viewer');
  const admin = requireRole(s.tokens, 'admin');

  app.get(
    '/api/manifests/pending',
    { ...doc({ summary: 'manifests waiting for an offline signature', role: 'viewer' }), preHandler: viewer },
    async () => ({
      publicKey: s.manifests.publicKey,
      manifests: await s.manifests.pending(),
      /** Offline signing: the online target key the fleet key must certify once (null online). */
      targetKey: s.targetSigning.status(),
    }),
  );

  app.post<{ Params: { model: string } }>(
    '/api/manifests/:model/prepare',
    {
      ...doc({ summary: 'create the release manifest of a model, to sign offline', role: 'admin' }),
      preHandler: admin,
    },
    async (request) => s.manifests.prepare(await s.models.get(request.params.model)),
  );

  app.post<{ Params: { model: string } }>(
    '/api/manifests/:model/signature',
    {
      ...doc({
        summary: 'attach an offline signature (checked against the fleet key)',
        role: 'admin',
        body: attachSchema,
      }),
      preHandler: admin,
    },
    async (request) => {
      const { signature } = parseInput(attachSchema, request.body);
      const model = await s.models.get(request.params.model);
      const signed = await s.manifests.attach(model.id, signature);
      await s.audit.record(request.caller?.name ?? '?', 'manifest.sign', {
        model: model.id,
        version: signed.manifest.version,
      });
      return signed;
    },
  );

  app.post(
    '/api/manifests/target-key/delegation',
    {
      ...doc({
        summary: "attach the fleet key's certificate of the online target key (offline signing)",
        role: 'admin',
        body: attachSchema,
      }),
      preHandler: admin,
    },
    async (request) => {
      const { signature } = parseInput(attachSchema, request.body);
      await s.targetSigning.attachDelegation(signature);
      await s.audit.record(request.caller?.name ?? '?', 'target-key.delegate', {});
      return s.targetSigning.status();
    },
  );
}
