import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FleetError } from '../shared/errors/index.js';
import type { Logger } from '../shared/logger.js';
import { createLogger } from '../shared/logger.js';
import { deviceTopic, encodeJson, PROTOCOL_VERSION } from '../shared/protocol/index.js';
import type { AgentConfig } from './config.js';
import { type DeviceIdentity, enroll, loadIdentity, pinFleetKey, saveIdentity } from './enroll.js';
import { readBoardFacts, readHardwareFacts } from './hardware.js';
import { Installer } from './install/installer.js';
import { Reconciler } from './reconcile.js';
import { Reporter } from './reporter.js';
import { resolveOnnxruntime } from './runtime/onnxruntime-source.js';
import {
  chooseExecutionProvider,
  configureOnnxruntime,
  detectExecutionProviders,
  onnxruntimeVersion,
} from './runtime/ort.js';
import { InferenceService } from './serve/service.js';
import { StateStore } from './store/agent-state.js';
import { TelemetryCollector } from './telemetry/collector.js';
import { LatencyProbe } from './telemetry/latency-probe.js';
import { TelemetryOutbox } from './telemetry/outbox.js';
import { TelemetrySender } from './telemetry/sender.js';
import { loadPinnedCa } from './tls.js';
import { Downloader } from './transfer/downloader.js';
import { MqttTransport } from './transport/mqtt.js';

export const AGENT_VERSION = '0.1.0';

/** Bytes a block frame adds around the data (magic, length, JSON header), with margin. */
const FRAME_OVERHEAD_BYTES = 1024;

export interface StartAgentOptions {
  config: AgentConfig;
  /** Default: a pino logger named 'agent' at config.logLevel. */
  logger?: Logger;
}

export interface AgentHandle {
  identity: DeviceIdentity;
  transport: MqttTransport;
  reconciler: Reconciler;
  telemetry: TelemetryCollector;
  sender: TelemetrySender;
  outbox: TelemetryOutbox;
  downloader: Downloader;
  /** The local inference service (null when config.serve is off). */
  inference: InferenceService | null;
  /** Graceful stop: publishes offline, closes the connection and the outbox. */
  stop(): Promise<void>;
  /** Drops the process's connection without DISCONNECT, as a crash would (tests). */
  crash(): Promise<void>;
}

/** Wires the agent together: the one place that creates its components. */
export async function startAgent(options: StartAgentOptions): Promise<AgentHandle> {
  const { config } = options;
  const logger =
    options.logger ??
    createLogger({
      name: 'agent',
      level: config.logLevel,
      pretty: config.logFormat === 'auto' ? undefined : config.logFormat === 'pretty',
    });
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });

  // A 32-bit ARM OS is refused before anything else, with the OS to install instead.
  const board = await readBoardFacts(config.factsRoot || '/');
  logger.info({ board: board.model, kind: board.kind, cpu: board.cpuModel }, 'board');
  configureOnnxruntime({
    source: await resolveOnnxruntime(config.onnxruntimePath, join(config.dataDir, 'onnxruntime')),
    tensorRt: {
      engineCacheDir: join(config.dataDir, 'tensorrt', 'engines'),
      timingCacheDir: join(config.dataDir, 'tensorrt', 'timing'),
    },
  });
  await mkdir(join(config.dataDir, 'tensorrt', 'engines'), { recursive: true });
  await mkdir(join(config.dataDir, 'tensorrt', 'timing'), { recursive: true });
  const probe = await detectExecutionProviders();
  logger.info(
    { available: probe.available, failures: probe.failures, onnxruntime: probe.onnxruntime },
    'execution providers',
  );
  if (probe.hint) logger.info(probe.hint);
  if (probe.available.length === 0) {
    throw new FleetError(
      'RUNTIME_LOAD',
      `onnxruntime ${probe.onnxruntime.path} does not load: ${probe.failures.cpu ?? 'unknown reason'}`,
      { onnxruntime: probe.onnxruntime },
    );
  }
  const ep = await chooseExecutionProvider(config.ep);

  const caPem = await loadPinnedCa(config);
  let identity = await loadIdentity(config.dataDir);
  if (!identity) {
    const facts = await readHardwareFacts({
      executionProviders: probe.available,
      onnxruntimeVersion: onnxruntimeVersion(),
      factsRoot: config.factsRoot,
    });
    // --name: two agents on one host are two devices with names of their own.
    const hardware = config.name ? { ...facts, hostname: config.name } : facts;
    identity = await enroll({
      url: config.cloudUrl,
      caPem,
      token: config.enrollToken,
      fleetKey: config.fleetKey,
      hardware,
      agentVersion: AGENT_VERSION,
      logger,
      timeoutS: config.enrollTimeoutS,
    });
    await saveIdentity(config.dataDir, identity);
    logger.info({ deviceId: identity.deviceId }, 'enrolled');
  }
  const pinned = pinFleetKey(identity, config.fleetKey);
  if (pinned !== identity) {
    identity = pinned;
    await saveIdentity(config.dataDir, identity);
  }
  if (!identity.fleetPublicKey) {
    logger.error('no fleet key is pinned: every target is refused until one is given with --fleet-key');
  }
  const deviceId = identity.deviceId;
  const log = logger.child({ deviceId });

  const state = new StateStore(config.dataDir);
  await state.load();

  const statusTopic = deviceTopic(deviceId, 'status');
  const status = (online: boolean) =>
    encodeJson({ v: PROTOCOL_VERSION, online, at: new Date().toISOString() });
  const transport = new MqttTransport({
    url: config.cloudUrl,
    caPem,
    clientId: `fleetml-${deviceId}`,
    username: deviceId,
    password: identity.secret,
    will: { topic: statusTopic, payload: status(false), retain: true, qos: 1 },
    keepaliveS: config.keepaliveS,
    reconnectPeriodMs: config.reconnectPeriodMs,
    logger: log,
  });

  const reporter = new Reporter(transport, deviceId, log);
  const maxBlockSize = Math.min(config.blockSize, config.brokerMaxPayloadBytes - FRAME_OVERHEAD_BYTES);
  const downloader = new Downloader({
    transport,
    deviceId,
    dir: join(config.dataDir, 'transfers'),
    logger: log,
    windowBlocks: config.windowBlocks,
    blockTimeoutMs: config.blockTimeoutMs,
    stallMs: config.transferStallMs,
  });
  const installer = new Installer({
    dataDir: config.dataDir,
    state,
    ep,
    profile: { intraOpThreads: config.intraOpThreads, graphOptimizationLevel: config.graphOptimizationLevel },
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

  const sessionProfile = {
    intraOpThreads: config.intraOpThreads,
    graphOptimizationLevel: config.graphOptimizationLevel,
  };
  const inference = config.serve
    ? new InferenceService({
        dataDir: config.dataDir,
        ep,
        profile: sessionProfile,
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
      })
    : null;
  const activeSlotPath = () => (state.state.activeSlot ? installer.modelPath(state.state.activeSlot) : null);

  const reconciler = new Reconciler({
    identity,
    state,
    downloader,
    installer,
    reporter,
    logger: log,
    maxBlockSize,
    backoffInitialMs: config.backoffInitialMs,
    backoffMaxMs: config.backoffMaxMs,
    clockSkewMs: config.clockSkewMs,
    clockTrustWindowMs: config.clockTrustWindowMs,
    onActivated: (manifest) => {
      const slotPath = activeSlotPath();
      if (inference && slotPath) void inference.activate(manifest, slotPath);
    },
  });

  const latencyProbe = new LatencyProbe({
    runs: config.latencyProbeRuns,
    budgetMs: config.latencyProbeBudgetMs,
    dynamicDim: config.dynamicDim,
    ep,
    profile: { intraOpThreads: config.intraOpThreads, graphOptimizationLevel: config.graphOptimizationLevel },
    activeModel: () => {
      const slot = state.state.activeSlot;
      const info = state.active();
      return slot && info
        ? { sha256: info.sha256, path: installer.modelPath(slot), servingShapes: info.servingShapes }
        : null;
    },
    logger: log,
  });
  const outbox = new TelemetryOutbox({
    path: join(config.dataDir, 'outbox.sqlite'),
    maxRecords: config.outboxMaxRecords,
  });
  const sender = new TelemetrySender({
    transport,
    outbox,
    deviceId,
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

  transport.onConnect(() => {
    log.info('connected to the cloud');
    transport.publish(statusTopic, status(true), { qos: 1, retain: true }).catch(() => {});
    reconciler.report();
    sender.onConnect();
  });
  await sender.start();
  await transport.subscribe(
    deviceTopic(deviceId, 'target'),
    (payload) => reconciler.onTargetMessage(payload),
    1,
  );
  if (inference) {
    // A taken port does not stop the agent (delivery and telemetry go on); the cloud hears why
    // this device does not serve.
    const listenError = await inference.start();
    if (listenError) reporter.event('error', listenError.code, listenError.message);
    await inference.restore(activeSlotPath());
  }
  telemetry.start();
  void telemetry.tick();

  let stopped = false;
  const shutdown = async (graceful: boolean) => {
    if (stopped) return;
    stopped = true;
    // A crash says no goodbye: drop the socket first so nothing below reaches the broker.
    if (!graceful) transport.destroy();
    await telemetry.stop();
    await latencyProbe.release();
    await inference?.stop();
    await reconciler.stop();
    await sender.stop();
    if (graceful && transport.connected) {
      await transport.publish(statusTopic, status(false), { qos: 1, retain: true }).catch(() => {});
      await transport.close();
    } else {
      transport.destroy();
    }
    outbox.close();
  };

  return {
    identity,
    transport,
    reconciler,
    telemetry,
    sender,
    outbox,
    downloader,
    inference,
    stop: () => shutdown(true),
    crash: () => shutdown(false),
  };
}
