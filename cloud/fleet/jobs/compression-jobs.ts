import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { FleetError } from '../../../shared/errors/index.js';
import type { Logger } from '../../../shared/logger.js';
import { CHOOSABLE_VARIANTS, type CompressionReport, type ProfileRegistry } from '../../compression/index.js';
import type { ArtifactStore } from '../delivery/artifacts.js';
import type { FleetEvents } from '../inventory/events.js';
import type { ModelRegistry } from '../inventory/models.js';
import type { Db } from '../store/db.js';

const FLEETML_BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../../bin/fleetml.mjs');

export const compressJobSchema = z.object({
  model: z.string().min(1).max(128),
  profile: z.string().min(1).max(64),
  /** 'mnist' or the sha256 of an uploaded .npy dataset. */
  data: z.string().min(1).max(64),
  labels: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  maxAccuracyDrop: z.number().min(0).max(100).optional(),
  latencyMs: z.number().positive().optional(),
  student: z.string().min(1).max(64).optional(),
  epochs: z.number().int().min(1).max(200).optional(),
  /** Variants to build among the profile's; default all it plans. */
  variants: z.array(z.enum(CHOOSABLE_VARIANTS)).min(1).max(4).optional(),
});
export type CompressJobParams = z.infer<typeof compressJobSchema>;

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
}

export interface JobRunnerDeps {
  db: Db;
  store: ArtifactStore;
  models: ModelRegistry;
  profiles: ProfileRegistry;
  events: FleetEvents;
  logger: Logger;
  /** Where job working directories go. */
  workDir: string;
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

interface FinishedRun {
  id: string;
  code: number | null;
  stdout: string;
  stderr: string;
  /** The original the variants belong to. */
  modelId: string;
  dir: string;
}

/**
 * Runs compression jobs in child processes (`fleetml compress --progress-json`), so that
 * training and calibration never block the HTTP server, and a job can be cancelled by killing
 * its process. Finished variants are registered as models of the original.
 */
export class JobRunner {
  private readonly children = new Map<string, ChildProcess>();

  constructor(private readonly d: JobRunnerDeps) {
    // Jobs that were running when a previous process died cannot be resumed.
    d.db
      .prepare(
        `UPDATE jobs SET status = 'failed', error = 'the cloud restarted while it ran', updated_at = ? WHERE status IN ('queued', 'running')`,
      )
      .run(new Date().toISOString());
  }

  get(id: string): Job {
    const row = this.d.db.prepare('SELECT * FROM jobs WHERE id = ?').get(id) as JobRow | undefined;
    if (!row) throw new FleetError('NOT_FOUND', `no job ${id}`);
    return toJob(row);
  }

  list(limit = 50): Job[] {
    return (
      this.d.db.prepare('SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?').all(limit) as JobRow[]
    ).map(toJob);
  }

  async start(params: CompressJobParams, actor: string): Promise<Job> {
    const model = await this.d.models.get(params.model);
    const profile = this.d.profiles.get(params.profile);
    if (params.data !== 'mnist' && !(await this.d.store.has(params.data))) {
      throw new FleetError('NOT_FOUND', `no uploaded dataset ${params.data}`);
    }
    const id = `j-${randomUUID().slice(0, 8)}`;
    const now = new Date().toISOString();
    this.d.db
      .prepare(
        `INSERT INTO jobs (id, kind, status, params, created_by, created_at, updated_at) VALUES (?, 'compress', 'running', ?, ?, ?, ?)`,
      )
      .run(id, JSON.stringify(params), actor, now, now);
    const dir = join(this.d.workDir, id);
    await mkdir(dir, { recursive: true });
    const profilesFile = join(dir, 'profiles.json');
    await writeFile(profilesFile, JSON.stringify([profile]));
    const args = [
      FLEETML_BIN,
      'compress',
      this.d.store.pathOf(model.sha256),
      '--profile',
      profile.name,
      '--profiles',
      profilesFile,
      '--data',
      params.data === 'mnist' ? 'mnist' : this.d.store.pathOf(params.data),
      '-o',
      join(dir, 'out'),
      '--json',
      '--progress-json',
    ];
    if (params.labels) args.push('--labels', this.d.store.pathOf(params.labels));
    if (params.maxAccuracyDrop !== undefined)
      args.push('--max-accuracy-drop', String(params.maxAccuracyDrop));
    if (params.latencyMs !== undefined) args.push('--latency-ms', String(params.latencyMs));
    if (params.student) args.push('--student', params.student);
    if (params.epochs) args.push('--epochs', String(params.epochs));
    if (params.variants) args.push('--variants', params.variants.join(','));
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FLEETML_LOG_LEVEL: 'warn' },
    });
    this.children.set(id, child);
    this.watch(id, child, model.sourceModelId ?? model.id, dir);
    this.d.logger.info({ job: id, model: model.id, profile: profile.name }, 'compression job started');
    this.d.events.emit({ type: 'job', jobId: id });
    return this.get(id);
  }

  cancel(id: string): Job {
    const job = this.get(id);
    if (job.status !== 'running') throw new FleetError('CONFLICT', `job ${id} is ${job.status}`);
    this.update(id, { status: 'canceled', error: 'canceled' });
    this.children.get(id)?.kill('SIGTERM');
    return this.get(id);
  }

  /** Kills running jobs (cloud shutdown). */
  stop(): void {
    for (const [id, child] of this.children) {
      child.kill('SIGTERM');
      this.update(id, { status: 'failed', error: 'the cloud stopped while it ran' });
    }
  }

  private watch(id: string, child: ChildProcess, modelId: string, dir: string): void {
    let stdout = '';
    let stderrTail = '';
    let lastUpdate = 0;
    child.stdout?.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-4000);
      for (const line of chunk.split('\n')) {
        if (!line.startsWith('{"progress"')) continue;
        try {
          const { progress, stage } = JSON.parse(line) as { progress: number; stage: string };
          if (Date.now() - lastUpdate > 250 || progress >= 1) {
            lastUpdate = Date.now();
            this.update(id, { progress, stage });
          }
        } catch {
          // a partial line: the next one carries fresher progress anyway
        }
      }
    });
    child.on('exit', (code) => {
      this.children.delete(id);
      void this.finish({ id, code, stdout, stderr: stderrTail, modelId, dir });
    });
  }

  private async finish(run: FinishedRun) {
    const { id, dir } = run;
    if (this.get(id).status !== 'running') return;
    try {
      // The pipeline rewrites report.json after every variant: even a failed run keeps what it built.
      const report = (
        run.code === 0
          ? JSON.parse(run.stdout)
          : await readFile(join(dir, 'out', 'report.json'), 'utf8').then(JSON.parse, () => null)
      ) as CompressionReport | null;
      const modelIds = report ? await this.registerVariants(id, run.modelId, report) : {};
      if (run.code !== 0) {
        const reason = /error [A-Z_]+: .*/.exec(run.stderr)?.[0] ?? `exit code ${run.code}`;
        this.update(id, {
          status: 'failed',
          error: reason,
          ...(report ? { result: JSON.stringify({ ...report, modelIds }) } : {}),
        });
        this.d.logger.warn({ job: id, err: reason }, 'compression job failed');
        return;
      }
      this.update(id, {
        status: 'succeeded',
        progress: 1,
        stage: 'done',
        result: JSON.stringify({ ...report, modelIds }),
      });
      this.d.logger.info({ job: id, recommended: report?.recommended }, 'compression job finished');
    } catch (error) {
      this.update(id, { status: 'failed', error: (error as Error).message });
      this.d.logger.warn({ job: id, err: (error as Error).message }, 'compression job failed');
    } finally {
      await rm(join(dir, 'out', '.work'), { recursive: true, force: true });
    }
  }

  /**
   * Registers every measured variant as a variant of the original (same release), serving at
   * the shape the data had; the original gets that shape too when it had none.
   */
  private async registerVariants(jobId: string, modelId: string, report: CompressionReport) {
    const modelIds: Record<string, string> = {};
    const original = await this.d.models.get(modelId);
    const shapes =
      report.servingShapes && Object.keys(report.servingShapes).length ? report.servingShapes : undefined;
    if (shapes && !original.servingShapes) await this.d.models.setServingShapes(modelId, shapes);
    for (const v of report.variants) {
      if (v.name === 'original') {
        await this.d.models.setMetrics(modelId, { ...v, jobId });
        modelIds[v.name] = modelId;
        continue;
      }
      if (v.status !== 'ok' || !v.file) continue;
      const record = await this.d.models.add(await readFile(v.file), {
        name: original.name,
        variant: `${v.name}@${report.profile}`,
        sourceModelId: modelId,
        profile: report.profile,
        metrics: { ...v, jobId },
        servingShapes: shapes,
      });
      modelIds[v.name] = record.id;
    }
    return modelIds;
  }

  private update(
    id: string,
    fields: Partial<{ status: JobStatus; progress: number; stage: string; result: string; error: string }>,
  ) {
    const sets = Object.keys(fields).map((k) => `${k} = @${k}`);
    this.d.db
      .prepare(`UPDATE jobs SET ${sets.join(', ')}, updated_at = @updatedAt WHERE id = @id`)
      .run({ ...fields, id, updatedAt: new Date().toISOString() });
    this.d.events.emit({ type: 'job', jobId: id });
  }
}
