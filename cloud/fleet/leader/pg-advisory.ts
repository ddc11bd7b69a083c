import { newPostgresClient, type PgClient } from '../store/postgres.js';
import { LeadershipBase } from './leadership.js';

export interface AdvisoryOptions {
  /** How often a follower tries the lock and the leader checks its connection, ms. Default 2 000. */
  pollMs: number;
  /** Advisory lock key shared by the replicas of one fleet. */
  key: number;
}

export const DEFAULT_ADVISORY_OPTIONS: AdvisoryOptions = { pollMs: 2_000, key: 0x666c6d10 };

/**
 * Leadership as a PostgreSQL session advisory lock held on a dedicated connection. The server
 * releases the lock the moment that session ends: a killed leader's socket closes and a
 * follower gets the lock at its next poll (≤ pollMs). A leader whose host vanishes without
 * closing the socket is detected by TCP keepalives set on the session (≈ 11 s). A leader that
 * loses its connection steps down as soon as it hears that the session ended (not up to a poll
 * later, by when another replica may hold the lock) and competes again after reconnecting.
 */
export class PgAdvisoryLeadership extends LeadershipBase {
  private readonly o: AdvisoryOptions;
  private client: PgClient | null = null;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly url: string,
    options: Partial<AdvisoryOptions> = {},
  ) {
    super();
    this.o = { ...DEFAULT_ADVISORY_OPTIONS, ...options };
  }

  private async connect(): Promise<PgClient> {
    const client = newPostgresClient(this.url);
    await client.connect();
    // Server side: notice a vanished peer within ~5 + 3 × 2 s and end its session (and lock).
    await client.query(
      'SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3',
    );
    await client.query(`SET application_name = 'fleetml-leader ${this.replicaId.slice(0, 40)}'`);
    // The lock lives as long as the session: once it ends (a server restart, a terminated
    // backend) another replica can take the lock, so this one steps down when it hears of it,
    // not at its next poll, and competes again from the poll after.
    const lost = () => {
      if (this.client !== client) return;
      this.client = null;
      this.set(false);
      client.end().catch(() => {});
    };
    client.on('error', lost);
    client.on('end', lost);
    return client;
  }

  private async attempt(): Promise<void> {
    try {
      this.client ??= await this.connect();
      if (this.isLeader) {
        await this.client.query('SELECT 1');
      } else {
        const { rows } = await this.client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1) ok', [
          this.o.key,
        ]);
        this.set(rows[0].ok === true);
      }
    } catch {
      this.set(false);
      const dead = this.client;
      this.client = null;
      await dead?.end().catch(() => {});
    }
  }

  private tick(): void {
    if (this.running || this.stopped) return;
    this.running = this.attempt().finally(() => {
      this.running = null;
    });
  }

  async start(): Promise<void> {
    this.tick();
    await this.running;
    this.timer = setInterval(() => this.tick(), this.o.pollMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
    const client = this.client;
    this.client = null;
    this.set(false);
    // Ending the session releases the lock.
    await client?.end().catch(() => {});
  }
}
