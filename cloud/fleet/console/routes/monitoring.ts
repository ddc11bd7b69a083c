import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { CloudServices } from '../../../services.js';
import { GROUP_BY } from '../../monitoring/latency.js';
import { SERVING_GROUP_BY, type ServingGroupBy } from '../../monitoring/serving.js';
import { requireRole } from '../auth.js';
import { doc } from '../openapi.js';
import { parseInput, parseWindow } from '../validate.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** Longest window any monitoring query accepts: the hour rollups' default retention. */
const MAX_WINDOW_MS = 400 * DAY;

const latencyQuery = z.object({ window: z.string().optional(), by: z.enum(GROUP_BY).default('device') });
const regressionQuery = z.object({
  window: z.string().optional(),
  baseline: z.string().optional(),
  threshold: z.coerce.number().positive().max(100).optional(),
});
const seriesQuery = z.object({ window: z.string().optional() });
const servingQuery = z.object({
  window: z.string().optional().describe('how far back, e.g. 15m, 1h, 7d (default 1h)'),
  by: z
    .enum(SERVING_GROUP_BY as [ServingGroupBy, ...ServingGroupBy[]])
    .default('fleet')
    .describe('one group per fleet, device, model, release (model id) or profile'),
  device: z.string().max(128).optional().describe('only this device id'),
  model: z.string().max(256).optional().describe('only this model name'),
  release: z.string().max(128).optional().describe('only this release (model id)'),
  profile: z.string().max(64).optional().describe('only devices of this profile'),
  /** Seconds between series points; default: about 60 points over the window. */
  step: z.coerce
    .number()
    .int()
    .positive()
    .max(86_400)
    .optional()
    .describe('seconds between series points (default: about 60 points over the window)'),
});

function windowMs(text: string | undefined, fallbackMs: number): number {
  const ms = parseWindow(text, fallbackMs);
  return Math.min(Math.max(ms, 60_000), MAX_WINDOW_MS);
}

/**
 * Fleet monitoring API (viewer role) and the Prometheus endpoint.
 *
 * /metrics needs a bearer token like every other route (any role; create a dedicated viewer
 * token for the scraper: POST /api/tokens {"name":"prometheus","role":"viewer"}, then
 * `authorization: {credentials: <token>}` in the scrape config). It is not left open on
 * loopback because behind a reverse proxy every request comes from loopback, and the metrics
 * name devices and models.
 */
export async function registerMonitoringRoutes(app: FastifyInstance, s: CloudServices): Promise<void> {
  const viewer = requireRole(s.tokens, 'viewer');
  const m = s.monitor;

  app.get('/api/fleet/latency', { preHandler: viewer }, async (request) => {
    const q = parseInput(latencyQuery, request.query);
    const result = s.postgresLatency
      ? await s.postgresLatency.run(q.by, windowMs(q.window, DAY))
      : m.latency.run(q.by, windowMs(q.window, DAY));
    if (q.by !== 'model') return result;
    return {
      ...result,
      groups: await Promise.all(
        result.groups.map(async (g) => {
          const model = g.key ? await s.models.find(g.key) : undefined;
          return { ...g, name: model?.name ?? null, variant: model?.variant ?? null };
        }),
      ),
    };
  });

  app.get('/api/fleet/regressions', { preHandler: viewer }, async (request) => {
    const q = parseInput(regressionQuery, request.query);
    const overrides = {
      regressionWindowMs: windowMs(q.window, m.options.regressionWindowMs),
      regressionBaselineMs: windowMs(q.baseline, m.options.regressionBaselineMs),
      regressionThreshold: q.threshold ?? m.options.regressionThreshold,
    };
    return { ...overrides, regressions: await m.regressions.detect(Date.now(), overrides) };
  });

  // Real-traffic latency from the agents' inference services: DDSketches merged exactly over
  // the window, per group, with request counts, error rates and a p50/p99 series.
  app.get(
    '/api/fleet/serving',
    {
      ...doc({
        summary:
          "real-traffic latency of the agents' inference services: p50/p90/p99 from merged sketches, request counts and error rates per group, and a p50/p99 series",
        role: 'viewer',
        query: servingQuery,
      }),
      preHandler: viewer,
    },
    async (request) => {
      const q = parseInput(servingQuery, request.query);
      const span = windowMs(q.window, 3_600_000);
      const now = Date.now();
      const filter = { deviceId: q.device, model: q.model, modelId: q.release, profile: q.profile };
      const stepMs = q.step ? q.step * 1000 : Math.max(60_000, Math.round(span / 60));
      return {
        source: 'traffic',
        windowMs: span,
        by: q.by,
        groups: await m.serving.summary(now - span, now + 60_000, q.by, filter),
        series: await m.serving.series(now - span, now + 60_000, stepMs, q.by, filter),
      };
    },
  );

  // telemetryRecords: every raw record stored (load tests compare it with what devices had acknowledged).
  app.get('/api/fleet/health', { preHandler: viewer }, async () => ({
    ...(await m.health.run()),
    telemetryRecords: await s.telemetryCount(),
  }));

  // A device's latency, temperature and throttling over time from the rollups (raw rows only
  // live a day): minute points up to two days, hour points beyond.
  app.get<{ Params: { id: string } }>(
    '/api/fleet/devices/:id/series',
    { preHandler: viewer },
    async (request) => {
      const q = parseInput(seriesQuery, request.query);
      const device = await s.devices.get(request.params.id);
      return m.series.run(device.id, windowMs(q.window, DAY));
    },
  );

  app.get('/metrics', { preHandler: viewer }, async (_request, reply) => {
    const { contentType, body } = await m.metrics.render();
    return reply.header('content-type', contentType).send(body);
  });
}
