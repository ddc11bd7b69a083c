import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../../../agent/config.js';
import { type AgentHandle, startAgent } from '../../../agent/main.js';
import { makeNode } from '../../../cloud/compression/onnx/build.js';
import { decodeModel, encodeModel } from '../../../cloud/compression/onnx/proto.js';
import type { CloudHandle } from '../../../cloud/main.js';
import { createLogger } from '../../../shared/logger.js';
import { startCloudForTests } from '../support/backend-mode.js';

const SAMPLE = new URL('../../../cloud/samples/mnist-mlp.onnx', import.meta.url);
const quiet = () => createLogger({ name: 'test', level: 'silent' });

export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  ms = 30_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== null && value !== false) return value as T;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A real cloud with N real agents on loopback, for fleet-level tests: on the embedded broker
 * and SQLite, or on PostgreSQL and Mosquitto (FLEETML_TEST_BACKEND, support/backend-mode.ts).
 */
export class FleetHarness {
  readonly agents: AgentHandle[] = [];
  private constructor(
    readonly dir: string,
    readonly cloud: CloudHandle,
  ) {}

  static async start(agentCount: number): Promise<FleetHarness> {
    const dir = await mkdtemp(join(tmpdir(), 'fleetml-fleet-'));
    const cloud = await startCloudForTests({
      dataDir: join(dir, 'cloud'),
      httpPort: 0,
      mqttPort: 0,
      logger: quiet(),
    });
    const harness = new FleetHarness(dir, cloud);
    for (let i = 0; i < agentCount; i++) await harness.addAgent(i);
    await waitFor(
      'agents online',
      async () => (await cloud.services.devices.list()).filter((d) => d.online).length === agentCount,
    );
    return harness;
  }

  async addAgent(index: number): Promise<AgentHandle> {
    const { token } = await this.cloud.services.issueEnrollToken();
    const agent = await startAgent({
      config: resolveConfig({
        cloudUrl: this.cloud.mqttUrl,
        enrollToken: token,
        dataDir: join(this.dir, `agent-${index}`),
        telemetryIntervalS: 1,
        benchRuns: 10,
        benchWarmupRuns: 1,
        // A free port each: several agents on one host cannot all serve on 8000.
        servePort: 0,
      }),
      logger: quiet(),
    });
    this.agents[index] = agent;
    return agent;
  }

  deviceIds(): string[] {
    return this.agents.map((a) => a.identity.deviceId);
  }

  /** Registers a variant of the sample model; `tag` makes distinct bytes, `broken` an unloadable one. */
  async model(tag: string, broken = false) {
    const model = decodeModel(await readFile(SAMPLE));
    model.docString = tag;
    if (broken) model.graph.node.push(makeNode('NoSuchOperator', ['logits'], ['junk'], [], 'broken'));
    return this.cloud.services.models.add(encodeModel(model), { name: `mnist-${tag}` });
  }

  async waitRollout(id: string, ms = 60_000) {
    return waitFor(
      `rollout ${id} to finish`,
      async () => {
        const r = await this.cloud.services.rolloutStore.get(id);
        return r && r.status !== 'running' ? r : undefined;
      },
      ms,
    );
  }

  async stop(): Promise<void> {
    for (const agent of this.agents) await agent?.stop().catch(() => {});
    await this.cloud.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
