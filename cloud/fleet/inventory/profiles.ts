import type { DeviceProfile } from '../../compression/index.js';
import type { FleetDb, FleetStore } from '../store/kysely.js';
import type { FleetEvents } from './events.js';

/** Something that takes validated profiles (the compression engine's ProfileRegistry). */
export interface ProfileSink {
  add(input: unknown): DeviceProfile;
}

/**
 * User-defined device profiles, kept in the fleet store (the built-ins live in code). Each
 * replica holds them in its ProfileRegistry; `loadInto` brings in what other replicas saved, and
 * `follow` does so whenever a replica announces a saved profile (enrollment matches profiles
 * synchronously, from the registry).
 */
export class ProfileStore {
  private readonly db: FleetDb;

  constructor(fleet: FleetStore) {
    this.db = fleet.db;
  }

  /** Adds or replaces a profile (already validated by the registry). */
  async save(profile: DeviceProfile): Promise<void> {
    const row = { body: JSON.stringify(profile), created_at: new Date().toISOString() };
    await this.db
      .insertInto('profiles')
      .values({ name: profile.name, ...row })
      .onConflict((c) => c.column('name').doUpdateSet(row))
      .execute();
  }

  /** Every saved profile as stored, oldest first. */
  async list(): Promise<unknown[]> {
    const rows = await this.db
      .selectFrom('profiles')
      .select('body')
      .orderBy('created_at')
      .orderBy('name')
      .execute();
    return rows.map((r) => JSON.parse(r.body));
  }

  /** Reloads `registry` on every `profile` event (made here, or relayed from another replica). */
  follow(events: FleetEvents, registry: ProfileSink, onError: (error: unknown) => void): () => void {
    return events.subscribe((event) => {
      if (event.type === 'profile') this.loadInto(registry).catch(onError);
    });
  }

  /** Adds every saved profile to `registry`; returns how many. */
  async loadInto(registry: ProfileSink): Promise<number> {
    const saved = await this.list();
    for (const profile of saved) registry.add(profile);
    return saved.length;
  }
}
