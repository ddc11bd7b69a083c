import { Command } from 'commander';
import { registerAgentCommands } from '../agent/cli/index.js';
import { registerCloudCommands } from '../cloud/cli/index.js';
import { isFleetError } from '../shared/errors/index.js';

// The composition root of the CLI: the only place that sees both the agent and the cloud.
const program = new Command('fleetml')
  .description('Compress ONNX models per device profile, deliver them over MQTT, benchmark and monitor them.')
  .version('0.1.0')
  .showHelpAfterError();

await registerCloudCommands(program);
await registerAgentCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (isFleetError(error)) {
    process.stderr.write(`error ${error.code}: ${error.message}\n`);
  } else {
    process.stderr.write(`error INTERNAL: ${(error as Error)?.stack ?? String(error)}\n`);
  }
  process.exitCode = 1;
}
