import { isStoreUnavailable } from '../store/unavailable.js';

export interface StoreRetryOptions {
  /** Longest a report waits for the store, ms from its arrival, before it is dropped. Default 60 000. */
  maxWaitMs: number;
  /** First pause after a failed attempt, ms (doubling up to 2 s). Default 250. */
  firstDelayMs: number;
  /** The clock deadlines are kept on (ms); Date.now. */
  now: () => number;
}

export const DEFAULT_STORE_RETRY: StoreRetryOptions = {
  maxWaitMs: 60_000,
  firstDelayMs: 250,
  now: () => Date.now(),
};

const MAX_DELAY_MS = 2_000;

/**
 * Runs `work` again while it fails only because the store is unreachable (a database restart),
 * with growing pauses, until it succeeds, fails for another reason, or `deadline` (ms on
 * `options.now`) passed. Device reports other than telemetry are sent once: dropping one because
 * PostgreSQL restarted would leave a rollout waiting for a device that already answered.
 */
export async function untilStoreAnswers<T>(
  work: () => Promise<T>,
  deadline: number,
  options: Pick<StoreRetryOptions, 'firstDelayMs' | 'now'>,
  onRetry?: (error: unknown) => void,
): Promise<T> {
  for (let delay = options.firstDelayMs; ; delay = Math.min(delay * 2, MAX_DELAY_MS)) {
    try {
      return await work();
    } catch (error) {
      const left = deadline - options.now();
      if (!isStoreUnavailable(error) || left <= 0) throw error;
      onRetry?.(error);
      // The last attempt comes at the deadline, not a whole pause before or after it.
      await new Promise((resolve) => setTimeout(resolve, Math.min(delay, left)));
    }
  }
}

/**
 * Work keyed by device, run one after the other per key (different keys run concurrently). A
 * report waiting for the store holds back the device's later reports, so they are applied in the
 * order the device sent them, not in the order their retries happened to succeed.
 */
export class KeyedSerial {
  private readonly chains = new Map<string, Promise<void>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.chains.get(key) ?? Promise.resolve();
    const result = previous.then(work);
    const settled = result.then(
      () => {},
      () => {},
    );
    this.chains.set(key, settled);
    void settled.then(() => {
      if (this.chains.get(key) === settled) this.chains.delete(key);
    });
    return result;
  }

  /** Keys with work queued or running. */
  get size(): number {
    return this.chains.size;
  }
}

/**
 * A device's once-sent reports: applied in the order they arrived, each retried while the store
 * is unreachable for at most `maxWaitMs` from its arrival. Counting from its turn instead gave
 * every report queued behind a waiting one a full wait of its own, one after the other: through
 * a long outage a device's queue drained one report a minute, long after the reports were stale,
 * and grew while reports kept coming.
 */
export class DeviceReportQueue {
  private readonly serial = new KeyedSerial();

  constructor(
    private readonly options: StoreRetryOptions,
    private readonly onRetry?: (error: unknown) => void,
  ) {}

  run<T>(deviceId: string, work: () => Promise<T>): Promise<T> {
    const deadline = this.options.now() + this.options.maxWaitMs;
    return this.serial.run(deviceId, () => untilStoreAnswers(work, deadline, this.options, this.onRetry));
  }

  /** Devices with reports queued or being applied. */
  get size(): number {
    return this.serial.size;
  }
}
