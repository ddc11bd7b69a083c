import type { Logger } from '../../shared/logger.js';

/** 'done': finished with (applied or failed for good); 'retry': try again after a backoff; 'superseded': cut short. */
export type AttemptOutcome = 'done' | 'retry' | 'superseded';

export interface RetryWorkerOptions<T> {
  /** The item to work on next, or null when there is nothing to do. Read again after every attempt. */
  pending: () => T | null;
  /** One attempt at an item; `signal` aborts when kick() or stop() interrupts it. */
  attempt: (item: T, first: boolean, signal: AbortSignal) => Promise<AttemptOutcome>;
  backoffInitialMs: number;
  backoffMaxMs: number;
  logger: Logger;
}

/**
 * Works through pending items one attempt at a time, backing off between retries of the same
 * item. The loop drains what is pending and ends; kick() starts it again when it is not running
 * (no worker restarts itself). A new item interrupts the attempt or backoff in progress.
 */
export class RetryWorker<T> {
  private running: Promise<void> | null = null;
  private abort: AbortController | null = null;
  private wake: (() => void) | null = null;
  private stopping = false;

  constructor(private readonly o: RetryWorkerOptions<T>) {}

  get stopped(): boolean {
    return this.stopping;
  }

  /**
   * Something new is pending: cut the current attempt or backoff short, and run the loop unless
   * it runs. A loop that crashed (e.g. state.json cannot be written: disk full) is logged, and
   * the next kick runs a new one.
   */
  kick(): void {
    this.interrupt();
    if (this.running || this.stopping) return;
    this.running = this.loop()
      .catch((error) => {
        this.o.logger.error({ err: error }, 'reconcile loop failed');
      })
      .finally(() => {
        this.running = null;
      });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.interrupt();
    await this.running;
  }

  /** Resolves when the loop has ended (nothing pending). */
  async settled(): Promise<void> {
    while (this.running !== null) await this.running;
  }

  private interrupt(): void {
    this.abort?.abort();
    this.wake?.();
  }

  private next(): T | null {
    return this.stopping ? null : this.o.pending();
  }

  private async loop(): Promise<void> {
    let attempts = 0;
    let previous: T | null = null;
    for (let item = this.next(); item; item = this.next()) {
      if (item !== previous) attempts = 0;
      previous = item;
      const outcome = await this.attemptOnce(item, attempts === 0);
      if (outcome === 'retry')
        await this.sleep(backoff(attempts++, this.o.backoffInitialMs, this.o.backoffMaxMs));
    }
  }

  private async attemptOnce(item: T, first: boolean): Promise<AttemptOutcome> {
    this.abort = new AbortController();
    try {
      return await this.o.attempt(item, first, this.abort.signal);
    } finally {
      this.abort = null;
    }
  }

  /** Waits `delayMs`, or less when kick() or stop() wakes the worker. */
  private async sleep(delayMs: number): Promise<void> {
    this.o.logger.debug({ delayMs }, 'backing off');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, delayMs);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.wake = null;
  }
}

/** Exponential backoff with ±20 % jitter so a fleet does not retry in lockstep. */
export function backoff(attempt: number, initialMs: number, maxMs: number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}
