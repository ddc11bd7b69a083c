import type { FleetDb, FleetStore } from '../store/kysely.js';

export interface AuditEntry {
  at: string;
  actor: string;
  action: string;
  details: unknown;
}

/** Append-only record of every change: who, what, when. */
export class AuditLog {
  private readonly db: FleetDb;

  constructor(fleet: FleetStore) {
    this.db = fleet.db;
  }

  async record(actor: string, action: string, details: Record<string, unknown>): Promise<void> {
    await this.db
      .insertInto('audit')
      .values({ at: new Date().toISOString(), actor, action, details: JSON.stringify(details) })
      .execute();
  }

  /** The newest `limit` entries, newest first. */
  async recent(limit = 100): Promise<AuditEntry[]> {
    const rows = await this.db
      .selectFrom('audit')
      .select(['at', 'actor', 'action', 'details'])
      .orderBy('id', 'desc')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ ...r, details: JSON.parse(r.details) }));
  }
}
