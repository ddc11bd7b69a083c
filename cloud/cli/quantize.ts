import type { Command } from 'commander';

interface QuantizeFlags {
  output: string;
  calibration?: string;
  method: string;
  format: string;
  weights: string;
  activations?: string;
  profile?: string;
  batch?: string;
  perChannel: boolean;
  exclude?: string;
  maxAccuracyDrop?: string;
  minSnr?: string;
  minCosine?: string;
  search: string;
  data?: string;
  labels?: string;
  samples: string;
  blockSize: string;
  dynamic?: boolean;
  fp16?: boolean;
  tune?: boolean;
  allowSlower?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('quantize')
    .description(
      'Quantize an FP32 ONNX model (INT8). On an x86 target measured here, static QDQ, dynamic and\nMatMul-only INT8 (when weight MatMuls hold most weights) are measured against FP32 at the batch size and the fastest is written;\nwhen none is faster, the FP32 model is written unchanged (verdict not-faster)',
    )
    .argument('<model>', 'input .onnx model')
    .requiredOption('-o, --output <path>', 'output .onnx path')
    .option('--calibration <x.npy>', 'calibration inputs [N, ...] (.npy float32) or mnist:train')
    .option('--method <name>', 'calibration method: minmax|percentile|entropy|mse', 'minmax')
    .option('--format <format>', 'output format: qdq', 'qdq')
    .option(
      '--weights <type>',
      'weight type: int8|int4 (int4: weight-only MatMulNBits, no calibration)',
      'int8',
    )
    .option('--block-size <n>', 'INT4 block size along K (power of two >= 16)', '32')
    .option('--activations <type>', "activation type: uint8|int8 (default: the target profile's)")
    .option(
      '--profile <name>',
      'target device profile (x86-avx2, x86-vnni, rpi5, rpi4, jetson-orin-nano, …); default: the profile this machine matches',
    )
    .option('--batch <n>', "batch size INT8 is measured against FP32 at (default: the profile's)")
    .option('--per-channel', 'per-channel weight scales (default on)', true)
    .option('--no-per-channel', 'one scale per weight tensor')
    .option('--exclude <nodes>', 'comma-separated node names to keep in float')
    .option('--max-accuracy-drop <points>', 'accuracy budget in top-1 points (needs --data and --labels)')
    .option('--min-snr <dB>', 'minimum output SNR against FP32 (needs --data)')
    .option('--min-cosine <c>', 'minimum mean output cosine against FP32 (needs --data)')
    .option(
      '--search <kind>',
      'how a budget picks float layers: fallback (worst layer first, one by one) | sensitivity (tensors ranked by their measured error alone, smallest float prefix that meets the budget)',
      'fallback',
    )
    .option('--data <x.npy>', 'evaluation inputs for the accuracy budget')
    .option('--labels <y.npy>', 'evaluation labels for the accuracy budget')
    .option('--samples <n>', 'calibration samples to use', '64')
    .option('--dynamic', 'dynamic INT8 (weights only, activations quantized at run time)')
    .option('--fp16', 'FP16 weights and compute, float32 inputs/outputs')
    .option(
      '--tune',
      'measure float vs int8 per op type on this machine and keep the faster (default on; x86 profiles only)',
      true,
    )
    .option('--no-tune', 'skip that measurement: every op with an int8 form runs int8 (faster to build)')
    .option(
      '--allow-slower',
      'write the fastest INT8 form even when it measured no faster than FP32 (e.g. for size)',
    )
    .option('--json', 'print one JSON object on stdout')
    .action(async (modelPath: string, flags: QuantizeFlags) => {
      const { runQuantize } = await import('./quantize-action.js');
      await runQuantize(modelPath, flags);
    });
}

export type { QuantizeFlags };
