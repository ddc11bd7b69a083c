import type { Command } from 'commander';
import { DEFAULT_CLOUD_DATA_DIR } from './cloud-context.js';
import { consoleLink } from './console-link.js';
import { numberOption } from './number-option.js';

export function register(program: Command): void {
  const cloud = program.command('cloud').description('run the cloud controller');
  cloud
    .command('start')
    .description('start the controller: embedded MQTT broker (or --mqtt-url), SQLite, API and web console')
    .option('--data-dir <dir>', 'database, artifacts, keys and admin token', DEFAULT_CLOUD_DATA_DIR)
    .option('--http-port <port>', 'API and console port', '8080')
    .option('--http-host <host>', 'API and console interface', '127.0.0.1')
    .option('--mqtt-port <port>', 'embedded broker port (default 1883, 8883 with --tls)')
    .option('--mqtt-host <host>', 'embedded broker interface (0.0.0.0 for real devices)', '127.0.0.1')
    .option('--mqtt-url <url>', 'use this external broker instead of the embedded one')
    .option('--mqtt-username <name>', "the cloud's username on the external broker", 'cloud')
    .option(
      '--mqtt-password <password>',
      "the cloud's password on the external broker (env FLEETML_MQTT_PASSWORD)",
    )
    .option(
      '--mosquitto-dynsec',
      'the external broker is a Mosquitto set up by `fleetml broker mosquitto-config`: manage devices live',
    )
    .option(
      '--signing-key <file>',
      'online manifest-signing key (default <data-dir>/keys/fleet-signing.json, created)',
    )
    .option(
      '--signing-public-key <base64>',
      'offline signing: only the public key here; sign with `fleetml sign` elsewhere',
    )
    .option(
      '--database <url>',
      'postgres://… for telemetry, fleet latency and leader election, shared by replicas (env FLEETML_DATABASE; docs/scale.md)',
    )
    .option(
      '--artifacts-dir <dir>',
      'content-addressed artifact store, shared by replicas (default <data-dir>/artifacts; docs/scale.md)',
    )
    .option(
      '--job-workers <n>',
      'with --database: compression jobs this replica takes from the shared queue at once (0: none)',
      '1',
    )
    .option(
      '--mqtt-shared-group <name>',
      'with --mqtt-url: MQTT 5 shared-subscription group of the replicas',
      'fleetml',
    )
    .option('--no-mqtt-shared', 'with --mqtt-url: plain subscriptions (a broker without MQTT 5)')
    .option('--tls', 'serve mqtts with a fleet CA created in <data-dir>/tls on first start (the default)')
    .option(
      '--insecure-plain-mqtt',
      'serve plain MQTT instead of mqtts (beyond loopback: secrets in clear text, with a loud warning)',
    )
    .option('--tls-host <names>', 'comma-separated host names/IPs for the broker certificate')
    .option(
      '--enrollments-per-minute <n>',
      'embedded broker: enrollment connections accepted per client address and minute (many devices behind one NAT, fleetml simulate)',
      '30',
    )
    .action(async (options) => {
      const { createLogger } = await import('../../shared/logger.js');
      const { startCloud } = await import('../main.js');
      const { chooseBrokerTransport } = await import('../fleet/broker/listen-policy.js');
      const logger = createLogger({ name: 'cloud' });
      const { FleetError } = await import('../../shared/errors/index.js');
      const { SHARED_GROUP_PATTERN } = await import('../fleet/transport/mqtt.js');
      if (!SHARED_GROUP_PATTERN.test(options.mqttSharedGroup))
        throw new FleetError('INPUT_INVALID', `--mqtt-shared-group must match ${SHARED_GROUP_PATTERN}`);
      const transport = chooseBrokerTransport(
        options.mqttHost,
        Boolean(options.insecurePlainMqtt) && !options.tls,
      );
      if (transport.warning && !options.mqttUrl) {
        logger.warn({ code: 'INSECURE_TRANSPORT' }, transport.warning);
        process.stderr.write(`\n*** ${transport.warning} ***\n\n`);
      }
      const handle = await startCloud({
        dataDir: options.dataDir,
        httpPort: Number(options.httpPort),
        httpHost: options.httpHost,
        mqttPort: Number(options.mqttPort ?? (transport.tls ? 8883 : 1883)),
        mqttHost: options.mqttHost,
        mqttUrl: options.mqttUrl,
        mqttUsername: options.mqttUrl ? options.mqttUsername : undefined,
        mqttSharedGroup: options.mqttShared ? options.mqttSharedGroup : null,
        database: options.database ?? process.env.FLEETML_DATABASE,
        artifactsDir: options.artifactsDir,
        jobWorkers: numberOption(options.jobWorkers, '--job-workers', 0),
        mqttPassword: options.mqttPassword ?? process.env.FLEETML_MQTT_PASSWORD,
        mosquittoDynsec: Boolean(options.mosquittoDynsec),
        enrollmentsPerMinute: numberOption(options.enrollmentsPerMinute, '--enrollments-per-minute', 1),
        signingKeyFile: options.signingKey,
        signingPublicKey: options.signingPublicKey,
        tls: transport.tls
          ? options.tlsHost
            ? { hostnames: String(options.tlsHost).split(',') }
            : true
          : undefined,
        logger,
      });
      const { writeCloudPointer, clearCloudPointer } = await import('./cloud-context.js');
      // Other commands of this user find this cloud (data dir, API address) without flags.
      await writeCloudPointer(
        handle.httpUrl.replace(/\/\/(0\.0\.0\.0|\[::\])/, '//localhost'),
        options.dataDir,
      ).catch((error) =>
        logger.warn({ err: (error as Error).message }, 'could not note the cloud for other commands'),
      );
      const lines = [
        `console: ${consoleLink(handle.httpUrl, handle.adminToken)}`,
        `broker: ${handle.mqttUrl}`,
        `token: ${handle.adminToken}`,
      ];
      if (handle.services.caPem) lines.push(`ca: ${options.dataDir}/tls/ca.pem (agents pin it with --ca)`);
      process.stdout.write(`${lines.join('\n')}\n`);
      const stop = async () => {
        // A stop that hangs (a client that never lets go) must not keep a service manager
        // waiting: exit anyway after 10 s.
        setTimeout(() => {
          logger.error('stop did not finish within 10 s; exiting');
          process.exit(1);
        }, 10_000).unref();
        await handle.stop();
        await clearCloudPointer().catch(() => {});
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
