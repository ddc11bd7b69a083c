import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { detectBoard } from '../../../../agent/facts/board.js';
import { armCoreName, parseCpuInfo } from '../../../../agent/facts/cpuinfo.js';
import { FactsRoot } from '../../../../agent/facts/root.js';
import { CpuLoadSampler, readHardwareFacts } from '../../../../agent/hardware.js';
import { ProfileRegistry } from '../../../../cloud/compression/profiles/registry.js';
import { isFleetError } from '../../../../shared/errors/index.js';

const BOARDS = resolve(import.meta.dirname, '../../../fixtures/boards');
const board = (name: string) => detectBoard(new FactsRoot(join(BOARDS, name)), 'arm64');
const facts = (name: string, arch = 'arm64') =>
  readHardwareFacts({
    executionProviders: ['cpu'],
    onnxruntimeVersion: '1.30.0',
    factsRoot: join(BOARDS, name),
    arch,
  });

describe('board detection from the files real boards expose', () => {
  it('Raspberry Pi 4: device-tree model, 4x Cortex-A72 (0xd08), no dot product', async () => {
    const b = await board('rpi4');
    expect(b.kind).toBe('raspberry-pi');
    expect(b.model).toBe('Raspberry Pi 4 Model B Rev 1.4');
    expect(b.compatible).toEqual(['raspberrypi,4-model-b', 'brcm,bcm2711']);
    expect(b.armCores).toEqual(['Cortex-A72']);
    expect(b.cpuCores).toBe(4);
    expect(b.cpuFeatures).not.toContain('asimddp');
    expect(b.cpuModel).toBe('Raspberry Pi 4 Model B Rev 1.4 (4x Cortex-A72)');
    expect(b.gpu).toBeNull();
    expect(b.memoryBytes).toBe(3884412 * 1024);
    expect(b.unsupported).toBeNull();
  });

  it('Raspberry Pi 5: 4x Cortex-A76 (0xd0b) with asimddp, without i8mm', async () => {
    const b = await board('rpi5');
    expect(b.kind).toBe('raspberry-pi');
    expect(b.armCores).toEqual(['Cortex-A76']);
    expect(b.cpuFeatures).toContain('asimddp');
    expect(b.cpuFeatures).not.toContain('i8mm');
    expect(b.cpuModel).toBe('Raspberry Pi 5 Model B Rev 1.0 (4x Cortex-A76)');
  });

  it('Jetson Orin Nano: nv_tegra_release and the tegra234 compatible string', async () => {
    const b = await board('jetson-orin-nano');
    expect(b.kind).toBe('jetson');
    expect(b.model).toBe('NVIDIA Jetson Orin Nano Developer Kit');
    expect(b.l4tRelease).toBe('R36.4.0');
    expect(b.armCores).toEqual(['Cortex-A78AE']);
    expect(b.cpuCores).toBe(6);
    expect(b.gpu).toBe('NVIDIA Tegra234 Orin (Ampere GPU), L4T R36.4.0');
  });

  it('a 32-bit Raspberry Pi OS is refused, saying to install the 64-bit OS', async () => {
    const b = await board('rpi-os-32bit');
    expect(b.unsupported).toMatch(/32-bit ARM/);
    expect(b.unsupported).toMatch(/Raspberry Pi OS \(64-bit\)/);
    const error = await facts('rpi-os-32bit').catch((e) => e);
    expect(isFleetError(error) && error.code).toBe('PLATFORM_UNSUPPORTED');
    // A 32-bit userland under a 64-bit kernel (Node says 'arm') is refused as well.
    const armhf = await facts('rpi4', 'arm').catch((e) => e);
    expect(isFleetError(armhf) && armhf.code).toBe('PLATFORM_UNSUPPORTED');
  });

  it('an empty root yields no board and no host facts', async () => {
    const b = await board('does-not-exist');
    expect(b).toMatchObject({
      kind: 'other',
      model: null,
      cpuModel: null,
      cpuFeatures: [],
      unsupported: null,
    });
  });

  it('unknown ARM parts keep their numbers; x86 cpuinfo gives model name and flags', () => {
    expect(armCoreName('0x41', '0xD0B')).toBe('Cortex-A76');
    expect(armCoreName('0x61', '0x022')).toBe('ARM core 0x61/0x022');
    const x86 = parseCpuInfo(
      'processor\t: 0\nmodel name\t: Intel(R) Xeon(R) CPU\nflags\t\t: fpu avx2 avx512_vnni\n\n',
    );
    expect(x86).toMatchObject({
      cores: 1,
      modelName: 'Intel(R) Xeon(R) CPU',
      armCores: [],
      armArchitecture: null,
    });
    expect(x86.features).toContain('avx512_vnni');
  });
});

describe('the cloud matches each board to its profile from these facts', () => {
  const profiles = new ProfileRegistry();
  it.each([
    ['rpi4', 'rpi4'],
    ['rpi5', 'rpi5'],
    ['jetson-orin-nano', 'jetson-orin-nano'],
  ])('%s enrolls as %s', async (fixture, profile) => {
    const hw = await facts(fixture);
    expect(hw.arch).toBe('arm64');
    expect(profiles.match(hw)?.name).toBe(profile);
  });

  it('the facts root hides the host: cpu flags and memory come from the fixture', async () => {
    const hw = await facts('rpi5');
    expect(hw.cpuFlags).toContain('asimddp');
    expect(hw.cpuFlags).not.toContain('sse2');
    expect(hw.memoryBytes).toBe(8245616 * 1024);
    expect(hw.cpuCores).toBe(4);
  });
});

describe('CpuLoadSampler', () => {
  it('each sampler measures since its own previous reading', () => {
    const t0 = [{ busy: 100, total: 1000 }];
    const t1 = [{ busy: 600, total: 2000 }];
    const a = new CpuLoadSampler();
    const b = new CpuLoadSampler();
    a.sample(t0);
    b.sample(t0);
    expect(a.sample(t1).cpuLoad).toBe(50);
    // A shared module-level reading would leave b with a zero-length interval here.
    expect(b.sample(t1).cpuLoad).toBe(50);
  });
});
