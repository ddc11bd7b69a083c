import type { Command } from 'commander';
import { FleetError } from '../../shared/errors/index.js';

/** `fleetml bench <model.onnx>`: the agent's benchmark on any model file. */
export function register(program: Command): void {
  program
    .command('bench')
    .description(
      'benchmark ONNX models with onnxruntime: warm-up, then timed runs (latency percentiles in ms); ' +
        'several models (e.g. FP32 and INT8 variants) run one after another on the same inputs and ' +
        'are shown side by side with ratios against the first',
    )
    .argument('<models...>', 'paths to .onnx files; the first is the baseline of the ratios')
    .option('--ep <ep>', 'execution provider: auto|cpu|cuda|tensorrt', 'cpu')
    .option(
      '--shape <dims>',
      'input shape for dynamic dimensions, e.g. 1,3,48,320 (without it, symbolic dims are set to 1 and named in a warning)',
    )
    .option('--runs <n>', 'timed runs', '100')
    .option('--warmup <n>', 'warm-up runs', '10')
    .option('--budget <ms>', 'time budget for the timed runs in ms', '30000')
    .option('--threads <n>', 'intra-op threads, 0 = one per core', '0')
    .option('--json', 'print one JSON object on stdout')
    .action(async (models: string[], flags: Record<string, string | boolean | undefined>) => {
      const { stat } = await import('node:fs/promises');
      const { benchmarkModel } = await import('../bench/benchmark.js');
      const { chooseExecutionProvider, intraOpThreadsFor } = await import('../runtime/ort.js');
      const sizes: number[] = [];
      for (const model of models) {
        const info = await stat(model).catch(() => {
          throw new FleetError('FILE_NOT_FOUND', `model file ${model} does not exist`, { path: model });
        });
        sizes.push(info.size);
      }
      const int = (name: string, min: number) => {
        const value = Number(flags[name]);
        if (!Number.isInteger(value) || value < min) {
          throw new FleetError('INPUT_INVALID', `--${name} must be an integer >= ${min}, got ${flags[name]}`);
        }
        return value;
      };
      let shape: number[] | undefined;
      if (typeof flags.shape === 'string') {
        shape = flags.shape.split(',').map(Number);
        if (shape.some((v) => !Number.isInteger(v) || v <= 0)) {
          throw new FleetError(
            'INPUT_INVALID',
            `--shape must be positive integers separated by commas, got ${flags.shape}`,
          );
        }
      }
      const epFlag = String(flags.ep);
      if (!['auto', 'cpu', 'cuda', 'tensorrt'].includes(epFlag)) {
        throw new FleetError('INPUT_INVALID', `--ep must be auto, cpu, cuda or tensorrt, got ${epFlag}`);
      }
      const ep = await chooseExecutionProvider(epFlag as 'auto');
      const options = {
        runs: int('runs', 1),
        warmupRuns: int('warmup', 0),
        budgetMs: int('budget', 1),
        shape,
      };
      const profile = { ep, intraOpThreads: int('threads', 0) };
      if (models.length > 1) {
        const { compareBenchmarks, formatComparison } = await import('../bench/compare.js');
        // One untimed pass first: onnxruntime's one-time start-up (library, thread pool, allocator)
        // would otherwise be charged to whichever model happens to come first.
        await benchmarkModel(models[0], profile, { ...options, runs: 1, warmupRuns: 1 });
        const entries = [];
        for (const [i, path] of models.entries()) {
          entries.push({ path, sizeBytes: sizes[i], result: await benchmarkModel(path, profile, options) });
        }
        const compared = compareBenchmarks(entries);
        if (flags.json) {
          const out = compared.map(({ path, sizeBytes, result: r, ratios }) => ({
            path,
            sizeBytes,
            p50Ms: r.p50Ms,
            p90Ms: r.p90Ms,
            p99Ms: r.p99Ms,
            maxMs: r.maxMs,
            meanMs: r.meanMs,
            throughput: r.throughput,
            loadMs: r.loadMs,
            runs: r.runs,
            throttled: r.throttled,
            ratios,
          }));
          const threads = intraOpThreadsFor(profile.intraOpThreads);
          process.stdout.write(`${JSON.stringify({ ep, threads, baseline: models[0], models: out })}\n`);
        } else {
          process.stdout.write(`${formatComparison(compared)}\n`);
        }
        return;
      }
      const model = models[0];
      const result = await benchmarkModel(model, profile, options);
      if (flags.json) {
        const { p50Ms, p90Ms, p99Ms, maxMs, meanMs, throughput, loadMs, peakRssBytes, runs, warmupRuns } =
          result;
        const { tempBeforeC, tempAfterC, throttled } = result;
        const out = {
          p50Ms,
          p90Ms,
          p99Ms,
          maxMs,
          meanMs,
          throughput,
          loadMs,
          peakRssBytes,
          ep,
          threads: intraOpThreadsFor(profile.intraOpThreads),
          runs,
          warmupRuns,
        };
        const { inputShapes, unresolvedDims } = result;
        process.stdout.write(
          `${JSON.stringify({ ...out, tempBeforeC, tempAfterC, throttled, inputShapes, unresolvedDims })}\n`,
        );
      } else {
        process.stdout.write(
          `${model} on ${ep}: ${result.runs} runs after ${result.warmupRuns} warm-up\n` +
            `  p50 ${result.p50Ms.toFixed(3)} ms  p90 ${result.p90Ms.toFixed(3)} ms  p99 ${result.p99Ms.toFixed(3)} ms  max ${result.maxMs.toFixed(3)} ms\n` +
            `  throughput ${result.throughput.toFixed(1)}/s  load ${result.loadMs.toFixed(1)} ms  peak RSS ${(result.peakRssBytes / 1048576).toFixed(1)} MiB\n` +
            `  temperature ${result.tempBeforeC ?? '?'} -> ${result.tempAfterC ?? '?'} °C${result.throttled ? '  THROTTLED: latencies are suspect' : ''}\n` +
            (result.unresolvedDims.length > 0
              ? `  warning: symbolic dimensions ${result.unresolvedDims.join(', ')} set to 1 (at ${JSON.stringify(result.inputShapes)}); give --shape\n`
              : ''),
        );
      }
    });
}
