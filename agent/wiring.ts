import { join } from 'node:path';
import type { Logger } from '../shared/logger.js';
import type { ExecutionProvider } from '../shared/protocol/index.js';
import type { AgentConfig } from './config.js';
import type { DeviceIdentity } from './enroll.js';
import { Installer } from './install/installer.js';
import { Reconciler } from './reconcile/reconciler.js';
import { Reporter } from './reporter.js';
import type { SessionProfile } from './runtime/ort.js';
import { InferenceService } from './serve/service.js';
import type { StateStore } from './store/agent-state.js';
import { TelemetryCollector } from './telemetry/collector.js';
import { LatencyProbe } from './telemetry/latency-probe.js';
import { TelemetryOutbox } from './telemetry/outbox.js';
import { TelemetrySender } from './telemetry/sender.js';
import { Downloader } from './transfer/downloader.js';
import type { MqttTransport } from './transport/mqtt.js';
import { AGENT_VERSION } from './version.js';

/** Bytes a block frame adds around the data (magic, length, JSON header), with margin. */
const FRAME_OVERHEAD_BYTES = 1024;

/** What every component of a started agent is built from. */
export interface AgentBase {
  config: AgentConfig;
  identity: DeviceIdentity;
  state: StateStore;
  transport: MqttTransport;
  ep: ExecutionProvider;
  log: Logger;
}

export interface AgentParts {
  /** Publishes the agent's state, events and bench reports. */
  reporter: Reporter;
  downloader: Downloader;
  installer: Installer;
  /** The local inference service (null when config.serve is off). */
  inference: InferenceService | null;
  reconciler: Reconciler;
  latencyProbe: LatencyProbe;
  outbox: TelemetryOutbox;
  sender: TelemetrySender;
  telemetry: TelemetryCollector;
}

/** Creates the agent's components (nothing is started here but the outbox's database). */
export function buildAgentParts(base: AgentBase): AgentParts {
  const reporter = new Reporter(base.transport, base.identity.deviceId, base.log);
  const downloader = createDownloader(base);
  const installer = createInstaller(base);
  const inference = createInference(base);
  const reconciler = createReconciler(base, { reporter, downloader, installer, inference });
  return {
    reporter,
    downloader,
    installer,
    inference,
    reconciler,
    ...createTelemetry(base, installer, inference),
  };
}

/** The model slot state.json names active, as a path (null before the first install). */
export function activeSlotPath(base: AgentBase, installer: Installer): string | null {
  const slot = base.state.state.activeSlot;
  return slot ? installer.modelPath(slot) : null;
}

function sessionProfile(config: AgentConfig): Omit<SessionProfile, 'ep'> {
  return { intraOpThreads: config.intraOpThreads, graphOptimizationLevel: config.graphOptimizationLevel };
}

function createDownloader({ config, identity, transport, log }: AgentBase): Downloader {
  return new Downloader({
    transport,
    deviceId: identity.deviceId,
    dir: join(config.dataDir, 'transfers'),
    logger: log,
    windowBlocks: config.windowBlocks,
    blockTimeoutMs: config.blockTimeoutMs,
    stallMs: config.transferStallMs,
  });
}

function createInstaller({ config, state, ep, log }: AgentBase): Installer {
  return new Installer({
    dataDir: config.dataDir,
    state,
    ep,
    profile: sessionProfile(config),
    bench: {
      warmupRuns: config.benchWarmupRuns,
      runs: config.benchRuns,
      budgetMs: config.benchBudgetMs,
      dynamicDim: config.dynamicDim,
    },
    logger: log,
    minFreeDiskBytes: config.minFreeDiskBytes,
    modelCheckTimeoutMs: config.modelCheckTimeoutMs,
  });
}

function createInference({ config, ep, log }: AgentBase): InferenceService | null {
  if (!config.serve) return null;
  return new InferenceService({
    dataDir: config.dataDir,
    ep,
    profile: sessionProfile(config),
    dynamicDim: config.dynamicDim,
    logger: log,
    hookCommand: config.activationHook,
    batching: config.serveBatching,
    http: {
      host: config.serveHost,
      port: config.servePort,
      socketPath: config.serveSocket,
      token: config.serveToken,
      maxBodyBytes: config.serveMaxBodyBytes,
      serverVersion: AGENT_VERSION,
    },
  });
}

function createReconciler(
  base: AgentBase,
  parts: Pick<AgentParts, 'reporter' | 'downloader' | 'installer' | 'inference'>,
): Reconciler {
  const { config, identity, state, log } = base;
  const { reporter, downloader, installer, inference } = parts;
  return new Reconciler({
    identity,
    state,
    downloader,
    installer,
    reporter,
    logger: log,
    maxBlockSize: Math.min(config.blockSize, config.brokerMaxPayloadBytes - FRAME_OVERHEAD_BYTES),
    backoffInitialMs: config.backoffInitialMs,
    backoffMaxMs: config.backoffMaxMs,
    clockSkewMs: config.clockSkewMs,
    clockTrustWindowMs: config.clockTrustWindowMs,
    onActivated: (manifest) => {
      const slotPath = activeSlotPath(base, installer);
      if (inference && slotPath) void inference.activate(manifest, slotPath);
    },
  });
}

function createTelemetry(
  base: AgentBase,
  installer: Installer,
  inference: InferenceService | null,
): Pick<AgentParts, 'latencyProbe' | 'outbox' | 'sender' | 'telemetry'> {
  const { config, identity, state, transport, log } = base;
  const latencyProbe = createLatencyProbe(base, installer);
  const outbox = new TelemetryOutbox({
    path: join(config.dataDir, 'outbox.sqlite'),
    maxRecords: config.outboxMaxRecords,
  });
  const sender = new TelemetrySender({
    transport,
    outbox,
    deviceId: identity.deviceId,
    batchMax: config.telemetryBatchMax,
    ackMode: config.telemetryAck,
    ackTimeoutMs: config.telemetryAckTimeoutMs,
    logger: log,
  });
  const telemetry = new TelemetryCollector({
    intervalS: config.telemetryIntervalS,
    diskPath: config.dataDir,
    // The probe is the fallback for devices without traffic: with served requests, their
    // sketches are the latency and the probe does not run.
    latency: () => (inference && inference.traffic.pending() > 0 ? null : latencyProbe.measure()),
    serving: inference ? () => inference.traffic.take() : undefined,
    activeModel: () => {
      const active = state.active();
      return active ? { modelId: active.modelId, version: active.version } : null;
    },
    sink: (record) => {
      outbox.append(record);
      void sender.kick();
    },
    logger: log,
  });
  return { latencyProbe, outbox, sender, telemetry };
}

function createLatencyProbe({ config, state, ep, log }: AgentBase, installer: Installer): LatencyProbe {
  return new LatencyProbe({
    runs: config.latencyProbeRuns,
    budgetMs: config.latencyProbeBudgetMs,
    dynamicDim: config.dynamicDim,
    ep,
    profile: sessionProfile(config),
    activeModel: () => {
      const slot = state.state.activeSlot;
      const info = state.active();
      return slot && info
        ? { sha256: info.sha256, path: installer.modelPath(slot), servingShapes: info.servingShapes }
        : null;
    },
    logger: log,
  });
}
