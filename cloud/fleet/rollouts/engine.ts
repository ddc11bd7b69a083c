import { randomUUID } from 'node:crypto';
import { FleetError } from '../../../shared/errors/index.js';
import type { Logger } from '../../../shared/logger.js';
import type { TargetService } from '../delivery/targets.js';
import type { TelemetryRepository } from '../ingest/telemetry.js';
import type { AuditLog } from '../inventory/audit.js';
import type { Device, DeviceRepository } from '../inventory/devices.js';
import type { ModelRegistry } from '../inventory/models.js';
import { evaluateExecution } from './outcome.js';
import { planWaves } from './plan.js';
import type { RolloutStore } from './store.js';
import { type ServingSummaryQuery, soakRemainingMs, trafficVerdict } from './traffic-gate.js';
import {
  DEFAULT_POLICY,
  type Execution,
  FAILURES,
  type Rollout,
  type RolloutPolicy,
  type Selector,
  TERMINAL,
} from './types.js';

const REVOKED = 'device revoked';

export interface RolloutEngineDeps {
  store: RolloutStore;
  devices: DeviceRepository;
  models: ModelRegistry;
  targets: TargetService;
  telemetry: TelemetryRepository;
  audit: AuditLog;
  logger: Logger;
  /** Called whenever a rollout or one of its devices changed (the console streams it). */
  onChange?: (rolloutId: string) => void;
  now?: () => number;
  /** Real-traffic figures for the soak rules (monitor.serving.summary by fleet); without it they are off. */
  serving?: ServingSummaryQuery;
  /** With several cloud replicas, only the leader advances rollouts (cloud/fleet/leader/). Default: always. */
  isLeader?: () => boolean;
}

/**
 * Drives rollouts from their stored state: start waves, read device outcomes, apply abort
 * rules, roll back. Every decision is re-derived from SQLite on each tick, so a restarted
 * cloud simply continues where it stopped.
 */
export class RolloutEngine {
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  /** The pass that has not started yet, shared by every tick() until it does. */
  private queued: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(private readonly d: RolloutEngineDeps) {
    this.now = d.now ?? Date.now;
  }

  /** Ticks every `intervalMs` (default 1 s) until stop(). */
  start(intervalMs = 1000): void {
    this.timer = setInterval(() => void this.tick(), intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.ticking;
  }

  /** The devices a selector names, online ones first (so the canary can answer). */
  async resolveDevices(selector: Selector): Promise<Device[]> {
    const all = new Map((await this.d.devices.list()).map((d) => [d.id, d]));
    const chosen = new Map<string, Device>();
    for (const id of selector.devices ?? []) {
      const device = all.get(id);
      if (!device) throw new FleetError('NOT_FOUND', `no device ${id}`, { deviceId: id });
      if (device.revoked) throw new FleetError('DEVICE_REVOKED', `device ${device.id} is revoked`);
      chosen.set(device.id, device);
    }
    for (const d of all.values()) {
      if (d.revoked) continue;
      if (
        (selector.tag && d.tags.includes(selector.tag)) ||
        (selector.profile && d.profile === selector.profile)
      )
        chosen.set(d.id, d);
    }
    return [...chosen.values()].sort((a, b) => Number(b.online) - Number(a.online));
  }

  async create(
    modelRef: string,
    selector: Selector,
    policy: Partial<RolloutPolicy>,
    actor: string,
  ): Promise<Rollout> {
    const model = await this.d.models.get(modelRef);
    this.d.targets.checkDeployable(model);
    const full = { ...DEFAULT_POLICY, ...policy };
    const devices = await this.resolveDevices(selector);
    if (devices.length === 0) throw new FleetError('INPUT_INVALID', 'the selector matches no device');
    const deviceIds = devices.map((d) => d.id);
    const previous = new Map(devices.map((d) => [d.id, d.activeModelId]));
    const rollout = await this.d.store.create({
      id: `r-${randomUUID().slice(0, 8)}`,
      modelId: model.id,
      selector,
      policy: full,
      createdBy: actor,
      waves: planWaves(deviceIds, full),
      previousModel: (id) => previous.get(id) ?? null,
    });
    this.d.audit.record(actor, 'rollout.create', {
      id: rollout.id,
      model: model.id,
      devices: deviceIds.length,
      policy: full,
    });
    this.d.logger.info(
      { rollout: rollout.id, model: model.id, devices: deviceIds.length },
      'rollout created',
    );
    await this.tick();
    return (await this.d.store.get(rollout.id))!;
  }

  async pause(id: string, actor: string): Promise<void> {
    await this.transition(id, ['running'], 'paused', actor);
  }

  async resume(id: string, actor: string): Promise<void> {
    await this.transition(id, ['paused'], 'running', actor);
    await this.tick();
  }

  /** Cancels queued devices; devices already updated keep the new model. */
  async cancel(id: string, actor: string): Promise<void> {
    await this.transition(id, ['running', 'paused'], 'canceled', actor);
    for (const e of await this.d.store.executions(id))
      if (e.status === 'queued') await this.d.store.finish(id, e.deviceId, 'canceled');
    this.d.onChange?.(id);
  }

  private async transition(
    id: string,
    from: Rollout['status'][],
    to: Rollout['status'],
    actor: string,
  ): Promise<void> {
    const rollout = await this.d.store.get(id);
    if (!rollout) throw new FleetError('NOT_FOUND', `no rollout ${id}`);
    if (!from.includes(rollout.status))
      throw new FleetError('CONFLICT', `rollout ${id} is ${rollout.status}`);
    await this.d.store.setStatus(id, to, `${to} by ${actor}`);
    this.d.audit.record(actor, `rollout.${to}`, { id });
    this.d.onChange?.(id);
  }

  /**
   * One pass over every running rollout that starts after this call. Serialised, and coalesced:
   * every device report asks for a tick, and a pass reads the whole rollout, so calls made
   * before a pass starts share it. A pass starts after the reports already received have been
   * handled (setImmediate: SQLite queries never yield to I/O): one pass per burst of reports,
   * not one per report.
   */
  tick(): Promise<void> {
    if (this.queued) return this.queued;
    const run = async () => {
      await new Promise((resolve) => setImmediate(resolve));
      this.queued = undefined; // calls from now on need a pass after this one
      if (this.d.isLeader && !this.d.isLeader()) return;
      for (const rollout of await this.d.store.active()) {
        if (rollout.status !== 'running') continue;
        try {
          await this.advance(rollout);
        } catch (error) {
          this.d.logger.error({ err: error, rollout: rollout.id }, 'rollout step failed');
        }
      }
    };
    const next = (this.ticking ?? Promise.resolve()).then(run);
    this.queued = next;
    // The chain itself never rejects (callers see the error of their pass).
    const settled = next.catch(() => {});
    this.ticking = settled;
    void settled.finally(() => {
      if (this.ticking === settled) this.ticking = undefined;
    });
    return next;
  }

  private async advance(rollout: Rollout): Promise<void> {
    const model = await this.d.models.get(rollout.modelId);
    let changed = false;
    for (const e of await this.d.store.executions(rollout.id)) {
      if (e.status !== 'in_progress') continue;
      const outcome = evaluateExecution(
        e,
        await this.d.devices.get(e.deviceId),
        model.sha256,
        this.d.telemetry.latestBench(e.deviceId),
        this.now(),
        rollout.policy.deviceTimeoutS,
      );
      if (outcome) {
        await this.d.store.finish(rollout.id, e.deviceId, outcome.status, outcome);
        changed = true;
      }
    }
    const executions = await this.d.store.executions(rollout.id);
    const abortReason = this.abortReason(rollout, executions);
    if (abortReason) {
      await this.abort(rollout, executions, abortReason);
      return;
    }
    changed = (await this.startDue(rollout, executions)) || changed;
    const after = await this.d.store.executions(rollout.id);
    const lastWave = Math.max(...after.map((e) => e.wave));
    const soaking =
      soakRemainingMs(
        rollout.policy,
        after.filter((e) => e.wave === lastWave),
        this.now(),
      ) > 0;
    if (after.every((e) => TERMINAL.has(e.status)) && !soaking) {
      const failures = after.filter((e) => FAILURES.has(e.status)).length;
      await this.d.store.setStatus(
        rollout.id,
        'succeeded',
        failures ? `${failures} device(s) failed within the budget` : null,
      );
      this.d.logger.info({ rollout: rollout.id, devices: after.length, failures }, 'rollout finished');
      changed = true;
    }
    if (changed) this.d.onChange?.(rollout.id);
  }

  private abortReason(rollout: Rollout, executions: Execution[]): string | null {
    const p = rollout.policy;
    const finished = executions.filter((e) => TERMINAL.has(e.status) && e.status !== 'canceled');
    const failed = finished.filter((e) => FAILURES.has(e.status));
    if (finished.length >= p.abortMinDevices && failed.length > 0) {
      const percent = (100 * failed.length) / finished.length;
      if (percent > p.abortFailurePercent) {
        return `${failed.length} of ${finished.length} devices failed (${percent.toFixed(0)} % > ${p.abortFailurePercent} %)`;
      }
    }
    if (p.latencyObjectiveMs !== null && p.canaryPercent > 0) {
      const slow = executions.find(
        (e) =>
          e.wave === 0 && e.status === 'succeeded' && e.p99Ms !== null && e.p99Ms > p.latencyObjectiveMs!,
      );
      if (slow)
        return `canary ${slow.deviceId} p99 ${slow.p99Ms!.toFixed(2)} ms exceeds the objective ${p.latencyObjectiveMs} ms`;
    }
    return this.trafficReason(rollout, executions);
  }

  /** The soak rules: every finished, soaked wave against the old release on its own devices. */
  private trafficReason(rollout: Rollout, executions: Execution[]): string | null {
    const query = this.d.serving;
    if (!query) return null;
    const waves = [...new Set(executions.map((e) => e.wave))].sort((a, b) => a - b);
    for (const w of waves) {
      const wave = executions.filter((e) => e.wave === w);
      if (!wave.every((e) => TERMINAL.has(e.status))) continue;
      if (soakRemainingMs(rollout.policy, wave, this.now()) > 0) continue;
      const reason = trafficVerdict(rollout.policy, rollout.modelId, wave, this.now(), query);
      if (reason) return `wave ${w}: ${reason}`;
    }
    return null;
  }

  /** Starts queued devices of the current wave once every earlier wave has finished. */
  private async startDue(rollout: Rollout, executions: Execution[]): Promise<boolean> {
    const model = await this.d.models.get(rollout.modelId);
    let wave = rollout.currentWave;
    // A wave is done when all its devices finished and, with a soak, served long enough.
    const waveDone = (w: number) => {
      const wave = executions.filter((e) => e.wave === w);
      return (
        wave.every((e) => TERMINAL.has(e.status)) && soakRemainingMs(rollout.policy, wave, this.now()) === 0
      );
    };
    while (waveDone(wave) && executions.some((e) => e.wave > wave)) wave++;
    if (wave !== rollout.currentWave) await this.d.store.setWave(rollout.id, wave);
    let budget = Number.POSITIVE_INFINITY;
    if (rollout.policy.maxPerMinute > 0) {
      const since = new Date(this.now() - 60_000).toISOString();
      budget = rollout.policy.maxPerMinute - (await this.d.store.startedSince(rollout.id, since));
    }
    let started = false;
    for (const e of executions) {
      if (e.wave !== wave || e.status !== 'queued' || budget <= 0) continue;
      // Revoked since the rollout was planned: it gets no target (and counts as no failure).
      if ((await this.d.devices.get(e.deviceId)).revoked) {
        await this.d.store.finish(rollout.id, e.deviceId, 'canceled', { reason: REVOKED });
        started = true;
        continue;
      }
      const state = await this.d.targets.setModel(e.deviceId, model);
      await this.d.store.start(rollout.id, e.deviceId, state.version);
      budget--;
      started = true;
    }
    return started;
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
    this.d.audit.record('fleetml', 'rollout.abort', { id: rollout.id, reason });
    this.d.onChange?.(rollout.id);
  }
}
