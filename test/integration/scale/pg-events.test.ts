import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FleetEvent } from '../../../cloud/fleet/inventory/events.js';
import { FleetEvents } from '../../../cloud/fleet/inventory/events.js';
import { PgEventRelay } from '../../../cloud/fleet/leader/pg-events.js';
import { openPostgres, type PgPool } from '../../../cloud/fleet/store/postgres.js';
import { createLogger } from '../../../shared/logger.js';
import { waitFor } from '../../faults/procs.js';
import { freshDatabase, postgresUnavailable } from './pg.js';

const skipReason = await postgresUnavailable();

// Two relays on one real PostgreSQL, standing for two replicas' live-event fan-out.
describe.skipIf(skipReason !== null)(
  `live events across replicas (LISTEN/NOTIFY) ${skipReason ? `(skipped: ${skipReason})` : ''}`,
  () => {
    let db: Awaited<ReturnType<typeof freshDatabase>>;
    let pool: PgPool;
    const relays: PgEventRelay[] = [];
    const replica = async (maxTelemetryPerFlush?: number) => {
      const events = new FleetEvents();
      const seen: FleetEvent[] = [];
      events.subscribe((e) => seen.push(e));
      const relay = new PgEventRelay({
        url: db.url,
        pool,
        events,
        logger: createLogger({ name: 't', level: 'silent' }),
        maxTelemetryPerFlush,
      });
      await relay.start();
      relays.push(relay);
      return { events, seen };
    };

    beforeAll(async () => {
      db = await freshDatabase();
      pool = await openPostgres(db.url);
    });
    afterAll(async () => {
      for (const r of relays) await r.close();
      await pool?.end();
      await db?.drop();
    });

    it('delivers events made on one replica to the listeners of the others, once each', async () => {
      const a = await replica();
      const b = await replica();
      a.events.emit({ type: 'job', jobId: 'j-1' });
      a.events.emit({ type: 'job', jobId: 'j-1' }); // the same change twice within one flush
      a.events.emit({ type: 'rollout', rolloutId: 'r-1' });
      b.events.emit({ type: 'device', deviceId: 'd-1', kind: 'state' });
      await waitFor('b to hear a', () => b.seen.some((e) => e.type === 'rollout'), 10_000);
      await waitFor('a to hear b', () => a.seen.some((e) => e.type === 'device'), 10_000);
      await new Promise((r) => setTimeout(r, 500)); // anything extra would have arrived by now
      expect(b.seen.filter((e) => e.type === 'job')).toEqual([{ type: 'job', jobId: 'j-1' }]);
      // Its own events reach a replica's listeners once, locally, not again through the database.
      expect(a.seen.filter((e) => e.type === 'job')).toHaveLength(2);
      expect(b.seen.filter((e) => e.type === 'device')).toHaveLength(1);
    });

    it('bounds the device telemetry events relayed per flush (in several NOTIFYs), never the others', async () => {
      const a = await replica(300); // 300 events need three payloads under the 8000-byte limit
      const b = await replica();
      for (let i = 0; i < 500; i++) a.events.emit({ type: 'device', deviceId: `d-${i}`, kind: 'telemetry' });
      a.events.emit({ type: 'job', jobId: 'j-after' });
      await waitFor('the job event on b', () => b.seen.some((e) => e.type === 'job'), 10_000);
      await new Promise((r) => setTimeout(r, 500));
      const telemetry = b.seen.filter((e) => e.type === 'device');
      expect(telemetry).toHaveLength(300);
      expect(new Set(telemetry.map((e) => (e.type === 'device' ? e.deviceId : ''))).size).toBe(300);
      expect(a.seen.filter((e) => e.type === 'device')).toHaveLength(500); // local listeners get all
    });
  },
);
