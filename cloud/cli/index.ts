import type { Command } from 'commander';

/**
 * Cloud-side CLI commands. Each command lives in its own module under cloud/cli/ and exports
 * `register(program)`; heavy modules are imported inside the action so that `--help` is instant.
 */
type Registrar = (program: Command) => void;

const REGISTRARS: Array<() => Promise<{ register: Registrar }>> = [
  () => import('./cloud-start.js'),
  () => import('./models.js'),
  () => import('./deploy.js'),
  () => import('./devices.js'),
  () => import('./fleet.js'),
  () => import('./demo.js'),
  () => import('./broker.js'),
  () => import('./quantize.js'),
  () => import('./eval.js'),
  () => import('./distill.js'),
  () => import('./compress.js'),
  () => import('./signing.js'),
  () => import('./agent-bundle.js'),
  () => import('../simulator/cli.js'),
];

export async function registerCloudCommands(program: Command): Promise<void> {
  for (const load of REGISTRARS) (await load()).register(program);
}
