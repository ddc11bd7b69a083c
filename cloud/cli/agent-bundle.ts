import type { Command } from 'commander';
import { FleetError } from '../../shared/errors/index.js';

/** `fleetml agent bundle`: a device bundle for offline installation (scripts/install-agent.sh --bundle). */
export function register(program: Command): void {
  const agent =
    program.commands.find((c) => c.name() === 'agent') ??
    program.command('agent').description('the device agent');
  agent
    .command('bundle')
    .description(
      'build a .tgz with everything a device needs to run the agent (the agent bundled by esbuild, its\n' +
        "production dependencies, onnxruntime-node's binary and a better-sqlite3 built for --arch, a pinned\n" +
        'Node with --node), installed offline by `scripts/install-agent.sh --bundle <file>`',
    )
    .requiredOption('--arch <arch>', 'device architecture: arm64 (Raspberry Pi 64-bit OS, Jetson) or x64')
    .requiredOption('-o, --out <file>', 'the bundle to write, e.g. agent.tgz')
    .option(
      '--sqlite-addon <file>',
      "better_sqlite3.node built for --arch (default: this checkout's for the host, the one scripts/ci/arm64-setup.sh cross-built for arm64)",
    )
    .option(
      '--node <dir>',
      'ship this Node distribution for --arch (DIR/bin/node, DIR/include/node) as the pinned Node',
    )
    .option('--json', 'print the result as JSON')
    .action(
      async (flags: { arch: string; out: string; sqliteAddon?: string; node?: string; json?: boolean }) => {
        if (flags.arch !== 'arm64' && flags.arch !== 'x64') {
          const hint = /^(arm|armv7l|armhf|armv6l)$/.test(flags.arch)
            ? ': 32-bit ARM cannot run the agent (onnxruntime-node has no build for it); install the 64-bit OS and use --arch arm64'
            : '';
          throw new FleetError('INPUT_INVALID', `--arch must be arm64 or x64, got ${flags.arch}${hint}`);
        }
        const { resolve } = await import('node:path');
        const { buildAgentBundle } = await import('./agent-bundle-build.js');
        const result = await buildAgentBundle({
          arch: flags.arch,
          out: flags.out,
          root: resolve(import.meta.dirname, '../..'),
          sqliteAddon: flags.sqliteAddon,
          nodeDir: flags.node,
        });
        if (flags.json) process.stdout.write(`${JSON.stringify(result)}\n`);
        else
          process.stdout.write(
            `wrote ${result.out}: linux/${result.arch}, ${result.packages} packages, Node ABI ${result.nodeAbi}` +
              `${result.pinnedNode ? `, pinned Node ${result.pinnedNode}` : ''}\n` +
              `install on the device: sudo scripts/install-agent.sh --bundle ${flags.out} --cloud <mqtt-url> --token <token>\n`,
          );
      },
    );
}
