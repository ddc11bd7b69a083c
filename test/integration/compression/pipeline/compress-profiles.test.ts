import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProfileRegistry } from '../../../../cloud/compression/profiles/registry.js';
import { fleetml } from '../../../support/fleetml-cli.js';

// README "Compress models": device profiles of your own through `compress --profiles file.json`,
// and the budget flags `--max-accuracy-drop` / `--latency-ms` the report judges variants by.
// The profile is rpi5's under another name: ARM rules, nothing measured against FP32 here.
const SAMPLE = fileURLToPath(new URL('../../../../cloud/samples/mnist-mlp.onnx', import.meta.url));

describe('fleetml compress --profiles', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-profiles-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('builds for a profile from the file, with the budget the flags set', async () => {
    const profiles = join(dir, 'profiles.json');
    await writeFile(profiles, JSON.stringify([{ ...new ProfileRegistry().get('rpi5'), name: 'lab-pi5' }]));
    const out = join(dir, 'out');
    const r = await fleetml([
      ...['compress', SAMPLE, '--profiles', profiles, '--profile', 'lab-pi5', '--data', 'mnist'],
      ...['--variants', 'int8', '--max-accuracy-drop', '2.5', '--latency-ms', '40', '-o', out, '--json'],
    ]);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(JSON.parse(await readFile(join(out, 'report.json'), 'utf8'))).toEqual(report);
    expect(report).toMatchObject({
      profile: 'lab-pi5',
      maxAccuracyDrop: 2.5,
      latencyObjectiveMs: 40,
      complete: true,
    });
    expect(report.variants.map((v: { name: string; status: string }) => `${v.name} ${v.status}`)).toEqual([
      'original ok',
      'int8 ok',
    ]);
  }, 600_000);

  it('a profile file that is not JSON, or not there, is a coded error', async () => {
    await writeFile(join(dir, 'broken.json'), '[{');
    const args = (file: string) => [
      'compress',
      SAMPLE,
      '--profiles',
      file,
      '--profile',
      'lab',
      '--data',
      'mnist',
      '-o',
      join(dir, 'x'),
    ];
    const broken = await fleetml(args(join(dir, 'broken.json')));
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/^error INPUT_INVALID: --profiles \S+ is not JSON/m);
    const missing = await fleetml(args(join(dir, 'none.json')));
    expect(missing.stderr).toMatch(/^error FILE_NOT_FOUND: cannot read --profiles /m);
  }, 300_000);
});
