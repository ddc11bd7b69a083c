import { execFileSync } from 'node:child_process';

/** p50 (ms) that `fleetml bench MODEL --shape … --json` reports, run in its own process. */
export function fleetmlBenchP50(model: string, shape: number[], runs: number, warmup: number): number {
  const args = [
    'bench',
    model,
    '--shape',
    shape.join(','),
    '--runs',
    String(runs),
    '--warmup',
    String(warmup),
  ];
  const out = execFileSync(process.execPath, ['bin/fleetml.mjs', ...args, '--json']);
  return JSON.parse(out.toString()).p50Ms;
}
