/**
 * Counts events per key (a client address) in a sliding window. Bounded: at most `maxKeys`
 * keys are tracked (the oldest go first) and at most `max + 1` timestamps per key.
 */
export class WindowCounter {
  private readonly hits = new Map<string, number[]>();

  constructor(
    /** Events allowed per key per window. */
    readonly max: number,
    /** Window length in ms. */
    readonly windowMs: number,
    private readonly maxKeys = 10_000,
  ) {}

  private recent(key: string, now: number): number[] {
    const list = (this.hits.get(key) ?? []).filter((t) => now - t < this.windowMs);
    if (list.length === 0) this.hits.delete(key);
    else this.hits.set(key, list);
    return list;
  }

  /** True when `key` already used up its events in this window. */
  over(key: string, now = Date.now()): boolean {
    return this.recent(key, now).length >= this.max;
  }

  /** Records an event; returns false when it went past the limit. */
  hit(key: string, now = Date.now()): boolean {
    const list = this.recent(key, now);
    list.push(now);
    if (list.length > this.max + 1) list.shift();
    this.hits.set(key, list);
    if (this.hits.size > this.maxKeys) this.hits.delete(this.hits.keys().next().value as string);
    return list.length <= this.max;
  }
}
