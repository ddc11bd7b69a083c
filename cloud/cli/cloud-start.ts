import type { Command } from 'commander';
import { DEFAULT_CLOUD_DATA_DIR } from './api-client.js';

export function register(program: Command): void {
  const cloud = program.command('cloud').description('run the cloud controller');
  cloud
    .command('start')
    .description('start the controller: embedded MQTT broker (or --mqtt-url), SQLite, API and web console')
    .option('--data-dir <dir>', 'database, artifacts and admin token', DEFAULT_CLOUD_DATA_DIR)
    .option('--http-port <port>', 'API and console port', '8080')
    .option('--http-host <host>', 'API and console interface', '127.0.0.1')
    .option('--mqtt-port <port>', 'embedded broker port', '1883')
    .option('--mqtt-host <host>', 'embedded broker interface (0.0.0.0 for real devices)', '127.0.0.1')
    .option('--mqtt-url <url>', 'use this external broker instead of the embedded one')
    .action(async (options) => {
      const { createLogger } = await import('../../shared/logger.js');
      const { startCloud } = await import('../main.js');
      const logger = createLogger({ name: 'cloud' });
      const handle = await startCloud({
        dataDir: options.dataDir,
        httpPort: Number(options.httpPort),
        httpHost: options.httpHost,
        mqttPort: Number(options.mqttPort),
        mqttHost: options.mqttHost,
        mqttUrl: options.mqttUrl,
        logger,
      });
      process.stdout.write(
        `console: ${handle.httpUrl}\nbroker: ${handle.mqttUrl}\ntoken: ${handle.adminToken}\n`,
      );
      const stop = async () => {
        await handle.stop();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
