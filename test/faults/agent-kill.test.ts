import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudHandle } from '../../cloud/main.js';
import { createLogger } from '../../shared/logger.js';
import { createRng } from '../../shared/random.js';
import { startCloudForTests } from '../integration/support/backend-mode.js';
import { buildMlp } from './models.js';
import { activeSlot, FleetmlProcess, waitFor } from './procs.js';

// Scenario 1: `kill -9` of a real agent process at seeded random points of a transfer and of an
// install, 20 times. After every kill the active slot must hold exactly the bytes state.json
// names (a verified, complete model: the old one or the new one, never a partial file), and
// every deployment must complete once the agent is left alone.
const SEED = Number(process.env.FLEETML_FAULT_SEED ?? 20251127);
const KILLS = 20;
const KILLS_PER_DEPLOYMENT = 4;
const INSTALL_WINDOW_MS = 800;
const BLOCK = 8192;

interface KillRecord {
  kill: number;
  aimed: 'transfer' | 'install';
  /** Where the kill landed: mid-transfer (blocks held / total), during install, or after activation. */
  landed: string;
  activeAfter: string | null;
}

describe('fault: kill -9 of the agent during transfer and install', () => {
  let dir: string;
  let cloud: CloudHandle;
  let agentDir: string;
  let agent: FleetmlProcess | null = null;
  let token: string;
  const kills: KillRecord[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-fault-kill-'));
    agentDir = join(dir, 'agent');
    cloud = await startCloudForTests({
      dataDir: join(dir, 'cloud'),
      httpPort: 0,
      mqttPort: 0,
      logger: createLogger({ name: 'cloud', level: 'silent' }),
    });
    token = (await cloud.services.issueEnrollToken()).token;
  });

  afterAll(async () => {
    await agent?.kill('SIGKILL');
    await cloud?.stop();
    await rm(dir, { recursive: true, force: true });
    if (kills.length) console.log(JSON.stringify({ scenario: 'agent-kill', seed: SEED, kills }));
  });

  const spawnAgent = () =>
    new FleetmlProcess(
      [
        'agent',
        'start',
        '--cloud',
        cloud.mqttUrl,
        '--enroll-token',
        token,
        '--data-dir',
        agentDir,
        '--window',
        '1',
        '--block-size',
        String(BLOCK),
        // The benchmark is bound by its 800 ms budget, so an install lasts at least that long
        // and a kill up to 800 ms after the transfer lands inside it.
        '--bench-runs',
        '100000',
        '--bench-budget',
        String(INSTALL_WINDOW_MS),
        '--bench-warmup',
        '1',
        '--telemetry-interval',
        '5',
        '--probe-runs',
        '0',
        '--log-level',
        'info',
      ],
      {
        FLEETML_BACKOFF_INITIAL_MS: '200',
        FLEETML_BACKOFF_MAX_MS: '1000',
        FLEETML_RECONNECT_PERIOD_MS: '200',
        FLEETML_BLOCK_TIMEOUT_MS: '1000',
      },
    );

  const deviceId = async () => (await cloud.services.devices.list())[0]?.id;

  const partPath = (sha: string) => join(agentDir, 'transfers', `${sha}.part`);

  async function blocksHeld(sha: string): Promise<number | null> {
    const text = await readFile(join(agentDir, 'transfers', `${sha}.resume.json`), 'utf8').catch(() => '');
    if (!text) return null;
    try {
      let n = 0;
      for (const b of Buffer.from(JSON.parse(text).bitmap, 'base64')) for (let v = b; v; v >>= 1) n += v & 1;
      return n;
    } catch {
      return null;
    }
  }

  it('always restarts into a verified model and completes every deployment', async () => {
    const rng = createRng(SEED);
    agent = spawnAgent();
    await waitFor('enrollment', async () => {
      const id = await deviceId();
      return id !== undefined && (await cloud.services.devices.get(id)).online;
    });
    let seed = 100;
    // ~4.2 MB: 515 blocks of 8 KiB, one in flight, slow enough to be cut anywhere.
    const nextModel = () =>
      cloud.services.models.add(buildMlp({ inputs: 1024, hidden: 1024, seed: seed++ }), {
        name: `kill-${seed}`,
      });
    const deploy = async () => {
      const model = await nextModel();
      const rollout = await cloud.services.rollouts.create(
        model.id,
        { devices: [(await deviceId())!] },
        { deviceTimeoutS: 600 },
        'fault-test',
      );
      return { model, rollout: rollout.id, total: Math.ceil(model.size / BLOCK) };
    };
    const finished = (id: string) =>
      waitFor(
        `rollout ${id}`,
        async () => {
          const r = await cloud.services.rolloutStore.get(id);
          return r && r.status !== 'running' ? r : undefined;
        },
        90_000,
      );

    // Baseline: a first model installed without faults, so that "a working model" exists; it
    // also measures how long an install takes here, to aim the install kills inside it.
    let current = await deploy();
    await waitFor(
      'the baseline transfer',
      () => !existsSync(partPath(current.model.sha256)) || undefined,
      60_000,
      5,
    );
    const installStart = Date.now();
    await waitFor(
      'the baseline install',
      async () => (await activeSlot(agentDir)).stateSha === current.model.sha256,
      60_000,
      5,
    );
    const installMs = Date.now() - installStart;
    expect((await finished(current.rollout)).status).toBe('succeeded');
    let previousSha = current.model.sha256;
    current = await deploy();
    let deployments = 1;

    for (let k = 0; k < KILLS; k++) {
      const aimed = k % 2 === 0 ? 'transfer' : 'install';
      const { model, total } = current;
      const proc = agent!;
      // The current process has started (or resumed) this model's transfer: its log says so.
      const start = await waitFor(
        'the agent to start the transfer',
        () =>
          proc.logs.find(
            (l) =>
              (l.msg === 'starting transfer' ||
                l.msg === 'resuming transfer' ||
                // Killed inside the install last time: the model is whole in the inactive slot
                // and is installed again without a transfer.
                l.msg === 'already verified in the inactive slot: not fetched again') &&
              l.sha256 === model.sha256,
          ),
        60_000,
        5,
      );
      let landed: string;
      const transferring = start.msg !== 'already verified in the inactive slot: not fetched again';
      if (aimed === 'transfer' && transferring) {
        const held0 = Number(start.held ?? 0);
        const target = held0 + Math.ceil(rng() * 0.75 * (total - held0));
        const held = await waitFor(
          'the transfer to reach its kill point',
          async () => {
            const n = await blocksHeld(model.sha256);
            if (n === null) return existsSync(partPath(model.sha256)) ? undefined : -1;
            return n >= target ? n : undefined;
          },
          60_000,
          5,
        );
        landed = held >= 0 ? `transfer ${held}/${total}` : 'install';
      } else {
        // Transfer done (the .part file was renamed into the inactive slot): kill inside the install.
        await waitFor(
          'the install to begin',
          () => !existsSync(partPath(model.sha256)) || undefined,
          60_000,
          5,
        );
        await new Promise((r) => setTimeout(r, Math.floor(rng() * INSTALL_WINDOW_MS)));
        landed = 'install';
      }
      if ((await activeSlot(agentDir)).stateSha === model.sha256) landed = 'after activation';
      await proc.kill('SIGKILL');
      const after = await activeSlot(agentDir);
      // Never a partial or unverified file: the slot's bytes are exactly the model the state
      // names, and that is the previous model or the complete new one.
      expect(after.stateSha).not.toBeNull();
      expect(after.fileSha).toBe(after.stateSha);
      expect([previousSha, model.sha256]).toContain(after.stateSha);
      kills.push({ kill: k, aimed, landed, activeAfter: after.stateSha!.slice(0, 12) });
      agent = spawnAgent();
      // It restarts into a working model: the verified one on disk, reported as active.
      await waitFor(
        'the restarted agent to connect',
        () => agent!.logs.some((l) => l.msg === 'connected to the cloud'),
        60_000,
      );
      // Every KILLS_PER_DEPLOYMENT kills (or sooner, if a kill came after activation), the agent
      // is left alone to finish: each deployment must complete, then the next one starts.
      if (k < KILLS - 1 && (after.stateSha === model.sha256 || (k + 1) % KILLS_PER_DEPLOYMENT === 0)) {
        expect((await finished(current.rollout)).status).toBe('succeeded');
        const done = await activeSlot(agentDir);
        expect(done.stateSha).toBe(model.sha256);
        expect(done.fileSha).toBe(model.sha256);
        previousSha = model.sha256;
        current = await deploy();
        deployments++;
      }
    }
    const last = await finished(current.rollout);
    expect(last.status).toBe('succeeded');
    const final = await activeSlot(agentDir);
    expect(final.stateSha).toBe(current.model.sha256);
    expect(final.fileSha).toBe(current.model.sha256);
    expect((await cloud.services.devices.get((await deviceId())!)).activeSha256).toBe(current.model.sha256);
    console.log(JSON.stringify({ scenario: 'agent-kill', installMs, deployments: deployments + 1 }));

    expect(kills).toHaveLength(KILLS);
    expect(deployments + 1).toBeGreaterThanOrEqual(KILLS / KILLS_PER_DEPLOYMENT);
    // The seeded kill points really cut transfers in the middle and installs after the transfer.
    expect(kills.filter((k) => k.landed.startsWith('transfer')).length).toBeGreaterThanOrEqual(5);
    expect(kills.filter((k) => k.landed === 'install').length).toBeGreaterThanOrEqual(5);
  }, 200_000);
});
