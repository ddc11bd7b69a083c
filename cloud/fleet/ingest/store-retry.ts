import { isStoreUnavailable } from '../store/unavailable.js';

export interface StoreRetryOptions {
  /** Longest a message waits for the store to come back before it is dropped, ms. Default 60 000. */
  maxWaitMs: number;
  /** First pause after a failed attempt, ms (doubling up to 2 s). Default 250. */
  firstDelayMs: number;
}

export const DEFAULT_STORE_RETRY: StoreRetryOptions = { maxWaitMs: 60_000, firstDelayMs: 250 };

const MAX_DELAY_MS = 2_000;

/**
 * Runs `work` again while it fails only because the store is unreachable (a database restart),
 * with growing pauses, until it succeeds, fails for another reason, or `maxWaitMs` passed.
 * Device reports other than telemetry are sent once: dropping one because PostgreSQL restarted
 * would leave a rollout waiting for a device that already answered.
 */
export async function untilStoreAnswers<T>(
  work: () => Promise<T>,
  options: StoreRetryOptions,
  onRetry?: (error: unknown) => void,
): Promise<T> {
  const deadline = Date.now() + options.maxWaitMs;
  for (let delay = options.firstDelayMs; ; delay = Math.min(delay * 2, MAX_DELAY_MS)) {
    try {
      return await work();
    } catch (error) {
      if (!isStoreUnavailable(error) || Date.now() + delay > deadline) throw error;
      onRetry?.(error);
      await new Promise((resolve) => setTimeout(resolve, delay));
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
