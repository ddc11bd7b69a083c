/**
 * `npm run bench`: runs every benchmark script in scripts/bench/ one after another (each writes
 * its own section of BENCHMARKS.md). Pass names to run only some: npm run bench -- thin-path quantize
 * Runs of hours are left out unless named (BY_HAND).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const HELPERS = new Set(['run-all.ts', 'report.ts']);
// Hours of training on two cores: run by name, e.g. npm run bench -- distill-recogniser-phases
const BY_HAND = new Set(['distill-recogniser-phases.ts']);
const wanted = process.argv.slice(2);
const scripts = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && !HELPERS.has(f) && !f.startsWith('_'))
  .filter((f) => (wanted.length === 0 ? !BY_HAND.has(f) : wanted.includes(f.replace(/\.ts$/, ''))))
  .sort();

let failed = 0;
for (const script of scripts) {
  process.stderr.write(`\n=== ${script}\n`);
  // Some scripts only print unless asked to write their section (so a trial run changes nothing).
  const write = readFileSync(`${dir}${script}`, 'utf8').includes("'--write'") ? ['--write'] : [];
  const result = spawnSync(process.execPath, ['--import', 'tsx', `${dir}${script}`, ...write], {
    stdio: 'inherit',
  });
  if (result.status !== 0) {
    failed++;
    process.stderr.write(`${script} failed with exit code ${result.status}\n`);
  }
}
process.stderr.write(`\n${scripts.length - failed} benchmark(s) ran, ${failed} failed\n`);
process.exitCode = failed > 0 ? 1 : 0;
