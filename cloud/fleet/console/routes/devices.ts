import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { FleetError } from '../../../../shared/errors/index.js';
import type { CloudServices } from '../../../services.js';
import type { BenchSummary, TelemetrySnapshot } from '../../ingest/telemetry.js';
import type { Device } from '../../inventory/devices.js';
import type { ModelRecord } from '../../inventory/models.js';
import { requireRole } from '../auth.js';
import { doc } from '../openapi.js';
import { parseInput, parseWindow } from '../validate.js';

const MAX_TAGS = 32;

const DEVICE_PAGE_QUERY = z.object({
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  offset: z.coerce.number().int().min(0).default(0),
  /** Case-insensitive text matched against id, name, profile, tags and the active model's name. */
  q: z.string().max(200).optional(),
  online: z.enum(['true', 'false']).optional(),
});

function matchesDevice(
  device: Device,
  model: ModelRecord | undefined,
  query: z.infer<typeof DEVICE_PAGE_QUERY>,
): boolean {
  if (query.online !== undefined && device.online !== (query.online === 'true')) return false;
  if (!query.q) return true;
  const needle = query.q.toLowerCase();
  return [device.id, device.name, device.profile ?? '', model?.name ?? '', ...device.tags].some((text) =>
    text.toLowerCase().includes(needle),
  );
}

/** Devices: list with latest latency, one device, its latency series, profile and tags. */
export async function registerDeviceRoutes(app: FastifyInstance, s: CloudServices): Promise<void> {
  const viewer = requireRole(s.tokens, 'viewer');
  const operator = requireRole(s.tokens, 'operator');

  const toSummary = (
    device: Device,
    bench: BenchSummary | null | undefined,
    snapshot: TelemetrySnapshot | null | undefined,
    model: ModelRecord | undefined,
  ) => ({
    id: device.id,
    name: device.name,
    online: device.online,
    profile: device.profile,
    tags: device.tags,
    arch: device.hardware.arch,
    cpuModel: device.hardware.cpuModel,
    executionProviders: device.hardware.executionProviders,
    phase: device.phase,
    activeModel: model ? { id: model.id, name: model.name, variant: model.variant } : null,
    appliedVersion: device.appliedVersion,
    lastError: device.lastError,
    lastSeenAt: device.lastSeenAt,
    p50Ms: bench?.p50Ms ?? null,
    p99Ms: bench?.p99Ms ?? null,
    ep: bench?.ep ?? null,
    tempC: snapshot?.tempC ?? null,
    cpuLoad: snapshot?.cpuLoad ?? null,
  });

  const summarize = async (id: string) => {
    const device = await s.devices.get(id);
    const model = device.activeModelId ? await s.models.find(device.activeModelId) : undefined;
    const [bench, snapshot] = await Promise.all([
      s.telemetry.latestBench(id),
      s.telemetry.latestSnapshot(id),
    ]);
    return toSummary(device, bench, snapshot, model);
  };

  // Without `limit` (the CLI): every device, through a fixed number of set-based queries. With
  // `limit` (the console's fleet page): filter and count over the device rows only, then the
  // latest benchmark and telemetry for the page's devices alone — on 10,000 devices the
  // fleet-wide "latest per device" queries cost more than the whole page may take.
  app.get<{ Querystring: Record<string, string | undefined> }>(
    '/api/devices',
    {
      ...doc({
        summary:
          'devices with status, profile, active model and latest p50/p99; limit/offset/q/online page and filter (total and online count the matches)',
        role: 'viewer',
      }),
      preHandler: viewer,
    },
    async (request) => {
      const query = parseInput(DEVICE_PAGE_QUERY, request.query);
      const models = new Map((await s.models.list()).map((m) => [m.id, m]));
      const modelOf = (d: Device) => (d.activeModelId ? models.get(d.activeModelId) : undefined);
      if (query.limit === undefined && !query.q && query.online === undefined) {
        const all = await s.devices.list();
        const [benches, snapshots] = await Promise.all([
          s.telemetry.latestBenchByDevice(),
          s.telemetry.latestSnapshotByDevice(all.map((d) => d.id)),
        ]);
        const devices = all.map((d) => toSummary(d, benches.get(d.id), snapshots.get(d.id), modelOf(d)));
        return { devices, total: devices.length, online: devices.filter((d) => d.online).length };
      }
      const matches = (await s.devices.list()).filter((d) => matchesDevice(d, modelOf(d), query));
      const page = matches.slice(query.offset, query.offset + (query.limit ?? matches.length));
      const [benches, snapshots] = await Promise.all([
        Promise.all(page.map((d) => s.telemetry.latestBench(d.id))),
        s.telemetry.latestSnapshotByDevice(page.map((d) => d.id)),
      ]);
      return {
        devices: page.map((d, i) => toSummary(d, benches[i], snapshots.get(d.id), modelOf(d))),
        total: matches.length,
        online: matches.filter((d) => d.online).length,
      };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/devices/:id',
    {
      ...doc({ summary: 'one device with its hardware facts and target state', role: 'viewer' }),
      preHandler: viewer,
    },
    async (request) => {
      const device = await s.devices.get(request.params.id);
      return {
        ...(await summarize(device.id)),
        hardware: device.hardware,
        tags: device.tags,
        target: (await s.targets.current(device.id)) ?? null,
        /** UNKNOWN_VERSION alarms: the device reported a version the cloud never issued. */
        alarms: await s.deviceAudit.alarms(device.id),
        /** Golden-check fidelity the device measured for its model (cosine, max |diff|). */
        fidelity: await s.deviceAudit.fidelity(device.id),
      };
    },
  );

  app.get<{ Params: { id: string }; Querystring: { window?: string } }>(
    '/api/devices/:id/latency',
    {
      ...doc({
        summary: 'latest benchmark and the inference latency series (window e.g. 24h)',
        role: 'viewer',
      }),
      preHandler: viewer,
    },
    async (request) => {
      const device = await s.devices.get(request.params.id);
      const since = new Date(Date.now() - parseWindow(request.query.window, 24 * 3_600_000)).toISOString();
      return {
        deviceId: device.id,
        bench: await s.telemetry.latestBench(device.id),
        series: await s.telemetry.latencySeries(device.id, since),
      };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/devices/:id/events',
    {
      ...doc({ summary: 'coded errors and events the device reported', role: 'viewer' }),
      preHandler: viewer,
    },
    async (request) => ({
      events: await s.telemetry.events((await s.devices.get(request.params.id)).id),
    }),
  );

  const admin = requireRole(s.tokens, 'admin');
  app.post<{ Params: { id: string } }>(
    '/api/devices/:id/revoke',
    {
      ...doc({ summary: 'revoke a device: refused and disconnected from now on', role: 'admin' }),
      preHandler: admin,
    },
    async (request) => {
      const device = await s.devices.get(request.params.id);
      await s.devices.revoke(device.id);
      await s.disconnectDevice(device.id);
      await s.audit.record(request.caller?.name ?? '?', 'device.revoke', { id: device.id });
      return { id: device.id, revoked: true };
    },
  );

  // Tags are words (letters, digits, . _ : -) so that lists of them stay unambiguous on a command
  // line and in the console's comma-separated field.
  const tag = z.string().regex(/^[\w.:-]{1,64}$/, 'a tag is 1-64 letters, digits or . _ : -');
  const patchSchema = z.object({
    profile: z.string().min(1).max(64).nullable().optional(),
    tags: z.array(tag).max(MAX_TAGS).optional(),
    /** Added to the device's tags (after `tags`, if both are given). */
    addTags: z.array(tag).max(MAX_TAGS).optional(),
    /** Removed from the device's tags. */
    removeTags: z.array(tag).max(MAX_TAGS).optional(),
  });
  app.patch<{ Params: { id: string } }>(
    '/api/devices/:id',
    {
      ...doc({ summary: "set a device's profile or tags", role: 'operator', body: patchSchema }),
      preHandler: operator,
    },
    async (request) => {
      const body = parseInput(patchSchema, request.body);
      const device = await s.devices.get(request.params.id);
      // Everything is checked before anything is written: a refused request changes nothing.
      const tags = new Set(body.tags ?? device.tags);
      for (const t of body.addTags ?? []) tags.add(t);
      for (const t of body.removeTags ?? []) tags.delete(t);
      if (tags.size > MAX_TAGS)
        throw new FleetError(
          'INPUT_INVALID',
          `a device has at most ${MAX_TAGS} tags; this would make ${tags.size}`,
        );
      if (body.profile) s.profiles.get(body.profile);
      if (body.profile !== undefined) await s.devices.setProfile(device.id, body.profile);
      if (body.tags || body.addTags || body.removeTags) await s.devices.setTags(device.id, [...tags]);
      await s.audit.record(request.caller?.name ?? '?', 'device.update', { id: device.id, ...body });
      return summarize(device.id);
    },
  );
}
