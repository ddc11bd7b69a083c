import type { Command } from 'commander';

export function register(program: Command): void {
  const broker = program.command('broker').description('run fleetml behind an external MQTT broker');
  broker
    .command('mosquitto-config')
    .description(
      "write DIR/mosquitto.conf and DIR/dynamic-security.json for Mosquitto 2's dynamic security plugin,\n" +
        'with a new cloud password. Then: mosquitto -c DIR/mosquitto.conf and\n' +
        '  fleetml cloud start --mqtt-url mqtt://127.0.0.1:<port> --mqtt-password <password> --mosquitto-dynsec',
    )
    .requiredOption('--dir <dir>', 'directory for the configuration (e.g. /etc/mosquitto/fleetml)')
    .option('--port <port>', 'listener port', '1883')
    .option('--host <address>', 'listener address (loopback unless --insecure-plain-mqtt)', '127.0.0.1')
    .option('--insecure-plain-mqtt', 'allow a plain MQTT listener beyond loopback')
    .option(
      '--plugin <path>',
      'dynamic security plugin',
      '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so',
    )
    .option('--json', 'print JSON')
    .action(async (options) => {
      const { writeMosquittoSetup } = await import('../fleet/broker/dynsec-setup.js');
      const { CLOUD_USERNAME } = await import('../fleet/broker/acl.js');
      const { newSecret } = await import('../fleet/identity/secrets.js');
      const { numberOption } = await import('./number-option.js');
      const { resolve } = await import('node:path');
      const port = numberOption(options.port, '--port', 1);
      const password = newSecret();
      const { conf } = await writeMosquittoSetup({
        dir: resolve(options.dir),
        port,
        host: options.host,
        insecurePlain: Boolean(options.insecurePlainMqtt),
        plugin: options.plugin,
        cloudPassword: password,
      });
      const result = { dir: resolve(options.dir), conf, username: CLOUD_USERNAME, password };
      process.stdout.write(
        options.json
          ? `${JSON.stringify(result)}\n`
          : `wrote ${conf} (run: mosquitto -c ${conf})\ncloud username: ${CLOUD_USERNAME}\ncloud password: ${password}\n`,
      );
    });
}
