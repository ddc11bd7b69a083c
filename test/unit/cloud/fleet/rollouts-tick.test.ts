import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { RolloutEngine, type RolloutEngineDeps } from '../../../../cloud/fleet/rollouts/engine.js';
import { RolloutStore } from '../../../../cloud/fleet/rollouts/store.js';
import { openDatabase } from '../../../../cloud/fleet/store/db.js';
import { openFleetStore } from '../../../../cloud/fleet/store/kysely.js';

// Every device report asks the engine for a tick, and a pass reads every running rollout whole:
// at 10,000 devices one pass per report was the rollout engine's cost. Reports that arrive
// before a pass starts share it.
describe('rollout engine ticks', () => {
  it('runs one pass for a burst of tick() calls, and a new pass for a call after it', async () => {
    const store = new RolloutStore(await openFleetStore({ sqlite: openDatabase({ path: ':memory:' }) }));
    let passes = 0;
    const active = store.active.bind(store);
    store.active = async () => {
      passes++;
      return active();
    };
    // With no rollout running, a pass reads only the store: the other parts are never used.
    const unused = undefined as never;
    const deps: RolloutEngineDeps = {
      store,
      devices: unused,
      models: unused,
      targets: unused,
      telemetry: unused,
      audit: unused,
      logger: pino({ level: 'silent' }),
    };
    const engine = new RolloutEngine(deps);
    await Promise.all(Array.from({ length: 500 }, () => engine.tick()));
    expect(passes).toBe(1);
    await engine.tick();
    expect(passes).toBe(2);
  });

  // Timers and device reports fire ticks and forget them: a rejected pass would be an unhandled
  // rejection, which ends the process (a replica died this way when PostgreSQL restarted).
  it('skips a pass whose store read fails instead of rejecting, and runs the next one', async () => {
    const store = new RolloutStore(await openFleetStore({ sqlite: openDatabase({ path: ':memory:' }) }));
    const active = store.active.bind(store);
    let down = true;
    let passes = 0;
    store.active = async () => {
      passes++;
      if (down)
        throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
      return active();
    };
    const warnings: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => warnings.push(JSON.parse(line).msg) });
    const unused = undefined as never;
    const engine = new RolloutEngine({
      store,
      devices: unused,
      models: unused,
      targets: unused,
      telemetry: unused,
      audit: unused,
      logger,
    });
    await expect(engine.tick()).resolves.toBeUndefined();
    expect(warnings).toEqual(['rollout pass skipped: store unavailable']);
    down = false;
    await engine.tick();
    expect(passes).toBe(2);
    expect(warnings).toHaveLength(1);
  });
});
