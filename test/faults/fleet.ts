import { join } from 'node:path';
import { resolveConfig } from '../../agent/config.js';
import { type AgentHandle, startAgent } from '../../agent/main.js';
import { createLogger } from '../../shared/logger.js';
import { producedSeq, telemetryCounts, waitFor } from './procs.js';

/** In-process agents tuned for fault tests: fast telemetry, quick reconnects, a slowish transfer. */
export async function startFaultAgent(
  cloudUrl: string,
  token: string,
  dataDir: string,
  overrides: Record<string, unknown> = {},
): Promise<AgentHandle> {
  return startAgent({
    config: resolveConfig({
      cloudUrl,
      enrollToken: token,
      dataDir,
      telemetryIntervalS: 0.2,
      telemetryAckTimeoutMs: 2000,
      benchRuns: 3,
      benchWarmupRuns: 1,
      latencyProbeRuns: 2,
      backoffInitialMs: 200,
      backoffMaxMs: 1000,
      reconnectPeriodMs: 200,
      blockTimeoutMs: 1000,
      blockSize: 16_384,
      windowBlocks: 4,
      minFreeDiskBytes: 0,
      // A free port each: several agents on one host cannot all serve on 8000.
      servePort: 0,
      ...overrides,
    }),
    logger: createLogger({ name: 'agent', level: 'silent' }),
  });
}

export interface TelemetryAudit {
  deviceId: string;
  produced: number;
  stored: number;
  distinct: number;
  lost: number;
  duplicated: number;
  dropped: number;
}

/**
 * Stops producing telemetry, waits until every record left the outbox on a cloud ack, then
 * compares what each agent produced (its outbox's sequence high mark) with the rows the cloud
 * stored per (device, seq).
 */
export async function auditTelemetry(
  agents: Array<{ agent: AgentHandle; dataDir: string }>,
  rowsOf: (deviceId: string) => Array<{ seq: number }> | Promise<Array<{ seq: number }>>,
): Promise<TelemetryAudit[]> {
  for (const { agent } of agents) await agent.telemetry.stop();
  for (const { agent } of agents) {
    void agent.sender.kick();
    await waitFor(
      `the outbox of ${agent.identity.deviceId} to drain`,
      () => {
        void agent.sender.kick();
        return agent.outbox.size === 0;
      },
      60_000,
      100,
    );
  }
  const audits: TelemetryAudit[] = [];
  for (const { agent, dataDir } of agents) {
    const deviceId = agent.identity.deviceId;
    const produced = producedSeq(join(dataDir, 'outbox.sqlite'));
    const counts = telemetryCounts(await rowsOf(deviceId));
    audits.push({
      deviceId,
      produced,
      stored: counts.rows,
      distinct: counts.distinct,
      lost: produced - counts.distinct,
      duplicated: counts.rows - counts.distinct,
      dropped: agent.outbox.dropped,
    });
  }
  return audits;
}
