import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeNode } from '../../../cloud/compression/onnx/build.js';
import { decodeModel, encodeModel } from '../../../cloud/compression/onnx/proto.js';
import { startTestCloud, type TestCloud } from '../support/test-cloud.js';

// Issue 14: the cloud loads every uploaded model in onnxruntime (in a child process) and refuses
// what a device would refuse, with a coded error, instead of failing later on the device.
const SAMPLE = new URL('../../../cloud/samples/mnist-mlp.onnx', import.meta.url);

describe('checks at upload', () => {
  let t: TestCloud;
  let sample: Uint8Array;
  beforeAll(async () => {
    t = await startTestCloud();
    sample = await readFile(SAMPLE);
  }, 60_000);
  afterAll(() => t?.stop());

  const upload = async (bytes: Uint8Array, name: string) => {
    const response = await fetch(`${t.cloud.httpUrl}/api/models?name=${name}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.cloud.adminToken}`, 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    return { status: response.status, body: (await response.json()) as any };
  };
  const edited = (edit: (m: ReturnType<typeof decodeModel>) => void) => {
    const model = decodeModel(sample);
    edit(model);
    return encodeModel(model);
  };

  it('accepts a model onnxruntime loads', async () => {
    const ok = await upload(sample, 'good');
    expect(ok.status).toBe(201);
  }, 60_000);

  it('refuses an unknown operator, a broken graph and missing external data, each with its code', async () => {
    const unknownOp = edited((m) =>
      m.graph.node.push(makeNode('NoSuchOperator', ['logits'], ['junk'], [], 'x')),
    );
    const r1 = await upload(unknownOp, 'unknown-op');
    expect(r1.body.error?.code, JSON.stringify(r1.body)).toBe('ONNX_UNSUPPORTED_OP');
    expect(r1.body.error.message).toContain('NoSuchOperator');

    const brokenGraph = edited((m) => {
      m.graph.node[0].input = ['no-such-tensor', ...(m.graph.node[0].input ?? []).slice(1)];
    });
    const r2 = await upload(brokenGraph, 'broken-graph');
    expect(r2.body.error?.code, JSON.stringify(r2.body)).toBe('ONNX_INVALID');

    const external = edited((m) => {
      const w = m.graph.initializer![0];
      delete w.rawData;
      w.floatData = [];
      w.dataLocation = 1;
      w.externalData = [
        { key: 'location', value: 'weights.bin' },
        { key: 'offset', value: '0' },
        { key: 'length', value: String(4 * w.dims!.reduce((a, b) => Number(a) * Number(b), 1)) },
      ];
    });
    const r3 = await upload(external, 'external');
    expect(r3.body.error?.code, JSON.stringify(r3.body)).toBe('ONNX_EXTERNAL_DATA');
    const { body } = await t.api('GET', '/api/models');
    expect(body.models.map((m: { name: string }) => m.name)).toEqual(['good']);
  }, 120_000);
});
