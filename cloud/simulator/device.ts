import mqtt, { type MqttClient } from 'mqtt';
import {
  type AgentPhase,
  decodeJson,
  deviceTopic,
  encodeJson,
  encodeStatus,
  type Manifest,
  PROTOCOL_VERSION,
  targetStateSchema,
} from '../../shared/protocol/index.js';
import type { SimulatorCounters } from './counters.js';
import type { Draws } from './distributions.js';
import type { SimIdentity } from './enroll.js';
import type { SimulatorOptions } from './options.js';
import { type SimActiveModel, SimTelemetry } from './telemetry.js';
import { SimTransfer } from './transfer.js';

/**
 * One simulated agent on its own MQTT connection, speaking the agent's protocol: retained
 * status with a last will, target state → block download → state reports → benchmark report,
 * telemetry batches kept until the cloud acknowledges them (resent otherwise), and the odd
 * event. It runs no model: latencies are drawn from the device's own log-normal distribution.
 */
export class SimDevice {
  private client: MqttClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly telemetry: SimTelemetry;
  private readonly medianMs: number;
  private targetVersion: number | null = null;
  private active: SimActiveModel | null = null;
  private transfer: SimTransfer | undefined;
  private stopped = false;

  constructor(
    readonly identity: SimIdentity,
    private readonly o: SimulatorOptions,
    private readonly draws: Draws,
    private readonly counters: SimulatorCounters,
    firstSeq = 0,
  ) {
    // Devices of one fleet differ (silicon, cooling, load): each gets its own median.
    this.medianMs = draws.logNormal(o.latencyMedianMs, 0.25);
    this.telemetry = new SimTelemetry(o, draws, counters, this.medianMs, () => this.active, firstSeq);
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  /** Connects and starts reporting; resolves on the first CONNACK. */
  connect(): Promise<void> {
    const { deviceId, secret } = this.identity;
    const client = mqtt.connect(this.o.cloud, {
      clientId: `fleetml-${deviceId}`,
      username: deviceId,
      password: secret,
      protocolVersion: 4,
      clean: true,
      keepalive: 60,
      reconnectPeriod: Math.round(this.draws.uniform(1500, 4000)),
      connectTimeout: 30_000,
      queueQoSZero: false,
      resubscribe: false,
      ...(this.o.caPem ? { ca: this.o.caPem, rejectUnauthorized: true } : {}),
      will: { topic: deviceTopic(deviceId, 'status'), payload: encodeStatus(false), retain: true, qos: 1 },
    });
    this.client = client;
    client.on('error', () => {}); // reconnects on its own
    client.on('close', () => {
      if (this.connectedOnce) this.counters.connected--;
      this.connectedOnce = false;
    });
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    return new Promise((resolve) => {
      client.on('connect', () => {
        this.counters.connected++;
        this.connectedOnce = true;
        const topics = ['target', 'transfer/blk', 'telemetry/ack'] as const;
        client.subscribe(
          topics.map((c) => deviceTopic(deviceId, c)),
          { qos: 1 },
          () => {
            client.publish(deviceTopic(deviceId, 'status'), encodeStatus(true), { qos: 1, retain: true });
            // As the agent does on every connect: a report sent while the cloud was not
            // subscribed (a broker restart) is not lost for good.
            if (this.lastState) this.report(...this.lastState);
            this.scheduleTelemetry(this.draws.uniform(0, this.o.telemetryIntervalS * 1000));
            resolve();
          },
        );
      });
    });
  }

  private connectedOnce = false;
  /** The last benchmark report, sent again (unchanged) with the state when a target is republished. */
  private lastBench: { sha256: string } | null = null;
  /** The last state reported, sent again after every reconnect. */
  private lastState: [AgentPhase, number | null, { code: string; message: string } | null] | null = null;

  /** Records sent and not yet acknowledged. */
  get unacked(): number {
    return this.telemetry.unacked;
  }

  /** The seqs this device sent and which of them are still unacknowledged (benchmark audits). */
  telemetryLedger(): { deviceId: string; firstSeq: number; nextSeq: number; unacked: number[] } {
    return { deviceId: this.identity.deviceId, ...this.telemetry.ledger() };
  }

  /** Stops reporting and disconnects cleanly (status offline, no will). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const client = this.client;
    if (!client) return;
    if (client.connected) {
      await client
        .publishAsync(deviceTopic(this.identity.deviceId, 'status'), encodeStatus(false), {
          qos: 1,
          retain: true,
        })
        .catch(() => {});
    }
    await client.endAsync().catch(() => {});
  }

  private scheduleTelemetry(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.sendTelemetry();
      this.transfer?.retryIfStalled(10_000);
      this.scheduleTelemetry(this.draws.jitteredMs(this.o.telemetryIntervalS));
    }, delayMs);
  }

  private sendTelemetry(): void {
    const client = this.client;
    if (!client?.connected) return;
    this.telemetry.send(
      (channel, payload) => client.publish(deviceTopic(this.identity.deviceId, channel), payload, { qos: 1 }),
      !this.draining,
    );
  }

  private draining = false;

  /** The run is ending: no new records, but unacknowledged ones are still resent until stop(). */
  drain(): void {
    this.draining = true;
  }

  private onMessage(topic: string, payload: Buffer): void {
    const channel = topic.slice(topic.indexOf('/d/') + 3 + this.identity.deviceId.length + 1);
    try {
      if (channel === 'telemetry/ack') this.telemetry.onAck(payload);
      else if (channel === 'target') this.onTarget(payload);
      else if (channel === 'transfer/blk') this.onBlock(payload);
    } catch {
      // A message the simulator cannot read is dropped, as the agent drops it (with a coded log).
    }
  }

  private onTarget(payload: Buffer): void {
    const target = decodeJson(targetStateSchema, payload);
    if (this.targetVersion !== null && target.version <= this.targetVersion) {
      // As the agent does: a target published again (the cloud reconnected) asks for the state
      // again, since reports sent while the cloud was not subscribed are gone.
      if (this.lastState) this.report(...this.lastState);
      if (this.lastBench && this.lastBench.sha256 === this.active?.manifest.sha256)
        this.client?.publish(deviceTopic(this.identity.deviceId, 'bench'), encodeJson(this.lastBench), {
          qos: 1,
        });
      return;
    }
    this.targetVersion = target.version;
    const manifest = target.model?.manifest;
    if (!manifest) {
      this.report('idle', null);
      return;
    }
    if (this.active?.manifest.sha256 === manifest.sha256) {
      this.active = { manifest, version: target.version };
      this.report('active', null);
      return;
    }
    this.download(manifest);
  }

  private download(manifest: Manifest): void {
    this.transfer = new SimTransfer(manifest, this.o.blocksPerRequest, (request) =>
      this.client?.publish(deviceTopic(this.identity.deviceId, 'transfer/req'), encodeJson(request), {
        qos: 1,
      }),
    );
    this.report('downloading', 0);
    this.transfer.start();
  }

  private onBlock(payload: Buffer): void {
    const transfer = this.transfer;
    if (!transfer) return;
    const result = transfer.accept(payload);
    if (result.kind === 'ignored') return;
    if (result.kind === 'refused') {
      // As the agent does: an artifact the cloud does not offer this device fails for good;
      // any other refusal (the cloud's store unreachable, say) is retried after a pause.
      this.transfer = undefined;
      this.counters.transferFailures++;
      const final = result.code === 'ARTIFACT_NOT_FOUND';
      this.report('failed', null, {
        code: final ? 'ARTIFACT_NOT_FOUND' : 'TRANSFER_TRUNCATED',
        message: `simulated download refused by the cloud: ${result.code}`,
      });
      if (!final) this.retryDownload(transfer.manifest);
      return;
    }
    this.counters.blocksReceived++;
    if (result.kind === 'bad') {
      this.transfer = undefined;
      this.counters.transferFailures++;
      this.report('failed', null, {
        code: 'TRANSFER_HASH',
        message: 'simulated download failed verification',
      });
      this.retryDownload(transfer.manifest);
    }
    if (result.kind === 'done') {
      this.transfer = undefined;
      void this.install(transfer.manifest);
    }
  }

  /** A retryable failure: the same target is tried again after a pause (the agent backs off too). */
  private retryDownload(manifest: Manifest): void {
    const version = this.targetVersion;
    setTimeout(
      () => {
        if (this.stopped || this.targetVersion !== version || this.transfer) return;
        this.download(manifest);
      },
      this.draws.uniform(2000, 5000),
    ).unref();
  }

  /** Installing and benchmarking take the time they take on a small device (0.3–1.5 s here). */
  private async install(manifest: Manifest): Promise<void> {
    const version = this.targetVersion ?? 0;
    this.report('installing', null);
    await new Promise((r) => setTimeout(r, this.draws.uniform(100, 500)));
    this.report('benchmarking', null);
    await new Promise((r) => setTimeout(r, this.draws.uniform(200, 1000)));
    if (this.stopped || this.targetVersion !== version) return;
    const stats = this.draws.latencyWindow(200, this.medianMs, this.o.latencySigma);
    const bench = {
      v: PROTOCOL_VERSION,
      modelId: manifest.modelId,
      sha256: manifest.sha256,
      ep: 'cpu',
      runs: stats.count,
      warmupRuns: 10,
      p50Ms: stats.p50Ms,
      p90Ms: stats.p90Ms,
      p99Ms: stats.p99Ms,
      maxMs: stats.maxMs,
      meanMs: stats.meanMs,
      throughput: 1000 / stats.meanMs,
      loadMs: this.draws.uniform(20, 200),
      at: new Date().toISOString(),
    };
    this.lastBench = bench;
    this.client?.publish(deviceTopic(this.identity.deviceId, 'bench'), encodeJson(bench), { qos: 1 });
    this.active = { manifest, version };
    this.counters.modelsActivated++;
    this.report('active', null);
  }

  private report(
    phase: AgentPhase,
    progress: number | null,
    error: { code: string; message: string } | null = null,
  ): void {
    this.lastState = [phase, progress, error];
    const m = this.active;
    const state = {
      v: PROTOCOL_VERSION,
      targetVersion: this.targetVersion,
      phase,
      activeModel: m ? { modelId: m.manifest.modelId, sha256: m.manifest.sha256, version: m.version } : null,
      progress,
      error,
      at: new Date().toISOString(),
    };
    this.client?.publish(deviceTopic(this.identity.deviceId, 'state'), encodeJson(state), { qos: 1 });
  }
}
