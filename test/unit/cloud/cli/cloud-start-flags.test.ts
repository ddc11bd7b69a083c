import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { register } from '../../../../cloud/cli/cloud-start.js';
import { type CloudStartFlags, cloudStartPlan } from '../../../../cloud/cli/cloud-start-options.js';

// Every flag of `fleetml cloud start --help` reaches the option startCloud takes (what each
// option does is tested with a running cloud: see docs/claims.md).
function planOf(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const program = new Command('fleetml');
  register(program);
  const start = program.commands
    .find((c) => c.name() === 'cloud')!
    .commands.find((c) => c.name() === 'start')!;
  start.parseOptions(argv);
  return cloudStartPlan(start.opts() as CloudStartFlags, env);
}

describe('cloud start flags', () => {
  it('defaults: loopback, mqtts on 8883 with a fleet CA, SQLite only, one job worker', () => {
    const { options, warning } = planOf([]);
    expect(options).toMatchObject({
      dataDir: '.fleetml/cloud',
      httpPort: 8080,
      httpHost: '127.0.0.1',
      mqttPort: 8883,
      mqttHost: '127.0.0.1',
      tls: true,
      database: undefined,
      jobWorkers: 1,
      mqttSharedGroup: 'fleetml',
      mosquittoDynsec: false,
      enrollmentsPerMinute: 30,
    });
    expect(warning).toBeUndefined();
  });

  it('maps each flag onto its option', () => {
    const { options } = planOf([
      ...['--data-dir', '/srv/f', '--http-port', '8081', '--http-host', '0.0.0.0'],
      ...['--mqtt-url', 'mqtt://broker:1883', '--mqtt-username', 'c1', '--mqtt-password', 'pw'],
      ...['--mosquitto-dynsec', '--signing-key', '/k.json', '--signing-public-key', 'PUB'],
      ...['--database', 'postgres://db/f', '--artifacts-dir', '/shared/a', '--job-workers', '0'],
      ...['--mqtt-shared-group', 'g2', '--tls-host', 'a.example,10.0.0.2'],
      ...['--enrollments-per-minute', '600'],
    ]);
    expect(options).toMatchObject({
      dataDir: '/srv/f',
      httpPort: 8081,
      httpHost: '0.0.0.0',
      mqttUrl: 'mqtt://broker:1883',
      mqttUsername: 'c1',
      mqttPassword: 'pw',
      mosquittoDynsec: true,
      signingKeyFile: '/k.json',
      signingPublicKey: 'PUB',
      database: 'postgres://db/f',
      artifactsDir: '/shared/a',
      jobWorkers: 0,
      mqttSharedGroup: 'g2',
      tls: { hostnames: ['a.example', '10.0.0.2'] },
      enrollmentsPerMinute: 600,
    });
  });

  it('--no-mqtt-shared subscribes plainly; the username only goes with an external broker', () => {
    expect(planOf(['--mqtt-url', 'mqtt://b:1883', '--no-mqtt-shared']).options.mqttSharedGroup).toBeNull();
    expect(planOf([]).options.mqttUsername).toBeUndefined();
  });

  it('reads FLEETML_DATABASE and FLEETML_MQTT_PASSWORD; flags win', () => {
    const env = { FLEETML_DATABASE: 'postgres://env/f', FLEETML_MQTT_PASSWORD: 'envpw' };
    expect(planOf([], env).options).toMatchObject({ database: 'postgres://env/f', mqttPassword: 'envpw' });
    expect(planOf(['--database', 'postgres://flag/f'], env).options.database).toBe('postgres://flag/f');
  });

  it('--insecure-plain-mqtt: plain on 1883; beyond loopback with an INSECURE warning', () => {
    const local = planOf(['--insecure-plain-mqtt']);
    expect(local.options).toMatchObject({ mqttPort: 1883, tls: undefined });
    expect(local.warning).toBeUndefined();
    const open = planOf(['--insecure-plain-mqtt', '--mqtt-host', '0.0.0.0']);
    expect(open.warning).toMatch(/^INSECURE: plain MQTT on 0\.0\.0\.0/);
    expect(planOf(['--insecure-plain-mqtt', '--tls']).options.tls).toBe(true);
  });

  it('refuses bad numbers and group names with INPUT_INVALID naming the flag', () => {
    for (const [argv, flag] of [
      [['--http-port', 'eighty'], '--http-port'],
      [['--mqtt-port', '70000'], '--mqtt-port'],
      [['--job-workers', '-1'], '--job-workers'],
      [['--mqtt-shared-group', 'a/b'], '--mqtt-shared-group'],
    ] as const) {
      let error: { code?: string; message?: string } | undefined;
      try {
        planOf([...argv]);
      } catch (e) {
        error = e as { code: string; message: string };
      }
      expect(error?.code).toBe('INPUT_INVALID');
      expect(error?.message).toContain(flag);
    }
  });
});
