import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FleetError } from '../shared/errors/index.js';
import type { Logger } from '../shared/logger.js';
import type { ExecutionProvider } from '../shared/protocol/index.js';
import type { AgentConfig } from './config.js';
import {
  clearPendingEnrollRequest,
  type DeviceIdentity,
  enroll,
  loadIdentity,
  pendingEnrollRequestId,
  saveIdentity,
} from './enroll.js';
import { pinFleetKey } from './fleet-key-pins.js';
import { readBoardFacts, readHardwareFacts } from './hardware.js';
import { resolveOnnxruntime } from './runtime/onnxruntime-source.js';
import {
  chooseExecutionProvider,
  configureOnnxruntime,
  detectExecutionProviders,
  onnxruntimeVersion,
} from './runtime/ort.js';
import { AGENT_VERSION } from './version.js';

export interface PreparedRuntime {
  /** The execution provider models run on. */
  ep: ExecutionProvider;
  /** Every provider that loads here (reported at enrollment). */
  available: ExecutionProvider[];
}

/**
 * Reads the board and loads onnxruntime: a 32-bit ARM OS is refused before anything else, with
 * the OS to install instead; an onnxruntime that does not load is a RUNTIME_LOAD error.
 */
export async function prepareRuntime(config: AgentConfig, logger: Logger): Promise<PreparedRuntime> {
  const board = await readBoardFacts(config.factsRoot || '/');
  logger.info({ board: board.model, kind: board.kind, cpu: board.cpuModel }, 'board');
  const engineCacheDir = join(config.dataDir, 'tensorrt', 'engines');
  const timingCacheDir = join(config.dataDir, 'tensorrt', 'timing');
  configureOnnxruntime({
    source: await resolveOnnxruntime(config.onnxruntimePath, join(config.dataDir, 'onnxruntime')),
    tensorRt: { engineCacheDir, timingCacheDir },
  });
  await mkdir(engineCacheDir, { recursive: true });
  await mkdir(timingCacheDir, { recursive: true });
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
  return { ep: await chooseExecutionProvider(config.ep), available: probe.available };
}

/**
 * The device's identity: the one saved in the data directory, or a new one from enrollment.
 * A fleet key given with --fleet-key is pinned (and saved) here.
 */
export async function ensureIdentity(
  config: AgentConfig,
  caPem: string | undefined,
  providers: ExecutionProvider[],
  logger: Logger,
): Promise<DeviceIdentity> {
  let identity =
    (await loadIdentity(config.dataDir)) ?? (await enrollDevice(config, caPem, providers, logger));
  const pinned = pinFleetKey(identity, config.fleetKey);
  if (pinned !== identity) {
    identity = pinned;
    await saveIdentity(config.dataDir, identity);
  }
  if (!identity.fleetPublicKey) {
    logger.error('no fleet key is pinned: every target is refused until one is given with --fleet-key');
  }
  return identity;
}

/** Enrolls with the hardware facts read here (named --name when given) and saves the identity. */
export async function enrollDevice(
  config: AgentConfig,
  caPem: string | undefined,
  providers: ExecutionProvider[],
  logger: Logger,
  /** Gives up waiting for the cloud's reply (`fleetml agent enroll --timeout`). */
  signal?: AbortSignal,
): Promise<DeviceIdentity> {
  const facts = await readHardwareFacts({
    executionProviders: providers,
    onnxruntimeVersion: onnxruntimeVersion(),
    factsRoot: config.factsRoot,
  });
  // --name: two agents on one host are two devices with names of their own.
  const hardware = config.name ? { ...facts, hostname: config.name } : facts;
  const identity = await enroll({
    url: config.cloudUrl,
    caPem,
    token: config.enrollToken,
    fleetKey: config.fleetKey,
    hardware,
    agentVersion: AGENT_VERSION,
    logger,
    timeoutS: config.enrollTimeoutS,
    signal,
    requestId: config.enrollToken
      ? await pendingEnrollRequestId(config.dataDir, config.enrollToken)
      : undefined,
  });
  await saveIdentity(config.dataDir, identity);
  await clearPendingEnrollRequest(config.dataDir);
  logger.info({ deviceId: identity.deviceId }, 'enrolled');
  return identity;
}
