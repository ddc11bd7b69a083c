import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CloudCli, cloudCli } from '../../support/fleetml-cli.js';
import { taggedSample } from '../../support/models.js';
import { FleetHarness } from '../e2e/fleet-harness.js';

// Issue 14: a model name has releases; a release has variants linked to their original.

describe('model lineage: releases, variants, deploy NAME, models rm', () => {
  let fleet: FleetHarness;
  let cli: CloudCli['cli'];
  let json: CloudCli['json'];
  const tagged = async (tag: string) => {
    const path = `${fleet.dir}/${tag}.onnx`;
    await writeFile(path, await taggedSample(tag));
    return path;
  };
  beforeAll(async () => {
    fleet = await FleetHarness.start(1);
    ({ cli, json } = cloudCli(fleet.cloud));
  }, 60_000);
  afterAll(async () => fleet?.stop());

  it('numbers releases, links variants, resolves deploy NAME and refuses ambiguity', async () => {
    const r1 = await json('models', 'add', await tagged('r1'), '--name', 'digits');
    const r2 = await json('models', 'add', await tagged('r2'), '--name', 'digits');
    expect([r1.release, r2.release]).toEqual([1, 2]);
    const int8 = await json(
      'models',
      'add',
      await tagged('r2-int8'),
      '--variant',
      'int8',
      '--variant-of',
      r2.id,
    );
    expect(int8).toMatchObject({ name: 'digits', release: 2, sourceModelId: r2.id });
    const fp16 = await json(
      'models',
      'add',
      await tagged('r2-fp16'),
      '--variant',
      'fp16',
      '--variant-of',
      r2.id,
    );

    const device = fleet.deviceIds()[0];
    // The latest release has three variants: without --variant or --profile, say which exist.
    const ambiguous = await cli('deploy', 'digits', '--to', device);
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toMatch(/error CONFLICT: release 2 of digits has 3 variants/);
    for (const m of [r2, int8, fp16]) expect(ambiguous.stderr).toContain(m.id);

    const missing = await cli('deploy', 'digits', '--variant', 'int4', '--to', device);
    expect(missing.stderr).toMatch(/error NOT_FOUND: no variant int4 in release 2 of digits; candidates: /);

    const explicit = await cli('deploy', 'digits', '--release', '1', '--to', device, '--timeout', '60');
    expect(explicit.code, explicit.stderr).toBe(0);
    expect(explicit.stdout).toContain(`deploying digits release 1 variant fp32 (${r1.id})`);
    const rollout = /rollouts show (r-[0-9a-f]+) --watch/.exec(explicit.stdout)![1];
    const watched = await cli('rollouts', 'show', rollout, '--watch', '--interval', '1');
    expect(watched.code).toBe(0);
    expect(watched.stdout).toMatch(new RegExp(`${rollout}\\s+succeeded`));

    // With a profile, the recommendation decides (nothing measured yet: the original, first accepted).
    const profile = (await fleet.cloud.services.devices.get(device)).profile ?? 'x86-avx2';
    const recommended = await cli(
      'deploy',
      'digits',
      '--profile',
      profile,
      '--to',
      device,
      '--timeout',
      '60',
    );
    expect(recommended.stdout, recommended.stderr).toContain(
      `deploying digits release 2 variant fp32 (${r2.id}): recommended for ${profile} among 3 variants of release 2`,
    );
    await fleet.waitRollout(/rollouts show (r-[0-9a-f]+)/.exec(recommended.stdout)![1]);

    const chosen = await json('deploy', 'digits', '--variant', 'int8', '--to', device, '--timeout', '60');
    expect(chosen.resolved.model.id).toBe(int8.id);
    await fleet.waitRollout(chosen.id);

    // Deletion: refused while used or while variants remain; allowed for an unused variant.
    const inUse = await cli('models', 'rm', int8.id);
    expect(inUse.stderr).toMatch(/error CONFLICT: .* is still used by/);
    const hasVariants = await cli('models', 'rm', r2.id);
    expect(hasVariants.stderr).toMatch(/error CONFLICT: .* has variants/);
    const removed = await json('models', 'rm', fp16.id);
    expect(removed.id).toBe(fp16.id);
    const { models } = await json('models', 'list');
    expect(models.map((m: { id: string }) => m.id)).not.toContain(fp16.id);
  }, 240_000);
});
