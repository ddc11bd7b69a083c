import { FleetError } from '../../../shared/errors/index.js';
import type { Logger } from '../../../shared/logger.js';
import type { TargetService } from '../delivery/targets.js';
import type { TelemetryRepository } from '../ingest/telemetry.js';
import type { AuditLog } from '../inventory/audit.js';
import type { DeviceRepository } from '../inventory/devices.js';
import type { ModelRegistry } from '../inventory/models.js';
import { abortReason } from './abort-rules.js';
import { evaluateExecution } from './outcome.js';
import type { RolloutStore } from './store.js';
import { type ServingSummaryQuery, soakRemainingMs } from './traffic-gate.js';
import { type Execution, FAILURES, type Rollout, TERMINAL } from './types.js';

const REVOKED = 'device revoked';

/**
 * A device in progress that has not finished after this long since it started (or since it was
 * last asked) gets its target published again, and answers with its state and benchmark: a
 * report can be lost on the way (a replica killed with it in hand, a broker restart before any
 * replica subscribed again), and the rollout would otherwise wait for the device timeout.
 */
export const ASK_AGAIN_AFTER_MS = 120_000;
/** At most this many devices asked again per step: a slow wave of thousands is asked in turns. */
const ASKED_PER_STEP = 200;

/**
 * Targets issued at once when a wave starts. Each waits for the broker to acknowledge its
 * retained message; one at a time, a wave of 300 took over a minute to start on a busy machine.
 * Kept under the PostgreSQL pool's size (8), which the device traffic shares.
 */
const STARTS_IN_PARALLEL = 6;

/** Runs `work` on every item, `limit` at a time; once all settled, rejects with the first failure. */
async function inParallel<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>) {
  let next = 0;
  const failures: unknown[] = [];
  const worker = async () => {
    while (next < items.length) await work(items[next++]).catch((error: unknown) => failures.push(error));
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failures.length > 0) throw failures[0];
}

/** What one step of a rollout reads and changes. */
export interface RolloutStepDeps {
  store: RolloutStore;
  devices: DeviceRepository;
  models: ModelRegistry;
  targets: TargetService;
  telemetry: Pick<TelemetryRepository, 'latestBenches'>;
  audit: AuditLog;
  logger: Logger;
  /** Called whenever a rollout or one of its devices changed (the console streams it). */
  onChange?: (rolloutId: string) => void;
  now?: () => number;
  /** Real-traffic figures for the soak rules (monitor.serving.summary by fleet); without it they are off. */
  serving?: ServingSummaryQuery;
}

/**
 * One step of a running rollout, re-derived from the store: read device outcomes, apply the
 * abort rules (cancel and roll back), start the devices now due, and finish the rollout.
 */
export class RolloutStep {
  private readonly now: () => number;

  constructor(private readonly d: RolloutStepDeps) {
    this.now = d.now ?? Date.now;
  }

  async advance(rollout: Rollout): Promise<void> {
    let changed = await this.collectOutcomes(rollout);
    const executions = await this.d.store.executions(rollout.id);
    const reason = await abortReason(rollout, executions, this.now(), this.d.serving);
    if (reason) {
      await this.abort(rollout, executions, reason);
      return;
    }
    changed = (await this.startDue(rollout, executions)) || changed;
    changed = (await this.finishIfDone(rollout)) || changed;
    if (changed) this.d.onChange?.(rollout.id);
  }

  /**
   * Finishes in-progress devices whose reports decide them; true when any finished. The wave's
   * devices and benchmarks are read in a few queries, not two per device: a tick follows every
   * burst of reports, and a wave can hold thousands of devices.
   */
  private async collectOutcomes(rollout: Rollout): Promise<boolean> {
    const model = await this.d.models.get(rollout.modelId);
    const inProgress = (await this.d.store.executions(rollout.id)).filter((e) => e.status === 'in_progress');
    if (inProgress.length === 0) return false;
    const ids = inProgress.map((e) => e.deviceId);
    const [devices, benches] = await Promise.all([
      this.d.devices.findMany(ids),
      this.d.telemetry.latestBenches(ids),
    ]);
    let changed = false;
    let asked = 0;
    for (const e of inProgress) {
      const device = devices.get(e.deviceId);
      if (!device) throw new FleetError('NOT_FOUND', `no device ${e.deviceId}`, { deviceId: e.deviceId });
      const outcome = evaluateExecution(
        e,
        device,
        model.sha256,
        benches.get(e.deviceId) ?? null,
        this.now(),
        rollout.policy.deviceTimeoutS,
      );
      const key = `${rollout.id}/${e.deviceId}`;
      if (outcome) {
        await this.d.store.finish(rollout.id, e.deviceId, outcome.status, outcome);
        this.askedAt.delete(key);
        changed = true;
      } else if (asked < ASKED_PER_STEP && this.dueToAsk(key, e)) {
        asked++;
        this.askedAt.set(key, this.now());
        await this.d.targets.republishOne(e.deviceId);
      }
    }
    return changed;
  }

  /** When each in-progress device was last asked again (ASK_AGAIN_AFTER_MS); this leader's memory only. */
  private readonly askedAt = new Map<string, number>();

  private dueToAsk(key: string, e: Execution): boolean {
    const startedMs = e.startedAt ? Date.parse(e.startedAt) : this.now();
    return this.now() - Math.max(startedMs, this.askedAt.get(key) ?? 0) >= ASK_AGAIN_AFTER_MS;
  }

  /** Succeeds the rollout once every device finished and the last wave soaked. */
  private async finishIfDone(rollout: Rollout): Promise<boolean> {
    const after = await this.d.store.executions(rollout.id);
    const lastWave = Math.max(...after.map((e) => e.wave));
    const soaking =
      soakRemainingMs(
        rollout.policy,
        after.filter((e) => e.wave === lastWave),
        this.now(),
      ) > 0;
    if (!after.every((e) => TERMINAL.has(e.status)) || soaking) return false;
    const failures = after.filter((e) => FAILURES.has(e.status)).length;
    await this.d.store.setStatus(
      rollout.id,
      'succeeded',
      failures ? `${failures} device(s) failed within the budget` : null,
    );
    this.d.logger.info({ rollout: rollout.id, devices: after.length, failures }, 'rollout finished');
    return true;
  }

  /** Starts queued devices of the current wave once every earlier wave has finished. */
  private async startDue(rollout: Rollout, executions: Execution[]): Promise<boolean> {
    const model = await this.d.models.get(rollout.modelId);
    const wave = await this.currentWave(rollout, executions);
    let budget = Number.POSITIVE_INFINITY;
    if (rollout.policy.maxPerMinute > 0) {
      const since = new Date(this.now() - 60_000).toISOString();
      budget = rollout.policy.maxPerMinute - (await this.d.store.startedSince(rollout.id, since));
    }
    let started = false;
    const due = executions.filter((e) => e.wave === wave && e.status === 'queued');
    const devices = await this.d.devices.findMany(due.map((e) => e.deviceId));
    const toStart: Execution[] = [];
    for (const e of due) {
      const device = devices.get(e.deviceId);
      if (!device) throw new FleetError('NOT_FOUND', `no device ${e.deviceId}`, { deviceId: e.deviceId });
      // Revoked since the rollout was planned: it gets no target (and counts as no failure).
      // Revocation later than this read is refused by setModel (DEVICE_REVOKED).
      if (device.revoked) {
        await this.d.store.finish(rollout.id, e.deviceId, 'canceled', { reason: REVOKED });
        started = true;
      } else if (toStart.length < budget) {
        toStart.push(e);
      }
    }
    await inParallel(toStart, STARTS_IN_PARALLEL, async (e) => {
      const state = await this.d.targets.setModel(e.deviceId, model);
      await this.d.store.start(rollout.id, e.deviceId, state.version);
    });
    return started || toStart.length > 0;
  }

  /** Moves past every wave that is done (all devices finished and, with a soak, served long enough). */
  private async currentWave(rollout: Rollout, executions: Execution[]): Promise<number> {
    let wave = rollout.currentWave;
    const waveDone = (w: number) => {
      const members = executions.filter((e) => e.wave === w);
      return (
        members.every((e) => TERMINAL.has(e.status)) &&
        soakRemainingMs(rollout.policy, members, this.now()) === 0
      );
    };
    while (waveDone(wave) && executions.some((e) => e.wave > wave)) wave++;
    if (wave !== rollout.currentWave) await this.d.store.setWave(rollout.id, wave);
    return wave;
  }

  /**
   * Cancels what has not started, rolls back what did, and only then marks the rollout
   * aborted: a crash half-way leaves it running, and the next tick aborts it again.
   */
  private async abort(rollout: Rollout, executions: Execution[], reason: string): Promise<void> {
    this.d.logger.warn({ rollout: rollout.id, reason }, 'rollout aborting');
    for (const e of executions) {
      if (e.status === 'queued' || e.status === 'in_progress') {
        await this.d.store.finish(rollout.id, e.deviceId, 'canceled', { reason: 'rollout aborted' });
      }
    }
    if (rollout.policy.rollbackOnAbort) {
      for (const e of executions) {
        if (e.status !== 'succeeded' && e.status !== 'in_progress') continue;
        const previous = e.previousModelId ? await this.d.models.find(e.previousModelId) : undefined;
        if (!previous) continue; // nothing to go back to: the device keeps what it runs
        if ((await this.d.devices.get(e.deviceId)).revoked) continue; // revoked: no target at all
        await this.d.targets.setModel(e.deviceId, previous);
        await this.d.store.markRolledBack(rollout.id, e.deviceId);
      }
    }
    await this.d.store.setStatus(rollout.id, 'aborted', reason);
    await this.d.audit.record('fleetml', 'rollout.abort', { id: rollout.id, reason });
    this.d.onChange?.(rollout.id);
  }
}
