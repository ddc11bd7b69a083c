import { setMaxListeners } from 'node:events';
import type { Logger } from '../../shared/logger.js';
import { emptyCounters, type SimulatorCounters } from './counters.js';
import { SimDevice } from './device.js';
import { Draws } from './distributions.js';
import { enrollSimulated, type SimIdentity } from './enroll.js';
import { resolveSimulatorOptions, type SimulatorOptions } from './options.js';

/** What `fleetml simulate --json` prints. */
export interface SimulationResult extends SimulatorCounters {
  /** Devices asked for. */
  devices: number;
  /** Devices connected at the end of the run (before the clean disconnect). */
  online: number;
  /** Records still unacknowledged when the run ended. */
  recordsUnacked: number;
  durationS: number;
}

export interface SimulationHandle {
  readonly counters: SimulatorCounters;
  readonly devices: SimDevice[];
  /** Resolves when the run ended (duration elapsed, or stop() called) and every device disconnected. */
  done: Promise<SimulationResult>;
  /** Ends the run early. */
  stop(): void;
}

async function runPool<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await work(items[next++]);
  });
  await Promise.all(workers);
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });

/** One run's options, counters and devices, as its steps share them. */
interface SimRun {
  o: SimulatorOptions;
  counters: SimulatorCounters;
  devices: SimDevice[];
  signal: AbortSignal;
  started: number;
  identities: SimIdentity[];
  logger?: Logger;
}

/**
 * Runs N simulated agents from this process against a real cloud (through its broker): each
 * enrolls with the token, connects over its own MQTT connection spread across the ramp, and
 * reports until the duration is up. The cloud cannot tell them from agents.
 */
export function startSimulation(
  input: Partial<SimulatorOptions> & Pick<SimulatorOptions, 'cloud' | 'enrollToken'>,
  logger?: Logger,
  /** Devices enrolled by an earlier run (benchmarks reuse them); index i is device i. */
  identities: SimIdentity[] = [],
): SimulationHandle {
  const o = resolveSimulatorOptions(input);
  const abort = new AbortController();
  setMaxListeners(0, abort.signal); // one waiter per device being launched
  const run: SimRun = {
    o,
    counters: emptyCounters(),
    devices: [],
    signal: abort.signal,
    started: Date.now(),
    identities,
    logger,
  };
  const deadline = setTimeout(() => abort.abort(), o.durationS * 1000);
  const done = (async (): Promise<SimulationResult> => {
    const indices = Array.from({ length: o.devices }, (_, i) => i);
    await runPool(indices, o.enrollConcurrency, (index) => launch(run, index));
    await sleep(Math.max(0, run.started + o.durationS * 1000 - Date.now()), abort.signal);
    clearTimeout(deadline);
    return finish(run);
  })();
  return { counters: run.counters, devices: run.devices, done, stop: () => abort.abort() };
}

/** Enrolls (or reuses) device `index` in its slot of the ramp and connects it. */
async function launch(run: SimRun, index: number): Promise<void> {
  const { o, counters, signal, identities } = run;
  if (signal.aborted) return;
  // Spread connections over the ramp: device i starts no earlier than its slot.
  const slot = run.started + (o.rampS * 1000 * index) / Math.max(1, o.devices);
  await sleep(Math.max(0, slot - Date.now()), signal);
  if (signal.aborted) return;
  const draws = new Draws(o.seed * 1_000_003 + index);
  try {
    const identity =
      identities[index] ??
      (await enrollSimulated({
        url: o.cloud,
        token: o.enrollToken,
        hostname: `${o.namePrefix}-${index}`,
        retryS: o.enrollRetryS,
        signal,
        caPem: o.caPem,
      }));
    counters.enrolled++;
    if (signal.aborted) return;
    // A device of an earlier run continues above its old sequence numbers, as an agent does.
    const firstSeq = identities[index] ? Date.now() : 0;
    const device = new SimDevice(identity, o, draws, counters, firstSeq);
    run.devices.push(device);
    await device.connect();
  } catch (error) {
    counters.enrollFailed++;
    run.logger?.warn({ index, err: (error as Error).message }, 'simulated device did not start');
  }
}

/** Lets the last batches be acknowledged (bounded by drainS), disconnects every device, sums up. */
async function finish({ o, counters, devices, started }: SimRun): Promise<SimulationResult> {
  const online = devices.filter((d) => d.connected).length;
  // New records would keep some device's outbox non-empty at every instant of the drain.
  for (const device of devices) device.drain();
  const drainUntil = Date.now() + o.drainS * 1000;
  while (Date.now() < drainUntil && devices.some((d) => d.connected && d.unacked > 0)) {
    await new Promise((r) => setTimeout(r, 200));
  }
  await runPool(devices, 200, (d) => d.stop());
  return {
    ...counters,
    devices: o.devices,
    online,
    recordsUnacked: devices.reduce((sum, d) => sum + d.unacked, 0),
    durationS: Math.round((Date.now() - started) / 100) / 10,
  };
}
