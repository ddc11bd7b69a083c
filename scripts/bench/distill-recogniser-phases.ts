/**
 * A long distillation of PaddleOCR's recogniser (issue 16) as a chain of short phases of
 * `scripts/bench/distill-recogniser.ts`: each phase trains one epoch on 8,192 fresh rendered
 * lines (another seed each time, shifted ±2 px), continues from the last phase's student, and
 * scores it on the 256 held-out lines. Fresh lines each phase rather than epochs over one set:
 * the teacher's targets for 8,192 lines at 48×160 already take 4.3 GB ([8192, 20, 6625] floats),
 * and the student never sees a line twice. The learning rate steps down with the phases (Adam,
 * cosine within a phase): 0.001 for phases 1–4, 0.0007 for 5–8, 0.0005 for 9–12, 0.0003 for 13–16,
 * 0.00015 for 17–18 and 0.00007 after (a run held at 0.0003 from phase 13 on stopped improving at
 * phase 16 and wandered 72–77 % identical decodes, the noise of a step still too large).
 * Each phase's figures go to stdout as a table row; the last student is `<dir>/p<N>/student.onnx`,
 * and `distill-recogniser.ts --evaluate` on it measures latency and writes the report.
 *
 *   npx tsx scripts/bench/distill-recogniser-phases.ts [--phases 16] [--start 1] [--from S.onnx]
 *     [--dir .fleetml/bench/recogniser-phases] [--width 160] [--train 8192] [--printed] [--crop]
 *
 * `--printed` trains and scores on lines of printed text (printed-lines.ts) instead of handwritten
 * digits; `--crop` with it, on lines cut and padded as PaddleOCR's pipeline gives them.
 * Stops after the phase running when `<dir>/STOP` appears (a long run on a shared machine).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const text = (name: string, fallback: string) =>
  args.includes(name) ? args[args.indexOf(name) + 1] : fallback;
const phases = Number(text('--phases', '16'));
const start = Number(text('--start', '1'));
const dir = text('--dir', '.fleetml/bench/recogniser-phases');
const width = text('--width', '160');
const train = text('--train', '8192');
let from = args.includes('--from') ? text('--from', '') : undefined;
const lineFlags = [
  ...(args.includes('--printed') ? ['--printed'] : []),
  ...(args.includes('--crop') ? ['--crop'] : []),
];

/** The learning rate of phase i (1-based): a step down every four phases, then every two. */
const learningRate = (i: number) =>
  i <= 4 ? 0.001 : i <= 8 ? 0.0007 : i <= 12 ? 0.0005 : i <= 16 ? 0.0003 : i <= 18 ? 0.00015 : 0.00007;

/** Runs one phase; resolves with its held-out scores line, or rejects with the child's stderr tail. */
function phase(i: number): Promise<string> {
  const out = join(dir, `p${i}`);
  mkdirSync(out, { recursive: true });
  const argv = ['tsx', 'scripts/bench/distill-recogniser.ts', ...(from ? ['--from', from] : [])];
  argv.push('--dir', out, '--train', train, '--epochs', '1', '--batch', '16', '--width', width);
  argv.push('--lines-seed', String(100 + i), '--shift', '2', '--steps-per-run', '4', '--threads', '2');
  argv.push('--held-out', '256', '--no-latency', '--no-baseline', '--hint-weight', '0');
  argv.push('--blank-weight', '0.5', '--hard-weight', '1', '--lr', String(learningRate(i)), '--warmup', '16');
  argv.push(...lineFlags);
  return new Promise((resolve, reject) => {
    const child = spawn('npx', argv, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('close', (code) => {
      // The phase's lines are only its training data: 755 MB each at 48×160.
      rmSync(join(out, 'x.npy'), { force: true });
      const scores = stderr.split('\n').find((l) => l.includes('shrink:0.5, distilled:'));
      if (code === 0 && scores) resolve(scores);
      else reject(new Error(`phase ${i} failed (exit ${code}): ${stderr.slice(-2000)}`));
    });
  });
}

const pct = (v: number) => `${(v * 100).toFixed(1)} %`;
process.stdout.write(
  '| phase | lr | samples seen | identical decodes | identical text | per-timestep | non-blank timesteps | ended (UTC) |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n',
);
for (let i = start; i < start + phases && !existsSync(join(dir, 'STOP')); i++) {
  const line = await phase(i);
  const s = JSON.parse(line.slice(line.indexOf('{'), line.indexOf('}') + 1)) as {
    lines: number;
    text: number;
    timesteps: number;
    characters: number;
  };
  const seen = (i - start + 1) * Number(train);
  const ended = new Date().toISOString().slice(11, 19);
  process.stdout.write(
    `| ${i} | ${learningRate(i)} | ${seen} | ${pct(s.lines)} | ${pct(s.text)} | ${pct(s.timesteps)} | ${pct(s.characters)} | ${ended} |\n`,
  );
  from = join(dir, `p${i}`, 'student.onnx');
}
