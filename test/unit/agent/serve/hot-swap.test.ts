// Protocol replies are checked field by field.
type Json = any;

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeModel, encodeModel } from '../../../../cloud/compression/onnx/proto.js';
import { inferBody, type Served, sampleBytes, serveSample } from './helpers.js';

let s: Served;
let dir: string;
const files: string[] = [];

beforeAll(async () => {
  s = await serveSample();
  dir = await mkdtemp(join(tmpdir(), 'fleetml-swap-'));
  // Two releases with different bytes (a doc string) and the same graph.
  for (const tag of ['a', 'b']) {
    const model = decodeModel(await sampleBytes());
    model.docString = tag;
    const path = join(dir, `${tag}.onnx`);
    await writeFile(path, encodeModel(model));
    files.push(path);
  }
}, 60_000);
afterAll(async () => {
  await s?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Eight clients calling infer back to back until told to stop; every non-200 is a failure. */
function load(url: string) {
  let running = true;
  const seen: string[] = [];
  const log: { start: number; version: string }[] = [];
  const failures: string[] = [];
  let ok = 0;
  const client = async () => {
    while (running) {
      const start = performance.now();
      try {
        const res = await fetch(`${url}/v2/models/mnist-mlp/infer`, { method: 'POST', body: inferBody() });
        const body = (await res.json()) as Json;
        if (res.status !== 200) failures.push(`${res.status} ${JSON.stringify(body)}`);
        else {
          ok++;
          log.push({ start, version: body.model_version });
          if (seen.at(-1) !== body.model_version) seen.push(body.model_version);
        }
      } catch (error) {
        failures.push(String(error));
      }
    }
  };
  const clients = Array.from({ length: 8 }, client);
  return {
    seen,
    log,
    failures,
    count: () => ok,
    stop: async () => {
      running = false;
      await Promise.all(clients);
    },
  };
}

async function until(what: string, check: () => boolean, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('hot swap under load', () => {
  it('several swaps, a failed load and a rollback: 0 failed requests, new requests on the new release', async () => {
    const traffic = load(s.url);
    const live: { at: number; version: string }[] = [{ at: 0, version: '1' }];
    try {
      await until('first responses', () => traffic.count() > 20);
      const versions = ['2', '3', '4', '5', '6'];
      for (const [i, version] of versions.entries()) {
        const before = s.registry.get('mnist-mlp')!;
        const r = await s.registry.load({ name: 'mnist-mlp', version, model: files[i % 2] });
        live.push({ at: r.liveSince, version });
        expect(s.registry.get('mnist-mlp')!.version).toBe(version);
        expect(before.retired).toBe(true);
        const at = traffic.count();
        await until(
          `traffic on ${version}`,
          () => traffic.count() > at + 20 && traffic.seen.at(-1) === version,
        );
      }
      // A release that does not load leaves the live one serving.
      await expect(
        s.registry.load({ name: 'mnist-mlp', version: '7', model: new Uint8Array([1, 2, 3]) }),
      ).rejects.toMatchObject({ code: 'RUNTIME_LOAD' });
      expect(s.registry.get('mnist-mlp')!.version).toBe('6');
      // Rollback is just another activation of the older bytes.
      const back = await s.registry.load({ name: 'mnist-mlp', version: '5', model: files[1] });
      live.push({ at: back.liveSince, version: '5' });
      const at = traffic.count();
      await until('traffic after rollback', () => traffic.count() > at + 20 && traffic.seen.at(-1) === '5');
    } finally {
      await traffic.stop();
    }
    expect(traffic.failures).toEqual([]);
    // Every request sent after a release went live was answered by that release or a later one
    // (requests in flight at the switch may finish on the previous one: that is the point).
    const wrong = traffic.log.filter(({ start, version }) => {
      const current = live.findLastIndex((l) => l.at < start);
      return !live.slice(current).some((l) => l.version === version);
    });
    if (wrong.length) console.error(JSON.stringify({ live, wrong: wrong.slice(0, 5) }));
    expect(wrong).toEqual([]);
    expect(new Set(traffic.log.map((l) => l.version))).toEqual(new Set(['1', '2', '3', '4', '5', '6']));
    expect(s.registry.get('mnist-mlp')!.inFlight).toBe(0);
  }, 120_000);
});
