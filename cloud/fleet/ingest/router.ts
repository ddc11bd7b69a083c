import { FleetError, isFleetError, toFleetError } from '../../../shared/errors/index.js';
import {
  type BenchReport,
  benchReportSchema,
  decodeJson,
  deviceTopic,
  encodeJson,
  enrollRequestSchema,
  eventSchema,
  parseTopic,
  type StateReport,
  stateReportSchema,
  statusSchema,
  telemetryBatchSchema,
} from '../../../shared/protocol/index.js';
import { type EnrollmentDeps, handleEnrollRequest } from '../identity/enrollment.js';
import type { DeviceRepository } from '../inventory/devices.js';
import { codedStoreError } from '../store/unavailable.js';
import type { TelemetryIngest } from './ingest-queue.js';
import { DEFAULT_STORE_RETRY, DeviceReportQueue, type StoreRetryOptions } from './store-retry.js';
import type { TelemetryRepository } from './telemetry.js';

export interface RouterDeps extends EnrollmentDeps {
  telemetry: TelemetryRepository;
  devices: DeviceRepository;
  /** Where telemetry batches go: group commit (ingest-queue.ts, store/pg-ingest.ts) or directIngest. */
  ingest: TelemetryIngest;
  /** Serves block requests (the transfer server). */
  onTransferRequest?: (deviceId: string, payload: Buffer) => Promise<void>;
  /** Sees every valid state and bench report (delivery/device-audit.ts: alarms, golden fidelity). */
  onReport?: (deviceId: string, report: { state: StateReport } | { bench: BenchReport }) => void;
  /** Called after a device's state or benchmark changed (e.g. to advance rollouts, notify the console). */
  onDeviceUpdate?: (deviceId: string, kind: 'state' | 'bench' | 'telemetry' | 'status') => void;
  /**
   * How long status, state, bench and event reports wait for an unreachable store (they are sent
   * once; telemetry is not retried here: the device resends what was not acknowledged).
   */
  storeRetry?: Partial<StoreRetryOptions>;
}

export interface RouterStats {
  handled: number;
  rejected: number;
  rejectedByCode: Record<string, number>;
  /** Rejected telemetry batches (any code), for the records-rejected metric. */
  rejectedTelemetry: number;
  /** Attempts of device reports repeated because the store was unreachable. */
  storeRetries: number;
}

/** Reports a device sends once, applied in order and retried while the store is unreachable. */
const ONCE_CHANNELS = new Set(['status', 'state', 'bench', 'event']);

/** The device a once-sent report is from, or null for any other topic. */
function onceSentFrom(topic: string): string | null {
  const parsed = parseTopic(topic);
  return parsed && parsed.kind !== 'enroll' && ONCE_CHANNELS.has(parsed.channel) ? parsed.deviceId : null;
}

/**
 * Routes every MQTT message the cloud receives to its handler. A malformed, oversized or
 * unknown message is dropped with a logged, coded error; it never throws into the MQTT client.
 */
export function createMessageRouter(deps: RouterDeps): {
  handle: (topic: string, payload: Buffer) => Promise<void>;
  stats: RouterStats;
} {
  const stats: RouterStats = {
    handled: 0,
    rejected: 0,
    rejectedByCode: {},
    rejectedTelemetry: 0,
    storeRetries: 0,
  };
  const reports = new DeviceReportQueue(
    { ...DEFAULT_STORE_RETRY, ...deps.storeRetry },
    () => stats.storeRetries++,
  );

  const reject = (topic: string, error: unknown) => {
    const fleetError = toFleetError(error);
    stats.rejected++;
    stats.rejectedByCode[fleetError.code] = (stats.rejectedByCode[fleetError.code] ?? 0) + 1;
    if (topic.endsWith('/telemetry')) stats.rejectedTelemetry++;
    deps.logger.warn({ code: fleetError.code, topic, err: fleetError.message }, 'message rejected');
  };

  /** Handles one message; throws what the caller rejects it with. */
  const handleOnce = async (topic: string, payload: Buffer): Promise<void> => {
    const parsed = parseTopic(topic);
    if (!parsed) {
      reject(topic, new FleetError('MSG_TOPIC', `not a fleetml topic: ${topic}`));
      return;
    }
    if (parsed.kind === 'enroll') {
      if (parsed.direction === 'req') {
        const request = decodeJson(enrollRequestSchema, payload);
        // The reply goes to the topic the request came on: the broker binds that topic to the
        // requesting client's id, so a request cannot direct the reply to someone else.
        await handleEnrollRequest(deps, request, parsed.requestId);
        stats.handled++;
      }
      return;
    }
    const { deviceId, channel } = parsed;
    if (channel === 'target' || channel === 'transfer/blk' || channel === 'telemetry/ack') return; // the cloud's own
    // Status changes need the stored online flag; every other message only needs to know the
    // device exists and is not revoked, which a few-seconds-old read answers without a query.
    const device =
      channel === 'status' ? await deps.devices.find(deviceId) : await deps.devices.findRecent(deviceId);
    if (!device || device.revoked) {
      // Retained status messages of removed devices are expected after a reset: not an attack.
      if (channel !== 'status')
        reject(topic, new FleetError('FORBIDDEN', `unknown or revoked device ${deviceId}`));
      return;
    }
    switch (channel) {
      case 'status': {
        const status = decodeJson(statusSchema, payload);
        const now = new Date().toISOString();
        await deps.devices.setOnline(deviceId, status.online, now);
        // Only a change is an event: the retained status comes again after every reconnect
        // of the cloud. The time is the cloud's: a last will carries its connect time.
        if (status.online !== device.online) {
          await deps.telemetry.addEvent(
            deviceId,
            status.online ? 'info' : 'warn',
            status.online ? 'DEVICE_ONLINE' : 'DEVICE_OFFLINE',
            status.online
              ? 'connected to the broker'
              : 'disconnected (a clean stop, or the broker published its last will)',
            now,
          );
        }
        break;
      }
      case 'state': {
        const state = decodeJson(stateReportSchema, payload);
        await deps.devices.applyState(deviceId, state);
        deps.onReport?.(deviceId, { state });
        break;
      }
      case 'telemetry': {
        const batch = decodeJson(telemetryBatchSchema, payload);
        await deps.ingest.submit(deviceId, batch.records);
        // Acknowledge only after the transaction committed: the agent then drops these
        // records from its outbox. A lost ack means a resend, which ingest deduplicates.
        const ack = { v: 1, from: batch.records[0].seq, to: batch.records[batch.records.length - 1].seq };
        await deps.publisher.publish(deviceTopic(deviceId, 'telemetry/ack'), encodeJson(ack), { qos: 1 });
        break;
      }
      case 'bench': {
        const bench = decodeJson(benchReportSchema, payload);
        await deps.telemetry.addBench(deviceId, bench);
        deps.onReport?.(deviceId, { bench });
        break;
      }
      case 'event': {
        const event = decodeJson(eventSchema, payload);
        await deps.telemetry.addEvent(deviceId, event.level, event.code, event.message, event.at);
        break;
      }
      case 'transfer/req':
        await deps.onTransferRequest?.(deviceId, payload);
        break;
    }
    stats.handled++;
    if (channel === 'status' || channel === 'state' || channel === 'bench' || channel === 'telemetry') {
      deps.onDeviceUpdate?.(deviceId, channel);
    }
  };

  const handle = async (topic: string, payload: Buffer): Promise<void> => {
    try {
      const deviceId = onceSentFrom(topic);
      if (deviceId === null) {
        await handleOnce(topic, payload);
        return;
      }
      // In arrival order per device, each waiting for the store at most maxWaitMs from now.
      await reports.run(deviceId, () => handleOnce(topic, payload));
    } catch (cause) {
      const error = codedStoreError(cause);
      if (!isFleetError(error)) deps.logger.error({ err: error, topic }, 'message handler failed');
      reject(topic, error);
    }
  };

  return { handle, stats };
}
