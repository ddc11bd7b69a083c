import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILTIN_PROFILES } from '../../../cloud/compression/profiles/builtin.js';
import { ProfileRegistry } from '../../../cloud/compression/profiles/registry.js';
import { beginEpoch } from '../../../cloud/fleet/delivery/epoch.js';
import { FleetEvents } from '../../../cloud/fleet/inventory/events.js';
import { ProfileStore } from '../../../cloud/fleet/inventory/profiles.js';
import { PgEventRelay } from '../../../cloud/fleet/leader/pg-events.js';
import { type FleetStore, openFleetStore } from '../../../cloud/fleet/store/kysely.js';
import { createLogger } from '../../../shared/logger.js';
import { waitFor } from '../../faults/procs.js';
import { freshDatabase, postgresUnavailable } from '../scale/pg.js';
import { deliveryRig, SAMPLE, sampleVariant } from './delivery-rig.js';

const skip = await postgresUnavailable();

// Two cloud replicas are two pools on one PostgreSQL database; each step below runs on both at
// once, the way two replicas handling API calls or rollouts would.
describe.skipIf(skip !== null)(
  `replicas racing on one PostgreSQL store${skip ? ` (skipped: ${skip})` : ''}`,
  () => {
    let database: Awaited<ReturnType<typeof freshDatabase>>;
    const pools: pg.Pool[] = [];
    let stores: FleetStore[];

    beforeAll(async () => {
      database = await freshDatabase();
      for (let i = 0; i < 2; i++) pools.push(new pg.Pool({ connectionString: database.url, max: 4 }));
      // Both migrate at once too: Kysely's migrator holds an advisory lock.
      stores = await Promise.all(pools.map((pool) => openFleetStore({ postgres: pool })));
    }, 60_000);
    afterAll(async () => {
      for (const pool of pools) await pool.end();
      await database?.drop();
    });

    it('numbers releases of one name registered on two replicas at once without gaps or repeats', async () => {
      const shared = mkdtempSync(join(tmpdir(), 'fleetml-race-'));
      const replicas = stores.map((store) => deliveryRig(store, { artifactsDir: shared }));
      const registered = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          replicas[i % 2].models.add(sampleVariant(`release-${i}`), { name: 'raced' }),
        ),
      );
      const byRelease = [...registered].sort((a, b) => a.release - b.release);
      expect(byRelease.map((m) => m.release)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      // The stamps manifests carry order releases the same way, each above the one before.
      for (let i = 1; i < byRelease.length; i++) {
        expect(byRelease[i].releaseStamp).toBeGreaterThan(byRelease[i - 1].releaseStamp);
      }
      expect(await replicas[1].models.latestRelease('raced')).toBe(8);
    });

    it('gives each target of a device its own version when two replicas issue them at once', async () => {
      const [a, b] = stores.map((store) => deliveryRig(store));
      await beginEpoch(stores[0]);
      await a.addDevice('contested');
      const model = await a.models.add(SAMPLE, { name: 'contested-model' });
      const states = await Promise.all(
        Array.from({ length: 8 }, (_, i) => (i % 2 ? a : b).targets.setModel('contested', model)),
      );
      expect(states.map((s) => s.version).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect((await b.targets.current('contested'))?.version).toBe(8);
    });

    it('signs new targets under the epoch the newest replica began, whichever replica issues them', async () => {
      const [a, b] = stores.map((store) => deliveryRig(store));
      await a.addDevice('follower');
      const model = await a.models.add(SAMPLE, { name: 'epoch-model' });
      const older = await beginEpoch(stores[0]);
      const newer = await beginEpoch(stores[1]); // replica b started later
      expect(newer).toBeGreaterThan(older);
      expect((await a.targets.setModel('follower', model)).epoch).toBe(newer);
      expect((await b.targets.setModel('follower', model)).epoch).toBe(newer);
    });

    it('brings a profile saved through one replica into the other one registry, for enrollment', async () => {
      const relays: PgEventRelay[] = [];
      const replicas = await Promise.all(
        stores.map(async (store, i) => {
          const events = new FleetEvents();
          const relay = new PgEventRelay({
            url: database.url,
            pool: pools[i],
            events,
            logger: createLogger({ name: 'test', level: 'silent' }),
          });
          await relay.start();
          relays.push(relay);
          const registry = new ProfileRegistry();
          const profiles = new ProfileStore(store);
          profiles.follow(events, registry, (error) => {
            throw error;
          });
          return { events, registry, profiles };
        }),
      );
      try {
        const [a, b] = replicas;
        const lab = a.registry.add({ ...BUILTIN_PROFILES[1], name: 'pi-shared', priority: 1 });
        await a.profiles.save(lab);
        a.events.emit({ type: 'profile', name: lab.name });
        await waitFor(
          'the profile on the other replica',
          () => b.registry.list().some((p) => p.name === 'pi-shared'),
          15_000,
        );
        expect(b.registry.get('pi-shared').priority).toBe(1);
      } finally {
        for (const relay of relays) await relay.close();
      }
    });
  },
);
