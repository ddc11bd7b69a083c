import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { CLOUD_USERNAME } from '../../../cloud/fleet/broker/acl.js';
import { writeMosquittoSetup } from '../../../cloud/fleet/broker/dynsec-setup.js';
import { newSecret } from '../../../cloud/fleet/identity/secrets.js';
import { freePort, mosquittoBinary } from '../agent/mosquitto.js';

/**
 * Debian's Mosquitto configured as `fleetml broker mosquitto-config` configures it (dynamic
 * security, the cloud's own client, no persistence), on a fixed loopback port so that a
 * restart comes back at the same URL with the clients the plugin saved in its file.
 */
export class DynsecMosquitto {
  private child: ChildProcess | null = null;
  /** How many times it was started (the first start included). */
  starts = 0;

  private constructor(
    readonly binary: string,
    readonly dir: string,
    readonly port: number,
    readonly cloudPassword: string,
  ) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  static async start(): Promise<DynsecMosquitto> {
    const binary = mosquittoBinary();
    if (!binary) throw new Error('mosquitto is not installed (.ci/run installs it from Debian)');
    const dir = await mkdtemp(join(tmpdir(), 'fleetml-dynsec-'));
    // Mosquitto started as root drops to its own user, which must reach the generated files.
    await chmod(dir, 0o755);
    const port = await freePort();
    const cloudPassword = newSecret();
    await writeMosquittoSetup({ dir: join(dir, 'mosquitto'), port, cloudPassword });
    const broker = new DynsecMosquitto(binary, dir, port, cloudPassword);
    await broker.resume();
    return broker;
  }

  /** Starts (again) and waits until the cloud's credentials are accepted. */
  async resume(): Promise<void> {
    const child = spawn(this.binary, ['-c', join(this.dir, 'mosquitto', 'mosquitto.conf')], {
      stdio: 'ignore',
    });
    this.child = child;
    this.starts++;
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`mosquitto exited with ${child.exitCode} on start`);
      const ok = await mqtt
        .connectAsync(this.url, {
          username: CLOUD_USERNAME,
          password: this.cloudPassword,
          reconnectPeriod: 0,
          connectTimeout: 2000,
        })
        .then(
          (c) => c.endAsync().then(() => true),
          () => false,
        );
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`mosquitto did not accept the cloud on ${this.port}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stops it (SIGTERM: a clean shutdown, which also saves the plugin's file). */
  async halt(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  }

  async restart(pauseMs = 300): Promise<void> {
    await this.halt();
    await new Promise((r) => setTimeout(r, pauseMs));
    await this.resume();
  }

  async close(): Promise<void> {
    await this.halt('SIGKILL');
    await rm(this.dir, { recursive: true, force: true });
  }
}
