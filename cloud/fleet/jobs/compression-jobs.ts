import { randomUUID } from 'node:crypto';
import { FleetError } from '../../../shared/errors/index.js';
import type { Logger } from '../../../shared/logger.js';
import type { ProfileRegistry } from '../../compression/index.js';
import type { ArtifactStore } from '../delivery/artifacts.js';
import type { FleetEvents } from '../inventory/events.js';
import type { ModelRegistry } from '../inventory/models.js';
import { type CompressionRun, startCompressionRun } from './compression-run.js';
import type { Job, JobClaim, JobStore } from './job-store.js';
import type { CompressJobParams } from './params.js';

export type { Job, JobStatus } from './job-store.js';
export { type CompressJobParams, compressJobSchema } from './params.js';

export interface JobRunnerDeps {
  jobs: JobStore;
  store: ArtifactStore;
  models: ModelRegistry;
  profiles: ProfileRegistry;
  /** Brings profiles saved through other replicas into `profiles` (before a job is accepted or run). */
  refreshProfiles?: () => Promise<unknown>;
  events: FleetEvents;
  logger: Logger;
  /** Where job working directories go. */
  workDir: string;
  /** With a queue (PostgreSQL): jobs this replica runs at once, and how often it looks for work, ms. */
  workers?: number;
  pollMs?: number;
}

/**
 * Compression jobs: each runs in a child process (`fleetml compress --progress-json`, see
 * compression-run.ts), so that training never blocks the HTTP server and a job can be cancelled
 * by killing its process. Without a queue (SQLite) a job runs on the process that accepted it;
 * with one (PostgreSQL) it waits for whichever replica has a free worker, and one whose replica
 * died is queued again and run by another (pg-jobs.ts).
 */
export class JobRunner {
  private readonly runs = new Map<string, CompressionRun>();
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly d: JobRunnerDeps) {}

  /** Fails what cannot be resumed (SQLite) or starts looking for queued work (PostgreSQL). */
  async open(): Promise<void> {
    const queue = this.d.jobs.queue;
    if (!queue) {
      await this.d.jobs.failInterrupted('the cloud restarted while it ran');
      return;
    }
    queue.onLost(() => {
      // The lock session ended: other replicas may already run these jobs again.
      for (const run of this.runs.values()) run.abandon();
    });
    this.poll();
    this.timer = setInterval(() => this.poll(), this.d.pollMs ?? 1000);
    this.timer.unref();
  }

  async get(id: string): Promise<Job> {
    const job = await this.d.jobs.get(id);
    if (!job) throw new FleetError('NOT_FOUND', `no job ${id}`);
    return job;
  }

  list(limit = 50): Promise<Job[]> {
    return this.d.jobs.list(limit);
  }

  async start(params: CompressJobParams, actor: string): Promise<Job> {
    const model = await this.d.models.get(params.model);
    await this.d.refreshProfiles?.();
    const profile = this.d.profiles.get(params.profile);
    for (const sha of [params.data === 'mnist' ? null : params.data, params.labels ?? null]) {
      if (sha && !(await this.d.store.has(sha)))
        throw new FleetError('NOT_FOUND', `no uploaded dataset ${sha}`);
    }
    const id = `j-${randomUUID().slice(0, 8)}`;
    const queued = Boolean(this.d.jobs.queue);
    await this.d.jobs.insert({ id, params, createdBy: actor, status: queued ? 'queued' : 'running' });
    this.d.logger.info(
      { job: id, model: model.id, profile: profile.name, queued },
      'compression job accepted',
    );
    this.d.events.emit({ type: 'job', jobId: id });
    const job = await this.get(id);
    if (queued) this.poll();
    else this.execute({ job, attempt: 1 });
    return job;
  }

  async cancel(id: string): Promise<Job> {
    const job = await this.get(id);
    if (!(await this.d.jobs.cancel(id))) throw new FleetError('CONFLICT', `job ${id} is ${job.status}`);
    // Here, its process ends now; on another replica, at that replica's next poll.
    this.runs.get(id)?.abandon();
    this.d.events.emit({ type: 'job', jobId: id });
    return this.get(id);
  }

  /** Stops running jobs (cloud shutdown): queued again for another replica, or failed without a queue. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.polling;
    const queue = this.d.jobs.queue;
    for (const [id, run] of this.runs) {
      run.abandon();
      if (queue) await queue.release(run.claim, true).catch(() => {});
      else await this.d.jobs.update(id, { status: 'failed', error: 'the cloud stopped while it ran' });
    }
    this.runs.clear();
    await this.d.jobs.close();
  }

  private execute(claim: JobClaim): void {
    const run = startCompressionRun(claim, {
      jobs: this.d.jobs,
      store: this.d.store,
      models: this.d.models,
      profiles: this.d.profiles,
      logger: this.d.logger,
      workDir: this.d.workDir,
      changed: () => this.d.events.emit({ type: 'job', jobId: claim.job.id }),
    });
    this.runs.set(claim.job.id, run);
    // Settled either way (the run records its own failure): free the slot, release the claim, poll.
    void run.done
      .catch(() => {})
      .then(async () => {
        this.runs.delete(claim.job.id);
        await this.d.jobs.queue?.release(claim, false).catch(() => {});
        this.poll();
      });
  }

  /** One round of queue work: orphans queued again, runs cancelled elsewhere ended, free workers fed. */
  private poll(): void {
    const queue = this.d.jobs.queue;
    if (!queue || this.polling || this.stopped) return;
    this.polling = (async () => {
      const recovered = await queue.recoverOrphans();
      for (const id of recovered) {
        this.d.logger.warn({ job: id }, 'compression job queued again: its replica is gone');
        this.d.events.emit({ type: 'job', jobId: id });
      }
      const owned = await queue.stillOwned([...this.runs.values()].map((r) => r.claim));
      for (const [id, run] of this.runs) if (!owned.has(id)) run.abandon();
      while (!this.stopped && this.runs.size < (this.d.workers ?? 1)) {
        const claim = await queue.claim();
        if (!claim) break;
        this.d.logger.info({ job: claim.job.id, attempt: claim.attempt }, 'compression job claimed');
        this.d.events.emit({ type: 'job', jobId: claim.job.id });
        // A failed refresh must not strand the claimed job: it runs with the profiles known here.
        await this.d
          .refreshProfiles?.()
          .catch((error) => this.d.logger.warn({ err: (error as Error).message }, 'profile refresh failed'));
        this.execute(claim);
      }
    })()
      .catch((error) => this.d.logger.warn({ err: (error as Error).message }, 'job queue poll failed'))
      .finally(() => {
        this.polling = null;
      });
  }
}
