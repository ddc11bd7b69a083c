import { Command } from 'commander';
import { isFleetError } from '../../shared/errors/index.js';
import { registerAgentCommands } from './index.js';

/**
 * Agent-only entry point for devices. `scripts/install-agent.sh` bundles it with esbuild
 * (node_modules stay external) into dist/fleetml-agent.mjs so that the daemon runs on plain
 * `node` without the tsx loader, whose off-thread hooks cost about 35 MB of RSS on a Pi.
 * `fleetml agent ...` through bin/fleetml.mjs runs the very same code.
 */
const program = new Command('fleetml').description('fleetml device agent').showHelpAfterError();
await registerAgentCommands(program);
try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (isFleetError(error)) process.stderr.write(`error ${error.code}: ${error.message}\n`);
  else process.stderr.write(`error INTERNAL: ${(error as Error)?.stack ?? String(error)}\n`);
  process.exitCode = 1;
}
