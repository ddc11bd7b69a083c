import { describe, expect, it } from 'vitest';
import { ProfileRegistry } from '../../../../cloud/compression/profiles/registry.js';
import { hostMeasurementsApply, int8OptionsFor } from '../../../../cloud/compression/quantize/target.js';
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

  it('builds ARM and Jetson INT8 from kernel rules and applies x86 measurements only to x86 profiles', () => {
    const x86 = { arch: 'x64', cpuModel: 'EPYC', cpuFlags: ['avx2'], gpu: null };
    const arm = { arch: 'arm64', cpuModel: '', cpuFlags: ['asimddp'], gpu: null };
    const jetson = registry.get('jetson-orin-nano');
    expect(int8OptionsFor(jetson)).toMatchObject({ activationType: 'int8', symmetricActivations: true });
    for (const name of ['rpi4', 'rpi5']) {
      expect(int8OptionsFor(registry.get(name))).toMatchObject({
        activationType: 'int8',
        symmetricActivations: false,
        perChannel: true,
        reduceRange: false,
      });
      expect(hostMeasurementsApply(registry.get(name), x86)).toBe(false);
    }
    expect(hostMeasurementsApply(jetson, x86)).toBe(false);
    expect(hostMeasurementsApply(registry.get('x86-avx2'), x86)).toBe(true);
    expect(hostMeasurementsApply(registry.get('x86-vnni'), arm)).toBe(false);
    // Profiles written before these fields get the defaults.
    const { batch, ...old } = registry.get('rpi4');
    const added = new ProfileRegistry([
      { ...old, name: 'legacy', int8: { ...old.int8, decisions: undefined } },
    ]);
    expect(added.get('legacy')).toMatchObject({ batch: 1, int8: { decisions: 'rules' } });
  });
});
