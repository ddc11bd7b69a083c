import {
  decodeJson,
  encodeJson,
  type Manifest,
  PROTOCOL_VERSION,
  type TelemetryRecord,
  telemetryAckSchema,
} from '../../shared/protocol/index.js';
import type { SimulatorCounters } from './counters.js';
import type { Draws } from './distributions.js';
import type { SimulatorOptions } from './options.js';

interface Pending {
  record: TelemetryRecord;
  sentAt: number;
}

/** The model a simulated device runs, with the target version that brought it. */
export interface SimActiveModel {
  manifest: Manifest;
  version: number;
}

/** Publishes one payload on one of the device's channels (QoS 1). */
export type SimPublish = (channel: 'telemetry' | 'event', payload: Buffer) => void;

const MAX_RECORDS_PER_BATCH = 1000;

/**
 * A simulated device's telemetry, as the agent's outbox does it: records drawn from the device's
 * latency distribution, kept until the cloud acknowledges their seq range and resent when the
 * acknowledgement is overdue, plus the odd event.
 */
export class SimTelemetry {
  private seq: number;
  private readonly outbox = new Map<number, Pending>();

  constructor(
    private readonly o: SimulatorOptions,
    private readonly draws: Draws,
    private readonly counters: SimulatorCounters,
    /** This device's median latency, ms. */
    private readonly medianMs: number,
    private readonly active: () => SimActiveModel | null,
    private readonly firstSeq: number,
  ) {
    this.seq = firstSeq;
  }

  /** Records sent and not yet acknowledged. */
  get unacked(): number {
    return this.outbox.size;
  }

  /**
   * What an audit needs: every seq from the first up to `nextSeq` (exclusive) was sent, and all
   * of them but `unacked` were acknowledged (so must be stored).
   */
  ledger(): { firstSeq: number; nextSeq: number; unacked: number[] } {
    return { firstSeq: this.firstSeq, nextSeq: this.seq, unacked: [...this.outbox.keys()] };
  }

  /**
   * New records (unless `fresh` is false: the run is draining), plus any whose acknowledgement
   * is overdue (the agent's outbox resends them).
   */
  send(publish: SimPublish, fresh = true): void {
    const now = Date.now();
    const batch = this.overdue(now);
    for (let i = 0; fresh && i < this.o.recordsPerBatch; i++) {
      const record = this.newRecord();
      this.outbox.set(record.seq, { record, sentAt: now });
      batch.push(record);
      this.counters.recordsSent++;
    }
    batch.sort((a, b) => a.seq - b.seq);
    // The cloud acknowledges a batch as one seq range: send contiguous runs as their own batches.
    for (const run of contiguousRuns(batch)) {
      publish('telemetry', encodeJson({ v: PROTOCOL_VERSION, records: run }));
      this.counters.batchesSent++;
    }
    if (this.draws.uniform() < this.o.eventProbability) {
      const event = {
        v: PROTOCOL_VERSION,
        level: 'info',
        code: 'SIM_HEARTBEAT',
        message: 'simulated event',
        at: new Date().toISOString(),
      };
      publish('event', encodeJson(event));
      this.counters.events++;
    }
  }

  /** Forgets the acknowledged seq range. Throws on a payload that is not an acknowledgement. */
  onAck(payload: Buffer): void {
    const ack = decodeJson(telemetryAckSchema, payload);
    for (let seq = ack.from; seq <= ack.to; seq++) {
      if (this.outbox.delete(seq)) this.counters.recordsAcked++;
    }
  }

  /** Records whose acknowledgement is overdue, marked as sent again now. */
  private overdue(now: number): TelemetryRecord[] {
    const batch: TelemetryRecord[] = [];
    for (const pending of this.outbox.values()) {
      if (batch.length >= MAX_RECORDS_PER_BATCH - this.o.recordsPerBatch) break;
      if (now - pending.sentAt < this.o.resendAfterS * 1000) continue;
      pending.sentAt = now;
      batch.push(pending.record);
      this.counters.recordsResent++;
    }
    return batch;
  }

  private newRecord(): TelemetryRecord {
    const inferences = Math.max(1, Math.round(this.draws.uniform(50, 150) * this.o.telemetryIntervalS));
    const active = this.active();
    const model = active?.manifest;
    return {
      seq: this.seq++,
      at: new Date().toISOString(),
      cpuLoad: Math.min(100, this.draws.logNormal(25, 0.4)),
      memUsedBytes: Math.round(this.draws.uniform(1.2, 2.2) * 1024 ** 3),
      memTotalBytes: 4 * 1024 ** 3,
      tempC: Math.round(this.draws.uniform(42, 68) * 10) / 10,
      modelId: model?.modelId ?? null,
      latency: model ? this.draws.latencyWindow(inferences, this.medianMs, this.o.latencySigma) : null,
      modelVersion: active?.version ?? null,
    };
  }
}

/** Splits records sorted by seq into runs of consecutive seqs. */
export function contiguousRuns(records: TelemetryRecord[]): TelemetryRecord[][] {
  const runs: TelemetryRecord[][] = [];
  for (const record of records) {
    const run = runs[runs.length - 1];
    if (run && run[run.length - 1].seq === record.seq - 1) run.push(record);
    else runs.push([record]);
  }
  return runs;
}
