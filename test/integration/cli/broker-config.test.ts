import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fleetml } from '../../support/fleetml-cli.js';

const MOSQUITTO = '/usr/sbin/mosquitto';

/** A port nothing listens on right now. */
function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

// `fleetml broker mosquitto-config --help`: --host, --port, --plugin and --insecure-plain-mqtt
// shape the listener and plugin lines (that Mosquitto runs the file as is:
// test/integration/security/mosquitto.test.ts).
describe('fleetml broker mosquitto-config flags', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-mosq-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('writes the listener on --host/--port and the --plugin path; prints the cloud credentials', async () => {
    const out = join(dir, 'a');
    const r = await fleetml([
      ...['broker', 'mosquitto-config', '--dir', out, '--port', '18830', '--host', '127.0.0.2'],
      ...['--plugin', '/opt/mosquitto/dynsec.so', '--json'],
    ]);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result).toMatchObject({ dir: out, username: 'cloud' });
    expect(result.password.length).toBeGreaterThan(20);
    const conf = await readFile(result.conf, 'utf8');
    expect(conf).toMatch(/^listener 18830 127\.0\.0\.2$/m);
    expect(conf).toMatch(/^plugin \/opt\/mosquitto\/dynsec\.so$/m);
    // The password is stored hashed, never in clear.
    expect(await readFile(join(out, 'dynamic-security.json'), 'utf8')).not.toContain(result.password);
  });

  it.skipIf(!existsSync(MOSQUITTO))(
    'a relative --dir gives a file Mosquitto runs as is from any directory',
    async () => {
      const port = await freePort();
      await chmod(dir, 0o755); // Mosquitto started as root reads its files as the mosquitto user
      const r = await fleetml(
        ['broker', 'mosquitto-config', '--dir', 'rel', '--port', String(port), '--json'],
        { cwd: dir },
      );
      expect(r.code, r.stderr).toBe(0);
      const result = JSON.parse(r.stdout);
      expect(result.dir).toBe(join(dir, 'rel'));
      expect(result.conf).toBe(join(dir, 'rel', 'mosquitto.conf'));
      expect(await readFile(result.conf, 'utf8')).toContain(
        `plugin_opt_config_file ${join(dir, 'rel', 'dynamic-security.json')}`,
      );
      // Started from / (not where the file was written), it loads the plugin's file and listens.
      const broker = spawn(MOSQUITTO, ['-c', result.conf], { cwd: '/', stdio: ['ignore', 'ignore', 'pipe'] });
      let log = '';
      broker.stderr.on('data', (chunk) => {
        log += chunk;
      });
      try {
        const listening = await new Promise<boolean>((resolve) => {
          broker.once('exit', () => resolve(false));
          const poll = setInterval(() => {
            if (/Error/.test(log)) resolve(false);
            if (/running/.test(log)) resolve(true);
          }, 100);
          broker.once('exit', () => clearInterval(poll));
          setTimeout(() => clearInterval(poll), 60_000).unref();
        });
        expect(listening, log).toBe(true);
      } finally {
        broker.kill();
      }
    },
    90_000,
  );

  it('beyond loopback only with --insecure-plain-mqtt; a bad port is INPUT_INVALID', async () => {
    const open = await fleetml(['broker', 'mosquitto-config', '--dir', join(dir, 'b'), '--host', '0.0.0.0']);
    expect(open.code).toBe(1);
    expect(open.stderr).toMatch(/^error [A-Z_]+: plain MQTT on 0\.0\.0\.0 would expose device secrets/m);
    const allowed = await fleetml([
      ...['broker', 'mosquitto-config', '--dir', join(dir, 'c'), '--host', '0.0.0.0'],
      ...['--insecure-plain-mqtt', '--json'],
    ]);
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(await readFile(JSON.parse(allowed.stdout).conf, 'utf8')).toMatch(/^listener 1883 0\.0\.0\.0$/m);
    const port = await fleetml(['broker', 'mosquitto-config', '--dir', join(dir, 'd'), '--port', 'mqtt']);
    expect(port.code).toBe(1);
    expect(port.stderr).toMatch(/^error INPUT_INVALID: --port must be/m);
  });
});
