/** Hardware facts of a Raspberry Pi 5 as its agent reports them, for tests that enroll devices. */
export const PI_HARDWARE = {
  hostname: 'pi',
  arch: 'arm64',
  platform: 'linux',
  cpuModel: 'Cortex-A76',
  cpuCores: 4,
  memoryBytes: 8e9,
  gpu: null,
  executionProviders: ['cpu' as const],
  onnxruntimeVersion: '1.30.0',
  nodeVersion: process.version,
};
