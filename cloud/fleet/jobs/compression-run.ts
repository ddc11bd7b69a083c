import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../../shared/logger.js';
import type { CompressionReport, ProfileRegistry } from '../../compression/index.js';
import type { ArtifactStore } from '../delivery/artifacts.js';
import type { ModelRegistry } from '../inventory/models.js';
import type { JobClaim, JobStore, JobUpdate } from './job-store.js';
import { progressForwarder } from './progress-forwarder.js';

const FLEETML_BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../../bin/fleetml.mjs');

export interface CompressionRunDeps {
  jobs: JobStore;
  store: ArtifactStore;
  models: ModelRegistry;
  profiles: ProfileRegistry;
  logger: Logger;
  workDir: string;
  /** The job's row changed (live views). */
  changed: () => void;
}

/** One run of one job on this process. */
export interface CompressionRun {
  readonly claim: JobClaim;
  /** Settles when the run ended, whichever way. */
  readonly done: Promise<void>;
  /** Ends the child process without touching the job's row (cancelled, or no longer ours). */
  abandon(): void;
}

/**
 * Runs `fleetml compress` for a claimed job in a child process and keeps the job's row up to
 * date: progress while it runs, then the report, with the measured variants registered as
 * models of the original. Every update is made for this claim only, so a run that was
 * cancelled or handed to another replica meanwhile changes nothing.
 */
export function startCompressionRun(claim: JobClaim, d: CompressionRunDeps): CompressionRun {
  let child: ChildProcess | undefined;
  let abandoned = false;
  const { job } = claim;
  const dir = join(d.workDir, `${job.id}-${claim.attempt}`);
  const update = async (fields: JobUpdate) => {
    const applied = await d.jobs.update(job.id, fields, claim).catch(() => false);
    if (applied) d.changed();
    return applied;
  };

  const done = (async () => {
    try {
      const args = await compressArgs(claim, d, dir);
      if (abandoned) return;
      // The IPC channel lets the child notice when this process dies (even by kill -9) and exit.
      child = spawn(process.execPath, [FLEETML_BIN, ...args], {
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
        env: { ...process.env, FLEETML_LOG_LEVEL: 'warn' },
      });
      d.logger.info({ job: job.id, attempt: claim.attempt, pid: child.pid }, 'compression job started');
      const exit = await watch(child, update);
      if (abandoned) return;
      await finish(exit, { claim, d, dir, update });
    } catch (error) {
      await update({ status: 'failed', error: (error as Error).message });
      d.logger.warn({ job: job.id, err: (error as Error).message }, 'compression job failed');
    } finally {
      await rm(join(dir, 'out', '.work'), { recursive: true, force: true });
    }
  })();
  return {
    claim,
    done,
    abandon: () => {
      abandoned = true;
      child?.kill('SIGTERM');
    },
  };
}

async function compressArgs(claim: JobClaim, d: CompressionRunDeps, dir: string): Promise<string[]> {
  const { params } = claim.job;
  const model = await d.models.get(params.model);
  const profile = d.profiles.get(params.profile);
  await mkdir(dir, { recursive: true });
  const profilesFile = join(dir, 'profiles.json');
  await writeFile(profilesFile, JSON.stringify([profile]));
  const args = [
    'compress',
    await d.store.localPath(model.sha256),
    '--profile',
    profile.name,
    '--profiles',
    profilesFile,
    '--data',
    params.data === 'mnist' ? 'mnist' : await d.store.localPath(params.data),
    '-o',
    join(dir, 'out'),
    '--json',
    '--progress-json',
  ];
  if (params.labels) args.push('--labels', await d.store.localPath(params.labels));
  if (params.maxAccuracyDrop !== undefined) args.push('--max-accuracy-drop', String(params.maxAccuracyDrop));
  if (params.latencyMs !== undefined) args.push('--latency-ms', String(params.latencyMs));
  if (params.student) args.push('--student', params.student);
  if (params.epochs) args.push('--epochs', String(params.epochs));
  if (params.variants) args.push('--variants', params.variants.join(','));
  return args;
}

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Collects the child's report and forwards its progress lines (at most 4 updates a second, the
 * newest never dropped); resolves after the last of those updates, so none lands after the result.
 */
function watch(child: ChildProcess, update: (fields: JobUpdate) => Promise<boolean>): Promise<Exit> {
  let stdout = '';
  let stderrTail = '';
  const progress = progressForwarder(update);
  child.stdout?.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderrTail = (stderrTail + chunk).slice(-4000);
    for (const line of chunk.split('\n')) {
      if (!line.startsWith('{"progress"')) continue;
      try {
        const { progress: fraction, stage } = JSON.parse(line) as { progress: number; stage: string };
        progress.push({ progress: fraction, stage });
      } catch {
        // a partial line: the next one carries fresher progress anyway
      }
    }
  });
  return new Promise((resolve) => {
    // 'close', not 'exit': the report on stdout may still be arriving when the process has exited.
    child.on('close', async (code) => {
      await progress.close();
      resolve({ code, stdout, stderr: stderrTail });
    });
  });
}

async function finish(
  exit: Exit,
  run: { claim: JobClaim; d: CompressionRunDeps; dir: string; update: (f: JobUpdate) => Promise<boolean> },
) {
  const { claim, d, dir, update } = run;
  const { job } = claim;
  // The pipeline rewrites report.json after every variant: even a failed run keeps what it built.
  const report = (
    exit.code === 0
      ? JSON.parse(exit.stdout)
      : await readFile(join(dir, 'out', 'report.json'), 'utf8').then(JSON.parse, () => null)
  ) as CompressionReport | null;
  // Register nothing for a run that is no longer this replica's (cancelled, or queued again).
  if (!(await update({ stage: 'registering variants' }))) return;
  const original = await d.models.get(job.params.model);
  const modelIds = report
    ? await registerVariants(d, job.id, original.sourceModelId ?? original.id, report)
    : {};
  const result = report ? { ...report, modelIds } : undefined;
  if (exit.code !== 0) {
    const reason = /error [A-Z_]+: .*/.exec(exit.stderr)?.[0] ?? `exit code ${exit.code}`;
    await update({ status: 'failed', error: reason, result });
    d.logger.warn({ job: job.id, err: reason }, 'compression job failed');
    return;
  }
  await update({ status: 'succeeded', progress: 1, stage: 'done', result });
  d.logger.info({ job: job.id, recommended: report?.recommended }, 'compression job finished');
}

/**
 * Registers every measured variant as a variant of the original (same release), serving at
 * the shape the data had; the original gets that shape too when it had none.
 */
async function registerVariants(
  d: CompressionRunDeps,
  jobId: string,
  modelId: string,
  report: CompressionReport,
) {
  const modelIds: Record<string, string> = {};
  const original = await d.models.get(modelId);
  const shapes =
    report.servingShapes && Object.keys(report.servingShapes).length ? report.servingShapes : undefined;
  if (shapes && !original.servingShapes) await d.models.setServingShapes(modelId, shapes);
  for (const v of report.variants) {
    if (v.name === 'original') {
      await d.models.setMetrics(modelId, { ...v, jobId });
      modelIds[v.name] = modelId;
      continue;
    }
    if (v.status !== 'ok' || !v.file) continue;
    const record = await d.models.add(await readFile(v.file), {
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
