import { newPostgresClient, type PgClient, type PgPool } from '../store/postgres.js';
import type { Job, JobClaim, JobQueue, JobStatus, JobStore, JobUpdate } from './job-store.js';
import type { CompressJobParams } from './params.js';

export interface PgJobOptions {
  /** Runs of one job that may end with their replica's death before the job is failed. Default 3. */
  maxAttempts: number;
  /** First key of the two-key advisory locks that mark running jobs (the second is the job's lock_key). */
  lockNamespace: number;
}

export const DEFAULT_PG_JOB_OPTIONS: PgJobOptions = { maxAttempts: 3, lockNamespace: 0x666c6d20 };

interface PgJobRow {
  id: string;
  kind: 'compress';
  status: JobStatus;
  params: CompressJobParams;
  progress: number;
  stage: string | null;
  result: Job['result'];
  error: string | null;
  created_by: string;
  created_at: Date;
  updated_at: Date;
  runner: string | null;
  attempts: number;
  lock_key: number;
}

const toJob = (r: PgJobRow): Job => ({
  id: r.id,
  kind: r.kind,
  status: r.status,
  params: r.params,
  progress: r.progress,
  stage: r.stage,
  result: r.result,
  error: r.error,
  createdBy: r.created_by,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
  runner: r.runner,
  attempts: r.attempts,
});

/**
 * Compression jobs in PostgreSQL, as a queue the replicas share. A job is claimed with
 * `FOR UPDATE SKIP LOCKED` (two replicas never take the same one) and, in the same transaction,
 * its session advisory lock is taken on this replica's dedicated connection. The lock is the
 * proof of life: the server drops it the moment that session ends (a `kill -9`, a crash, a lost
 * host once TCP keepalives give up), and any replica whose `recoverOrphans` can then take it
 * knows the job's runner is gone and queues the job again. No lease to renew, no clock to trust;
 * a run's updates are guarded by (runner, attempt), so a replica that lost its job cannot
 * overwrite the next run's state.
 */
export class PgJobStore implements JobStore, JobQueue {
  readonly queue: JobQueue = this;
  private readonly o: PgJobOptions;
  private lockClient: PgClient | null = null;
  private lockChain: Promise<unknown> = Promise.resolve();
  private readonly lockKeys = new Map<string, number>();
  private readonly lostListeners: Array<() => void> = [];

  constructor(
    private readonly pool: PgPool,
    private readonly url: string,
    readonly replicaId: string,
    options: Partial<PgJobOptions> = {},
  ) {
    this.o = { ...DEFAULT_PG_JOB_OPTIONS, ...options };
  }

  async insert(job: { id: string; params: CompressJobParams; createdBy: string; status: JobStatus }) {
    await this.pool.query(
      `INSERT INTO compression_jobs (id, kind, status, params, created_by, created_at, updated_at)
       VALUES ($1, 'compress', 'queued', $2, $3, now(), now())`,
      [job.id, JSON.stringify(job.params), job.createdBy],
    );
    // Replicas with a free worker look at once instead of at their next poll.
    await this.pool.query(`SELECT pg_notify('fleetml_jobs', $1)`, [job.id]);
  }

  async get(id: string): Promise<Job | null> {
    const { rows } = await this.pool.query<PgJobRow>('SELECT * FROM compression_jobs WHERE id = $1', [id]);
    return rows[0] ? toJob(rows[0]) : null;
  }

  async list(limit: number): Promise<Job[]> {
    const { rows } = await this.pool.query<PgJobRow>(
      'SELECT * FROM compression_jobs ORDER BY created_at DESC LIMIT $1',
      [limit],
    );
    return rows.map(toJob);
  }

  async update(id: string, fields: JobUpdate, claim?: JobClaim): Promise<boolean> {
    const entries = Object.entries(fields).filter(([, v]) => v !== undefined);
    const values = entries.map(([k, v]) => (k === 'result' ? JSON.stringify(v) : v));
    const sets = entries.map(([k], i) => `${k} = $${i + 2}`);
    const guard = claim ? ` AND runner = $${entries.length + 2} AND attempts = $${entries.length + 3}` : '';
    const params = claim ? [id, ...values, this.replicaId, claim.attempt] : [id, ...values];
    const { rowCount } = await this.pool.query(
      `UPDATE compression_jobs SET ${[...sets, 'updated_at = now()'].join(', ')} WHERE id = $1 AND status = 'running'${guard}`,
      params,
    );
    return (rowCount ?? 0) > 0;
  }

  async cancel(id: string): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `UPDATE compression_jobs SET status = 'canceled', error = 'canceled', updated_at = now()
       WHERE id = $1 AND status IN ('queued', 'running')`,
      [id],
    );
    return (rowCount ?? 0) > 0;
  }

  /** Nothing to fail: a job whose replica died is queued again by recoverOrphans. */
  async failInterrupted(): Promise<void> {}

  onLost(listener: () => void): void {
    this.lostListeners.push(listener);
  }

  /** Runs `work` on the lock session, one at a time (its advisory locks belong to that session). */
  private onLockSession<T>(work: (client: PgClient) => Promise<T>): Promise<T> {
    const run = this.lockChain.then(async () => work(this.lockClient ?? (await this.openLockSession())));
    this.lockChain = run.catch(() => {});
    return run;
  }

  private async openLockSession(): Promise<PgClient> {
    const client = newPostgresClient(this.url);
    try {
      await client.connect();
      // Server side: end the session (and free its job locks) of a host that vanished.
      await client.query(
        'SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3',
      );
      await client.query('SELECT set_config($1, $2, false)', [
        'application_name',
        `fleetml-jobs ${this.replicaId}`.slice(0, 63),
      ]);
    } catch (error) {
      await client.end().catch(() => {});
      throw error;
    }
    const lost = () => {
      if (this.lockClient !== client) return;
      this.lockClient = null;
      this.lockKeys.clear();
      for (const listener of this.lostListeners) listener();
    };
    client.on('error', lost);
    client.on('end', lost);
    this.lockClient = client;
    return client;
  }

  claim(): Promise<JobClaim | null> {
    return this.onLockSession(async (client) => {
      await client.query('BEGIN');
      let locked: number | null = null;
      try {
        const { rows } = await client.query<{ id: string; lock_key: number }>(
          `SELECT id, lock_key FROM compression_jobs WHERE status = 'queued'
           ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED`,
        );
        const candidate = rows[0];
        if (!candidate) {
          await client.query('COMMIT');
          return null;
        }
        const lock = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) ok', [
          this.o.lockNamespace,
          candidate.lock_key,
        ]);
        if (!lock.rows[0].ok) {
          await client.query('ROLLBACK');
          return null; // its previous runner is giving it back right now: next poll
        }
        locked = candidate.lock_key;
        const claimed = await client.query<PgJobRow>(
          `UPDATE compression_jobs SET status = 'running', runner = $2, attempts = attempts + 1,
             progress = 0, stage = NULL, error = NULL, updated_at = now()
           WHERE id = $1 RETURNING *`,
          [candidate.id, this.replicaId],
        );
        await client.query('COMMIT');
        this.lockKeys.set(candidate.id, candidate.lock_key);
        const job = toJob(claimed.rows[0]);
        return { job, attempt: job.attempts ?? 1 };
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {});
        if (locked !== null)
          await client
            .query('SELECT pg_advisory_unlock($1, $2)', [this.o.lockNamespace, locked])
            .catch(() => {});
        throw error;
      }
    });
  }

  async release(claim: JobClaim, requeue: boolean): Promise<void> {
    if (requeue) {
      await this.pool.query(
        `UPDATE compression_jobs SET status = 'queued', stage = $4, updated_at = now()
         WHERE id = $1 AND status = 'running' AND runner = $2 AND attempts = $3`,
        [claim.job.id, this.replicaId, claim.attempt, `queued again: replica ${this.replicaId} stopped`],
      );
    }
    const key = this.lockKeys.get(claim.job.id);
    this.lockKeys.delete(claim.job.id);
    if (key === undefined || !this.lockClient) return;
    await this.onLockSession((client) =>
      client.query('SELECT pg_advisory_unlock($1, $2)', [this.o.lockNamespace, key]),
    ).catch(() => {});
  }

  async recoverOrphans(): Promise<string[]> {
    const client = await this.pool.connect();
    const recovered: string[] = [];
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<{ id: string; lock_key: number; attempts: number; runner: string }>(
        `SELECT id, lock_key, attempts, runner FROM compression_jobs WHERE status = 'running' FOR UPDATE SKIP LOCKED`,
      );
      for (const row of rows) {
        const lock = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock($1, $2) ok', [
          this.o.lockNamespace,
          row.lock_key,
        ]);
        if (!lock.rows[0].ok) continue; // its runner is alive
        const giveUp = row.attempts >= this.o.maxAttempts;
        await client.query(
          `UPDATE compression_jobs SET status = $2, stage = $3, error = $4, updated_at = now() WHERE id = $1`,
          giveUp
            ? [row.id, 'failed', null, `its replica died during each of ${row.attempts} runs`]
            : [row.id, 'queued', `queued again: replica ${row.runner} died during run ${row.attempts}`, null],
        );
        recovered.push(row.id);
      }
      await client.query('COMMIT');
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
    return recovered;
  }

  async stillOwned(claims: JobClaim[]): Promise<Set<string>> {
    if (claims.length === 0) return new Set();
    const { rows } = await this.pool.query<{ id: string; attempts: number }>(
      `SELECT id, attempts FROM compression_jobs WHERE id = ANY($1) AND status = 'running' AND runner = $2`,
      [claims.map((c) => c.job.id), this.replicaId],
    );
    const attempts = new Map(rows.map((r) => [r.id, r.attempts]));
    return new Set(claims.filter((c) => attempts.get(c.job.id) === c.attempt).map((c) => c.job.id));
  }

  async close(): Promise<void> {
    await this.lockChain;
    const client = this.lockClient;
    this.lockClient = null;
    this.lockKeys.clear();
    await client?.end().catch(() => {}); // ending the session releases every job lock
  }
}
