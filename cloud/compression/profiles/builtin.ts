import type { DeviceProfile } from './types.js';

const MiB = 1024 * 1024;

/**
 * The built-in profiles (the device table in docs/architecture.md). Users add their own through the API or a
 * JSON file; a user profile with the same name replaces a built-in one.
 */
export const BUILTIN_PROFILES: DeviceProfile[] = [
  {
    name: 'jetson-orin-nano',
    description:
      'NVIDIA Jetson Orin Nano: 6x Cortex-A78AE, Ampere GPU; TensorRT wants symmetric S8S8, FP16 is cheap',
    arch: 'arm64',
    executionProviders: ['tensorrt', 'cuda', 'cpu'],
    precisions: ['fp16', 'int8', 'fp32'],
    // TensorRT: symmetric S8S8, zero point 0 for activations too.
    int8: {
      activations: 'int8',
      weights: 'int8',
      perChannel: true,
      reduceRange: false,
      symmetricActivations: true,
      decisions: 'rules',
    },
    batch: 1,
    memoryBudgetBytes: 2048 * MiB,
    maxModelBytes: 512 * MiB,
    latencyObjectiveMs: 10,
    session: { intraOpThreads: 6, graphOptimizationLevel: 'all' },
    match: { arch: 'arm64', gpuPattern: 'nvidia|tegra|orin' },
    priority: 10,
  },
  {
    name: 'rpi5',
    description: 'Raspberry Pi 5: 4x Cortex-A76 (ARMv8.2 dot-product): INT8 is worthwhile',
    arch: 'arm64',
    executionProviders: ['cpu'],
    precisions: ['int8', 'fp32'],
    // ARM (MLAS sdot/smull kernels): S8S8, symmetric per-channel weights, no x86 measurements.
    int8: {
      activations: 'int8',
      weights: 'int8',
      perChannel: true,
      reduceRange: false,
      symmetricActivations: false,
      decisions: 'rules',
    },
    batch: 1,
    memoryBudgetBytes: 1024 * MiB,
    maxModelBytes: 100 * MiB,
    latencyObjectiveMs: 50,
    session: { intraOpThreads: 4, graphOptimizationLevel: 'all' },
    match: { arch: 'arm64', cpuModelPattern: 'a76|cortex-a76|raspberry pi 5' },
    priority: 20,
  },
  {
    name: 'rpi4',
    description: 'Raspberry Pi 4: 4x Cortex-A72 (ARMv8.0, no dot-product): INT8 gains are small, measure',
    arch: 'arm64',
    executionProviders: ['cpu'],
    precisions: ['int8', 'fp32'],
    // ARM (MLAS sdot/smull kernels): S8S8, symmetric per-channel weights, no x86 measurements.
    int8: {
      activations: 'int8',
      weights: 'int8',
      perChannel: true,
      reduceRange: false,
      symmetricActivations: false,
      decisions: 'rules',
    },
    batch: 1,
    memoryBudgetBytes: 512 * MiB,
    maxModelBytes: 50 * MiB,
    latencyObjectiveMs: 100,
    session: { intraOpThreads: 4, graphOptimizationLevel: 'all' },
    match: { arch: 'arm64', cpuModelPattern: 'a72|cortex-a72|raspberry pi 4|bcm2711' },
    priority: 30,
  },
  {
    name: 'x86-vnni',
    description: 'x86-64 with AVX-512 VNNI or AVX-VNNI: S8S8 or U8S8 INT8 without saturation',
    arch: 'x64',
    executionProviders: ['cuda', 'cpu'],
    precisions: ['int8', 'fp32'],
    int8: {
      activations: 'uint8',
      weights: 'int8',
      perChannel: true,
      reduceRange: false,
      symmetricActivations: false,
      decisions: 'measured',
    },
    batch: 1,
    memoryBudgetBytes: 4096 * MiB,
    maxModelBytes: 1024 * MiB,
    latencyObjectiveMs: 20,
    session: { intraOpThreads: 0, graphOptimizationLevel: 'all' },
    match: { arch: 'x64', cpuFlag: 'vnni' },
    priority: 40,
  },
  {
    name: 'x86-avx2',
    description: 'x86-64 with AVX2 but no VNNI: U8S8 can saturate, so weights use reduce_range',
    arch: 'x64',
    executionProviders: ['cuda', 'cpu'],
    precisions: ['int8', 'fp32'],
    int8: {
      activations: 'uint8',
      weights: 'int8',
      perChannel: true,
      reduceRange: true,
      symmetricActivations: false,
      decisions: 'measured',
    },
    batch: 1,
    memoryBudgetBytes: 4096 * MiB,
    maxModelBytes: 1024 * MiB,
    latencyObjectiveMs: 30,
    session: { intraOpThreads: 0, graphOptimizationLevel: 'all' },
    match: { arch: 'x64' },
    priority: 50,
  },
];
