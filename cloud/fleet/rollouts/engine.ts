import { randomUUID } from 'node:crypto';
import { FleetError } from '../../../shared/errors/index.js';
import type { Device } from '../inventory/devices.js';
import { planWaves } from './plan.js';
import { resolveDevices } from './selection.js';
import { RolloutStep, type RolloutStepDeps } from './step.js';
import { DEFAULT_POLICY, type Rollout, type RolloutPolicy, type Selector } from './types.js';

export interface RolloutEngineDeps extends RolloutStepDeps {
  /** With several cloud replicas, only the leader advances rollouts (cloud/fleet/leader/). Default: always. */
  isLeader?: () => boolean;
}

/**
 * Drives rollouts from their stored state: creates them, takes operators' pause, resume and
 * cancel, and ticks every running one forward (rollouts/step.ts: outcomes, abort rules,
 * rollback, waves). Every decision is re-derived from the store on each tick, so a restarted
 * cloud, or a replica that takes over the lead, simply continues where it stopped.
 */
export class RolloutEngine {
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  /** The pass that has not started yet, shared by every tick() until it does. */
  private queued: Promise<void> | undefined;
  private readonly step: RolloutStep;

  constructor(private readonly d: RolloutEngineDeps) {
    this.step = new RolloutStep(d);
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
  resolveDevices(selector: Selector): Promise<Device[]> {
    return resolveDevices(this.d.devices, selector);
  }

  async create(
    modelRef: string,
    selector: Selector,
    policy: Partial<RolloutPolicy>,
    actor: string,
  ): Promise<Rollout> {
    const model = await this.d.models.get(modelRef);
    await this.d.targets.checkDeployable(model);
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
    await this.d.audit.record(actor, 'rollout.create', {
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
    await this.d.audit.record(actor, `rollout.${to}`, { id });
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
    if (this.queued !== undefined) return this.queued;
    const run = async () => {
      await new Promise((resolve) => setImmediate(resolve));
      this.queued = undefined; // calls from now on need a pass after this one
      if (this.d.isLeader && !this.d.isLeader()) return;
      let active: Rollout[];
      try {
        active = await this.d.store.active();
      } catch (error) {
        // The store is unreachable (a database restart): this pass is skipped, the next one
        // (a second later, or the next report) starts over from the stored state. Never a
        // rejection: ticks are fired and forgotten by timers and device reports.
        this.d.logger.warn({ err: (error as Error).message }, 'rollout pass skipped: store unavailable');
        return;
      }
      for (const rollout of active) {
        if (rollout.status !== 'running') continue;
        try {
          await this.step.advance(rollout);
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
}
