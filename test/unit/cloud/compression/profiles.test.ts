import { describe, expect, it } from 'vitest';
import { ProfileRegistry } from '../../../../cloud/compression/profiles/registry.js';
import type { HardwareFacts } from '../../../../shared/protocol/index.js';

const base: HardwareFacts = {
  hostname: 'h',
  arch: 'arm64',
  platform: 'linux',
  cpuModel: 'Cortex-A72',
  cpuCores: 4,
  memoryBytes: 4e9,
  gpu: null,
  executionProviders: ['cpu'],
  onnxruntimeVersion: '1.30.0',
  nodeVersion: 'v20',
};

describe('device profiles', () => {
  const registry = new ProfileRegistry();

  it('has the five built-in profiles', () => {
    expect(
      registry
        .list()
        .map((p) => p.name)
        .sort(),
    ).toEqual(['jetson-orin-nano', 'rpi4', 'rpi5', 'x86-avx2', 'x86-vnni']);
  });

  it('matches devices from their enrollment facts', () => {
    expect(registry.match(base)?.name).toBe('rpi4');
    expect(registry.match({ ...base, cpuModel: 'Cortex-A76' })?.name).toBe('rpi5');
    expect(
      registry.match({ ...base, cpuModel: 'ARMv8 Processor rev 1', gpu: 'NVIDIA Orin (nvgpu)' })?.name,
    ).toBe('jetson-orin-nano');
    expect(
      registry.match({ ...base, arch: 'x64', cpuModel: 'Xeon', cpuFlags: ['avx2', 'avx512_vnni'] })?.name,
    ).toBe('x86-vnni');
    expect(registry.match({ ...base, arch: 'x64', cpuModel: 'Ryzen', cpuFlags: ['avx2'] })?.name).toBe(
      'x86-avx2',
    );
    expect(registry.match({ ...base, cpuModel: 'unknown arm core' })).toBeUndefined();
  });

  it('lets users add profiles and rejects invalid ones with the field named', () => {
    const custom = new ProfileRegistry();
    const rpi4 = custom.get('rpi4');
    custom.add({ ...rpi4, name: 'rpi4-lowmem', memoryBudgetBytes: 128 * 1024 * 1024, priority: 1 });
    expect(custom.match(base)?.name).toBe('rpi4-lowmem');
    expect(() => custom.add({ ...rpi4, name: 'Bad Name' })).toThrow(/profile name/);
    expect(() => custom.get('nope')).toThrow(/known: /);
  });
});
