/**
 * Keeps the best epoch's parameters and decides when training stops: after `patience` epochs
 * without a better score (0 = never early).
 */
export class BestEpochKeeper {
  private best: { score: number; epoch: number; values: Map<string, Float32Array> } | undefined;
  private stale = 0;

  constructor(private readonly patience: number) {}

  /** Records an epoch's score (higher is better); returns true when training should stop. */
  observe(epoch: number, score: number, values: ReadonlyMap<string, Float32Array>): boolean {
    if (!this.best || score > this.best.score) {
      // The session's views change with the next run: keep copies.
      this.best = { score, epoch, values: new Map([...values].map(([k, v]) => [k, v.slice()])) };
      this.stale = 0;
      return false;
    }
    return this.patience > 0 && ++this.stale >= this.patience;
  }

  get epoch(): number {
    return this.best?.epoch ?? 0;
  }

  get values(): Map<string, Float32Array> {
    if (!this.best) throw new Error('no epoch was observed');
    return this.best.values;
  }
}

/** The score an epoch is judged by: validation accuracy, else teacher agreement, else −loss. */
export function epochScore(record: { loss: number; accuracy?: number; agreement?: number }): number {
  return record.accuracy ?? record.agreement ?? -record.loss;
}
