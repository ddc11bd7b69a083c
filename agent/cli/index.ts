import type { Command } from 'commander';

/** Agent-side CLI commands (`fleetml agent ...`, `fleetml bench`), one module each. */
type Registrar = (program: Command) => void;

const REGISTRARS: Array<() => Promise<{ register: Registrar }>> = [
  () => import('./agent.js'),
  () => import('./bench.js'),
];

export async function registerAgentCommands(program: Command): Promise<void> {
  for (const load of REGISTRARS) (await load()).register(program);
}
