import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type AgentConfigInput, resolveConfig } from '../../../agent/config.js';
import { type AgentHandle, startAgent } from '../../../agent/main.js';
import { createLogger } from '../../../shared/logger.js';

export interface TestAgent {
  agent: AgentHandle;
  dataDir: string;
  logs: Array<Record<string, unknown>>;
}

/** Starts a real agent with fast test timings; its JSON log lines are kept for assertions. */
export async function startTestAgent(
  cloudUrl: string,
  token: string,
  overrides: AgentConfigInput = {},
  dataDir?: string,
): Promise<TestAgent> {
  const dir = dataDir ?? (await mkdtemp(join(tmpdir(), 'fleetml-agent-')));
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) logs.push(JSON.parse(line));
      done();
    },
  });
  const config = resolveConfig({
    cloudUrl,
    enrollToken: token,
    dataDir: dir,
    telemetryIntervalS: 0.5,
    benchRuns: 5,
    benchWarmupRuns: 1,
    backoffInitialMs: 200,
    backoffMaxMs: 1000,
    blockTimeoutMs: 1000,
    reconnectPeriodMs: 200,
    minFreeDiskBytes: 0,
    // A free port each: several agents on one host cannot all serve on 8000.
    servePort: 0,
    ...overrides,
  });
  const agent = await startAgent({
    config,
    logger: createLogger({ name: 'agent', level: 'debug', destination: sink }),
  });
  return { agent, dataDir: dir, logs };
}
