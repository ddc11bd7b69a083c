import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { FleetError } from '../../../../shared/errors/index.js';
import type { CloudServices } from '../../../services.js';
import { policySchema, selectorSchema } from '../../rollouts/types.js';
import { requireRole } from '../auth.js';
import { doc } from '../openapi.js';
import { parseInput } from '../validate.js';

const createSchema = z.object({
  model: z.string().min(1).max(128),
  devices: z.array(z.string().min(1).max(64)).max(100_000).optional(),
  tag: z.string().min(1).max(64).optional(),
  profile: z.string().min(1).max(64).optional(),
  policy: policySchema.partial().optional(),
});

const deploySchema = z.object({
  model: z.string().min(1).max(128),
  devices: z.array(z.string().min(1).max(64)).min(1).max(10_000),
});

/** Rollouts: create in waves, watch, pause, resume, cancel. `/api/deployments` is a one-wave rollout. */
export async function registerRolloutRoutes(app: FastifyInstance, s: CloudServices): Promise<void> {
  const viewer = requireRole(s.tokens, 'viewer');
  const operator = requireRole(s.tokens, 'operator');

  const detail = async (id: string) => {
    const rollout = await s.rolloutStore.get(id);
    const executions = await s.rolloutStore.executions(id);
    const counts: Record<string, number> = {};
    for (const e of executions) counts[e.status] = (counts[e.status] ?? 0) + 1;
    return { ...rollout, counts, executions };
  };

  app.post(
    '/api/rollouts',
    {
      ...doc({
        summary: 'start a rollout to devices, a tag or a profile, with canary, waves and abort rules',
        role: 'operator',
        body: createSchema,
      }),
      preHandler: operator,
    },
    async (request, reply) => {
      const body = parseInput(createSchema, request.body);
      const selector = parseInput(selectorSchema, {
        devices: body.devices,
        tag: body.tag,
        profile: body.profile,
      });
      const rollout = await s.rollouts.create(
        body.model,
        selector,
        body.policy ?? {},
        request.caller?.name ?? '?',
      );
      return reply.status(201).send(await detail(rollout.id));
    },
  );

  app.get(
    '/api/rollouts',
    {
      ...doc({ summary: 'rollouts, newest first, with counts per device state', role: 'viewer' }),
      preHandler: viewer,
    },
    async () => ({
      rollouts: await Promise.all(
        (await s.rolloutStore.list()).map(async (r) => {
          const { executions: _e, ...summary } = await detail(r.id);
          return summary;
        }),
      ),
    }),
  );

  app.get<{ Params: { id: string } }>(
    '/api/rollouts/:id',
    { ...doc({ summary: "one rollout with every device's execution", role: 'viewer' }), preHandler: viewer },
    async (request) => {
      const found = await s.rolloutStore.get(request.params.id);
      if (!found) throw new FleetError('NOT_FOUND', `no rollout ${request.params.id}`);
      return detail(found.id);
    },
  );

  for (const action of ['pause', 'resume', 'cancel'] as const) {
    app.post<{ Params: { id: string } }>(
      `/api/rollouts/:id/${action}`,
      { preHandler: operator },
      async (request) => {
        await s.rollouts[action](request.params.id, request.caller?.name ?? '?');
        return detail(request.params.id);
      },
    );
  }

  app.post(
    '/api/deployments',
    {
      ...doc({
        summary: 'deploy a model to devices now (a one-wave rollout)',
        role: 'operator',
        body: deploySchema,
      }),
      preHandler: operator,
    },
    async (request, reply) => {
      const body = parseInput(deploySchema, request.body);
      const rollout = await s.rollouts.create(
        body.model,
        { devices: body.devices },
        {},
        request.caller?.name ?? '?',
      );
      const executions = await s.rolloutStore.executions(rollout.id);
      return reply.status(201).send({
        model: rollout.modelId,
        rollout: rollout.id,
        targets: executions.map((e) => ({ deviceId: e.deviceId, version: e.targetVersion })),
      });
    },
  );
}
