import type { Db } from '../store/db.js';
import { LeadershipBase } from './leadership.js';

export interface LeaseOptions {
  /** A lease not renewed for this long may be taken by another replica, ms. Default 10 000. */
  ttlMs: number;
  /** How often the holder renews and the others try, ms. Default 2 000. */
  renewMs: number;
}

export const DEFAULT_LEASE_OPTIONS: LeaseOptions = { ttlMs: 10_000, renewMs: 2_000 };

/**
 * Leadership as a lease row in the shared SQLite file (replicas on one host sharing one
 * database). The holder renews every `renewMs`; another replica takes an expired lease, so a
 * killed leader is replaced within ttlMs + renewMs (12 s by default). A holder that cannot
 * renew in time steps down at once.
 */
export class SqliteLeaseLeadership extends LeadershipBase {
  private readonly o: LeaseOptions;
  private readonly acquire;
  private readonly release;
  private timer: NodeJS.Timeout | undefined;

  constructor(db: Db, options: Partial<LeaseOptions> = {}) {
    super();
    this.o = { ...DEFAULT_LEASE_OPTIONS, ...options };
    // Its own small table, created here rather than in migrations.ts: a lease is process
    // coordination, not fleet data, and needs no upgrade path.
    db.exec(`CREATE TABLE IF NOT EXISTS leader_lease (
      name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL)`);
    this.acquire = db.prepare(
      `INSERT INTO leader_lease (name, holder, expires_at) VALUES ('cloud', @holder, @expires)
       ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
       WHERE leader_lease.holder = excluded.holder OR leader_lease.expires_at < @now`,
    );
    this.release = db.prepare(`DELETE FROM leader_lease WHERE name = 'cloud' AND holder = ?`);
  }

  private attempt(): void {
    const now = Date.now();
    let won = false;
    try {
      won = this.acquire.run({ holder: this.replicaId, expires: now + this.o.ttlMs, now }).changes > 0;
    } catch {
      won = false; // database busy or gone: not leader until a renewal succeeds
    }
    this.set(won);
  }

  async start(): Promise<void> {
    this.attempt();
    this.timer = setInterval(() => this.attempt(), this.o.renewMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    if (this.isLeader) {
      try {
        this.release.run(this.replicaId);
      } catch {
        // the lease simply expires
      }
    }
    this.set(false);
  }
}
