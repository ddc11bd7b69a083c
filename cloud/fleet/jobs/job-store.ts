import type { CompressionReport } from '../../compression/index.js';
import type { Db } from '../store/db.js';
import type { CompressJobParams } from './params.js';

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';

export interface Job {
  id: string;
  kind: 'compress';
  status: JobStatus;
  params: CompressJobParams;
  progress: number;
  stage: string | null;
  result: (CompressionReport & { modelIds: Record<string, string> }) | null;
  error: string | null;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
  /** With the PostgreSQL queue: the replica running (or that last ran) the job, and how many runs it has had. */
  runner?: string | null;
  attempts?: number;
}

export type JobUpdate = Partial<{
  status: JobStatus;
  progress: number;
  stage: string;
  result: Job['result'];
  error: string;
}>;

/** One run of a job: updates made for it only land while the job is still this run's. */
export interface JobClaim {
  job: Job;
  attempt: number;
}

/**
 * Where jobs are kept. SQLite (`SqliteJobStore`): a job runs on the process that accepted it,
 * at once. PostgreSQL (`PgJobStore`, pg-jobs.ts): jobs wait in a queue for whichever replica
 * has a free worker (`queue`), and a job whose replica died is queued again.
 */
export interface JobStore {
  readonly queue?: JobQueue;
  /** A new job: 'running' where it runs at once, 'queued' for the queue. */
  insert(job: { id: string; params: CompressJobParams; createdBy: string; status: JobStatus }): Promise<void>;
  get(id: string): Promise<Job | null>;
  list(limit: number): Promise<Job[]>;
  /** Applies `fields` while the job is running (as run `claim`, when given); false when it no longer is. */
  update(id: string, fields: JobUpdate, claim?: JobClaim): Promise<boolean>;
  /** queued/running → canceled; false when the job had finished already. */
  cancel(id: string): Promise<boolean>;
  /** At start: jobs this store cannot resume (SQLite: every unfinished one) are failed. */
  failInterrupted(reason: string): Promise<void>;
  close(): Promise<void>;
}

/** The work queue side of a shared store (PostgreSQL). */
export interface JobQueue {
  /** Takes the oldest queued job for this replica, or null. */
  claim(): Promise<JobClaim | null>;
  /** This replica no longer runs the job (it finished, failed or was given back). */
  release(claim: JobClaim, requeue: boolean): Promise<void>;
  /** Queues again the running jobs whose replica is gone; returns their ids. */
  recoverOrphans(): Promise<string[]>;
  /** Of these claims, those that are still this replica's to run (cancel elsewhere ends the others). */
  stillOwned(claims: JobClaim[]): Promise<Set<string>>;
  /** Called when ownership of every running job was lost (the lock session ended). */
  onLost(listener: () => void): void;
  readonly replicaId: string;
}

interface JobRow {
  id: string;
  kind: 'compress';
  status: JobStatus;
  params: string;
  progress: number;
  stage: string | null;
  result: string | null;
  error: string | null;
  created_by: string;
  created_at: string;
  updated_at: string;
}

const toJob = (r: JobRow): Job => ({
  id: r.id,
  kind: r.kind,
  status: r.status,
  params: JSON.parse(r.params),
  progress: r.progress,
  stage: r.stage,
  result: r.result ? JSON.parse(r.result) : null,
  error: r.error,
  createdBy: r.created_by,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** Jobs in the SQLite file: each runs in the process that accepted it (the single-process default). */
export class SqliteJobStore implements JobStore {
  constructor(private readonly db: Db) {}

  async insert(job: { id: string; params: CompressJobParams; createdBy: string; status: JobStatus }) {
    const now = new Date().toISOString();
    this.db
      .prepare(
        `INSERT INTO jobs (id, kind, status, params, created_by, created_at, updated_at) VALUES (?, 'compress', ?, ?, ?, ?, ?)`,
      )
      .run(job.id, job.status, JSON.stringify(job.params), job.createdBy, now, now);
  }

  async get(id: string): Promise<Job | null> {
    const row = this.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    return row ? toJob(row) : null;
  }

  async list(limit: number): Promise<Job[]> {
    const rows = this.db
      .prepare('SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?')
      .all(limit) as JobRow[];
    return rows.map(toJob);
  }

  async update(id: string, fields: JobUpdate): Promise<boolean> {
    const values: Record<string, unknown> = Object.fromEntries(
      Object.entries(fields).filter(([, v]) => v !== undefined),
    );
    if (fields.result) values.result = JSON.stringify(fields.result);
    const sets = Object.keys(values).map((k) => `${k} = @${k}`);
    const info = this.db
      .prepare(
        `UPDATE jobs SET ${sets.join(', ')}, updated_at = @updatedAt WHERE id = @id AND status = 'running'`,
      )
      .run({ ...values, id, updatedAt: new Date().toISOString() });
    return info.changes > 0;
  }

  async cancel(id: string): Promise<boolean> {
    const info = this.db
      .prepare(
        `UPDATE jobs SET status = 'canceled', error = 'canceled', updated_at = ? WHERE id = ? AND status IN ('queued', 'running')`,
      )
      .run(new Date().toISOString(), id);
    return info.changes > 0;
  }

  async failInterrupted(reason: string): Promise<void> {
    this.db
      .prepare(
        `UPDATE jobs SET status = 'failed', error = ?, updated_at = ? WHERE status IN ('queued', 'running')`,
      )
      .run(reason, new Date().toISOString());
  }

  async close(): Promise<void> {}
}
