import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { registerAgentCommands } from '../../../../agent/cli/index.js';
import { registerCloudCommands } from '../../../../cloud/cli/index.js';

// README "Using it": "Every command has --help; commands that report results take --json (one
// JSON object on stdout; progress goes to stderr)". The program is built as bin/main.ts builds
// it; a new command without a description or without --json fails here.

/** Commands that run until stopped and print addresses, not a result. */
const SERVICES = new Set(['cloud start', 'agent start', 'demo']);

/** Every command a user runs: leaves, and groups that act themselves (`devices` lists). */
function leaves(command: Command, path: string[] = []): { path: string; command: Command }[] {
  const own = path.length > 0 && (command.commands.length === 0 || command.options.length > 0);
  return [
    ...(own ? [{ path: path.join(' '), command }] : []),
    ...command.commands.flatMap((c) => leaves(c, [...path, c.name()])),
  ];
}

async function program(): Promise<Command> {
  const p = new Command('fleetml');
  await registerCloudCommands(p);
  await registerAgentCommands(p);
  return p;
}

describe('every fleetml command', () => {
  it('has a description and --help', async () => {
    const all = leaves(await program());
    expect(all.length).toBeGreaterThan(30);
    for (const { path, command } of all) {
      expect(command.description(), path).not.toBe('');
      expect(command.helpInformation(), path).toMatch(/-h, --help\s+display help for command/);
    }
  });

  it('takes --json unless it is a service that runs until stopped', async () => {
    const all = leaves(await program());
    // `devices tag` reads the --json of `devices` (commander merges a parent's options).
    const takesJson = (c: Command | null): boolean =>
      c !== null && (c.options.some((o) => o.long === '--json') || takesJson(c.parent));
    const without = all.filter(({ command }) => !takesJson(command)).map(({ path }) => path);
    expect(without.sort()).toEqual([...SERVICES].sort());
  });
});
