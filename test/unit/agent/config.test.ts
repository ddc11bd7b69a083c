import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AGENT_DEFAULTS, envNameOf, loadConfig, resolveConfig } from '../../../agent/config.js';

const errorOf = async (fn: () => unknown) => {
  try {
    await fn();
  } catch (error) {
    return error as { code: string; message: string };
  }
  throw new Error('expected an error');
};

describe('agent config', () => {
  const dirs: string[] = [];
  afterAll(async () => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  it('names env variables from keys', () => {
    expect(envNameOf('telemetryIntervalS')).toBe('FLEETML_TELEMETRY_INTERVAL_S');
    expect(envNameOf('cloudUrl')).toBe('FLEETML_CLOUD_URL');
  });

  it('fills defaults and layers file < env < flags', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetml-cfg-'));
    dirs.push(dir);
    const file = join(dir, 'agent.json');
    await writeFile(file, JSON.stringify({ cloudUrl: 'mqtt://file:1883', windowBlocks: 4, benchRuns: 7 }));
    const config = await loadConfig(
      { config: file, benchRuns: '9' },
      { FLEETML_WINDOW_BLOCKS: '8', FLEETML_TELEMETRY_INTERVAL_S: '2.5' },
    );
    expect(config.cloudUrl).toBe('mqtt://file:1883');
    expect(config.windowBlocks).toBe(8);
    expect(config.benchRuns).toBe(9);
    expect(config.telemetryIntervalS).toBe(2.5);
    expect(config.blockSize).toBe(AGENT_DEFAULTS.blockSize);
  });

  it('reports every invalid key with its env name as CONFIG_INVALID', async () => {
    const e = await errorOf(() => resolveConfig({ cloudUrl: 'http://x', windowBlocks: '0', ep: 'gpu' }));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toContain('cloudUrl (FLEETML_CLOUD_URL)');
    expect(e.message).toContain('windowBlocks (FLEETML_WINDOW_BLOCKS)');
    expect(e.message).toContain('ep (FLEETML_EP)');
  });

  it('requires a cloud URL', async () => {
    const e = await errorOf(() => resolveConfig({}));
    expect(e.message).toMatch(/cloudUrl is required/);
  });

  it('rejects unknown keys and broken JSON in the file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetml-cfg-'));
    dirs.push(dir);
    await writeFile(join(dir, 'a.json'), JSON.stringify({ cloudUrl: 'mqtt://x', blokSize: 1 }));
    await writeFile(join(dir, 'b.json'), '{');
    expect((await errorOf(() => loadConfig({ config: join(dir, 'a.json') }, {}))).message).toContain(
      'blokSize',
    );
    expect((await errorOf(() => loadConfig({ config: join(dir, 'b.json') }, {}))).code).toBe(
      'CONFIG_INVALID',
    );
    expect((await errorOf(() => loadConfig({ config: join(dir, 'none.json') }, {}))).code).toBe(
      'CONFIG_INVALID',
    );
  });
});
