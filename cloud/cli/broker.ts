import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';

export function register(program: Command): void {
  const broker = program.command('broker').description('run fleetml behind an external MQTT broker');
  broker
    .command('mosquitto-config')
    .description(
      'write fleetml.passwd, fleetml.acl and mosquitto.conf for an external Mosquitto, with a new cloud password.\n' +
        'Then: fleetml cloud start --mqtt-url mqtt://<host>:<port> --mqtt-password <password> --mosquitto-dir <dir> \\\n' +
        '        --mosquitto-reload "systemctl reload mosquitto"',
    )
    .requiredOption('--dir <dir>', 'directory Mosquitto reads (e.g. /etc/mosquitto/fleetml)')
    .option('--port <port>', 'listener port', '1883')
    .option('--json', 'print JSON')
    .action(async (options) => {
      const { createLogger } = await import('../../shared/logger.js');
      const { MosquittoSync, mosquittoPasswordHash, renderMosquittoConf } = await import(
        '../fleet/broker/mosquitto.js'
      );
      const { CLOUD_USERNAME } = await import('../fleet/broker/acl.js');
      const { newSecret } = await import('../fleet/identity/secrets.js');
      const password = newSecret();
      const sync = new MosquittoSync({
        dir: options.dir,
        logger: createLogger({ name: 'broker', destination: process.stderr }),
      });
      await sync.write([{ username: CLOUD_USERNAME, hash: mosquittoPasswordHash(password) }]);
      const confPath = join(options.dir, 'mosquitto.conf');
      await writeFile(confPath, renderMosquittoConf(options.dir, Number(options.port)));
      const result = { dir: options.dir, conf: confPath, username: CLOUD_USERNAME, password };
      process.stdout.write(
        options.json
          ? `${JSON.stringify(result)}\n`
          : `wrote ${confPath} (include it from mosquitto.conf), fleetml.passwd, fleetml.acl\ncloud username: ${CLOUD_USERNAME}\ncloud password: ${password}\n`,
      );
    });
}
