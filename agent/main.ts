import { mkdir } from 'node:fs/promises';
import type { Logger } from '../shared/logger.js';
import { createLogger } from '../shared/logger.js';
import { deviceTopic, encodeStatus } from '../shared/protocol/index.js';
import type { AgentConfig } from './config.js';
import type { DeviceIdentity } from './enroll.js';
import type { Reconciler } from './reconcile/reconciler.js';
import type { InferenceService } from './serve/service.js';
import { ensureIdentity, prepareRuntime } from './startup.js';
import { StateStore } from './store/agent-state.js';
import type { TelemetryCollector } from './telemetry/collector.js';
import type { TelemetryOutbox } from './telemetry/outbox.js';
import type { TelemetrySender } from './telemetry/sender.js';
import { loadPinnedCa } from './tls.js';
import type { Downloader } from './transfer/downloader.js';
import { MqttTransport } from './transport/mqtt.js';
import { type AgentBase, type AgentParts, activeSlotPath, buildAgentParts } from './wiring.js';

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

/** Wires the agent together: the one place that creates its components (through wiring.ts). */
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
  const { ep, available } = await prepareRuntime(config, logger);
  const caPem = await loadPinnedCa(config);
  const identity = await ensureIdentity(config, caPem, available, logger);
  const log = logger.child({ deviceId: identity.deviceId });
  const state = new StateStore(config.dataDir);
  await state.load();
  const transport = new MqttTransport({
    url: config.cloudUrl,
    caPem,
    clientId: `fleetml-${identity.deviceId}`,
    username: identity.deviceId,
    password: identity.secret,
    will: {
      topic: deviceTopic(identity.deviceId, 'status'),
      payload: encodeStatus(false),
      retain: true,
      qos: 1,
    },
    keepaliveS: config.keepaliveS,
    reconnectPeriodMs: config.reconnectPeriodMs,
    logger: log,
  });
  const base: AgentBase = { config, identity, state, transport, ep, log };
  const parts = buildAgentParts(base);
  await startParts(base, parts);
  const shutdown = shutdownOnce(base, parts);
  return {
    identity,
    transport,
    reconciler: parts.reconciler,
    telemetry: parts.telemetry,
    sender: parts.sender,
    outbox: parts.outbox,
    downloader: parts.downloader,
    inference: parts.inference,
    stop: () => shutdown(true),
    crash: () => shutdown(false),
  };
}

/** Connect handling, the target subscription, the inference service and telemetry. */
async function startParts(base: AgentBase, parts: AgentParts): Promise<void> {
  const { identity, transport, log } = base;
  const { reconciler, sender, inference, telemetry, installer } = parts;
  const deviceId = identity.deviceId;
  transport.onConnect(() => {
    log.info('connected to the cloud');
    transport
      .publish(deviceTopic(deviceId, 'status'), encodeStatus(true), { qos: 1, retain: true })
      .catch(() => {});
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
    if (listenError) parts.reporter.event('error', listenError.code, listenError.message);
    await inference.restore(activeSlotPath(base, installer));
  }
  telemetry.start();
  void telemetry.tick();
}

/** Stops everything once; a crash (graceful false) says no goodbye to the broker. */
function shutdownOnce(
  { identity, transport }: AgentBase,
  parts: AgentParts,
): (graceful: boolean) => Promise<void> {
  let stopped = false;
  return async (graceful) => {
    if (stopped) return;
    stopped = true;
    // A crash says no goodbye: drop the socket first so nothing below reaches the broker.
    if (!graceful) transport.destroy();
    await parts.telemetry.stop();
    await parts.latencyProbe.release();
    await parts.inference?.stop();
    await parts.reconciler.stop();
    await parts.sender.stop();
    if (graceful && transport.connected) {
      const topic = deviceTopic(identity.deviceId, 'status');
      await transport.publish(topic, encodeStatus(false), { qos: 1, retain: true }).catch(() => {});
      await transport.close();
    } else {
      transport.destroy();
    }
    parts.outbox.close();
  };
}
