import type { PgPool } from './postgres.js';

export const DAY_MS = 86_400_000;
/** Advisory lock key serialising partition creation across replicas. */
const PARTITION_LOCK = 0x666c6d02;

/** The UTC day (YYYY-MM-DD) of a time in ms: the partition key of raw telemetry. */
export const dayOf = (ms: number) => new Date(ms - (ms % DAY_MS)).toISOString().slice(0, 10);
const partitionName = (day: string) => `telemetry_p${day.replaceAll('-', '')}`;

/**
 * The day partitions of the raw `telemetry` table on PostgreSQL: created on demand (once per
 * replica and day, under an advisory lock so replicas never race), listed, and dropped whole by
 * retention (a drop is instant and leaves no dead rows to vacuum, unlike DELETE).
 */
export class PgTelemetryPartitions {
  private readonly known = new Set<string>();

  constructor(private readonly pool: PgPool) {}

  /** Creates the day partitions that do not exist yet. */
  async ensure(days: Set<string>): Promise<void> {
    const missing = [...days].filter((d) => !this.known.has(d));
    if (missing.length === 0) return;
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [PARTITION_LOCK]);
      for (const day of missing) {
        const next = dayOf(Date.parse(`${day}T00:00:00Z`) + DAY_MS);
        await client.query(
          `CREATE TABLE IF NOT EXISTS ${partitionName(day)} PARTITION OF telemetry
           FOR VALUES FROM ('${day}') TO ('${next}')`,
        );
      }
      await client.query('COMMIT');
      for (const day of missing) this.known.add(day);
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  /** Forgets which partitions exist (another replica may have dropped one). */
  forget(): void {
    this.known.clear();
  }

  /** Day partitions, oldest first. */
  async days(): Promise<string[]> {
    const { rows } = await this.pool.query<{ name: string }>(
      `SELECT c.relname name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'telemetry' ORDER BY 1`,
    );
    return rows
      .map((r) => /^telemetry_p(\d{4})(\d{2})(\d{2})$/.exec(r.name))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => `${m[1]}-${m[2]}-${m[3]}`);
  }

  /** Drops every day partition that ends before `beforeMs`; returns the days dropped. */
  async dropBefore(beforeMs: number): Promise<string[]> {
    const dropped: string[] = [];
    for (const day of await this.days()) {
      if (Date.parse(`${day}T00:00:00Z`) + DAY_MS > beforeMs) continue;
      await this.pool.query(`DROP TABLE IF EXISTS ${partitionName(day)}`);
      this.known.delete(day);
      dropped.push(day);
    }
    return dropped;
  }
}
