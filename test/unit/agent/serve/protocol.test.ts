// Protocol replies are checked field by field.
type Json = any;

import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSession, makeTensor } from '../../../../agent/runtime/ort.js';
import { InferenceServer } from '../../../../agent/serve/index.js';
import { createLogger } from '../../../../shared/logger.js';
import { digit, inferBody, readBinaryResponse, SAMPLE, type Served, serveSample } from './helpers.js';

let s: Served;
let expected: number[];

beforeAll(async () => {
  s = await serveSample({ maxBodyBytes: 1_000_000 });
  // The reference: a bare onnxruntime session on the same model and input.
  const session = await createSession(SAMPLE, { intraOpThreads: 1 });
  const out = await session.run({ input: makeTensor('float32', Float32Array.from(digit()), [1, 1, 28, 28]) });
  expected = Array.from(out.logits.data as Float32Array);
  await session.release();
}, 60_000);
afterAll(() => s?.stop());

const post = (path: string, body: string | Buffer, headers: Record<string, string> = {}) =>
  fetch(`${s.url}${path}`, { method: 'POST', body, headers });

async function expectProtocolError(res: Response, status: number, code: string, text: RegExp) {
  expect(res.status).toBe(status);
  const body = (await res.json()) as Json;
  expect(typeof body.error).toBe('string');
  expect(body.error).toMatch(text);
  expect(body.code).toBe(code);
}

describe('health and metadata', () => {
  it('server metadata names the binary tensor extension', async () => {
    const body = (await (await fetch(`${s.url}/v2`)).json()) as Json;
    expect(body.name).toBe('fleetml');
    expect(body.extensions).toContain('binary_tensor_data');
  });

  it('live and ready', async () => {
    const live = await fetch(`${s.url}/v2/health/live`);
    expect(live.status).toBe(200);
    expect(await live.json()).toEqual({ live: true });
    const ready = await fetch(`${s.url}/v2/health/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ready: true });
  });

  it('model metadata with datatypes and shapes (-1 for the dynamic batch)', async () => {
    for (const path of ['/v2/models/mnist-mlp', '/v2/models/mnist-mlp/versions/1']) {
      const res = await fetch(`${s.url}${path}`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        name: 'mnist-mlp',
        versions: ['1'],
        platform: 'onnxruntime_onnx',
        inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 1, 28, 28] }],
        outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, 10] }],
      });
    }
  });

  it('model ready, and clear errors for unknown models and versions', async () => {
    expect((await fetch(`${s.url}/v2/models/mnist-mlp/ready`)).status).toBe(200);
    expect((await fetch(`${s.url}/v2/models/mnist-mlp/versions/1/ready`)).status).toBe(200);
    const stale = await fetch(`${s.url}/v2/models/mnist-mlp/versions/7/ready`);
    expect(stale.status).toBe(400);
    expect(await stale.json()).toEqual({ name: 'mnist-mlp', ready: false });
    await expectProtocolError(
      await fetch(`${s.url}/v2/models/nope`),
      404,
      'NOT_FOUND',
      /unknown model 'nope'/,
    );
    await expectProtocolError(await fetch(`${s.url}/v2/models/nope/ready`), 404, 'NOT_FOUND', /nope/);
    await expectProtocolError(
      await fetch(`${s.url}/v2/models/mnist-mlp/versions/7`),
      404,
      'NOT_FOUND',
      /no served version '7'/,
    );
    await expectProtocolError(await fetch(`${s.url}/v2/nothing`), 404, 'NOT_FOUND', /no such endpoint/);
    await expectProtocolError(await fetch(`${s.url}/metrics`), 404, 'NOT_FOUND', /no such endpoint/);
  });
});

describe('infer with JSON tensors', () => {
  it('returns the same logits as a bare session.run, flat or nested data', async () => {
    const rows = digit();
    const nested = [[Array.from({ length: 28 }, (_, r) => rows.slice(r * 28, r * 28 + 28))]];
    for (const data of [rows, nested]) {
      const res = await post('/v2/models/mnist-mlp/infer', inferBody(data));
      expect(res.status).toBe(200);
      const body = (await res.json()) as Json;
      expect(body.model_name).toBe('mnist-mlp');
      expect(body.model_version).toBe('1');
      expect(body.outputs).toHaveLength(1);
      expect(body.outputs[0]).toMatchObject({ name: 'logits', datatype: 'FP32', shape: [1, 10] });
      expect(body.outputs[0].data).toHaveLength(10);
      for (const [i, v] of (body.outputs[0].data as number[]).entries())
        expect(v).toBeCloseTo(expected[i], 5);
    }
  });

  it('echoes the request id and serves a versioned path and a batch of two', async () => {
    const body = JSON.stringify({
      id: 'req-42',
      inputs: [{ name: 'input', shape: [2, 1, 28, 28], datatype: 'FP32', data: [...digit(), ...digit()] }],
      outputs: [{ name: 'logits' }],
    });
    const res = await post('/v2/models/mnist-mlp/versions/1/infer', body);
    expect(res.status).toBe(200);
    const out = (await res.json()) as Json;
    expect(out.id).toBe('req-42');
    expect(out.outputs[0].shape).toEqual([2, 10]);
    expect(out.outputs[0].data.slice(10)).toEqual(out.outputs[0].data.slice(0, 10));
  });
});

describe('infer with the binary tensor extension', () => {
  const binaryRequest = (outputs: unknown, parameters?: unknown) => {
    const header = Buffer.from(
      JSON.stringify({
        inputs: [
          {
            name: 'input',
            shape: [1, 1, 28, 28],
            datatype: 'FP32',
            parameters: { binary_data_size: 784 * 4 },
          },
        ],
        ...(outputs ? { outputs } : {}),
        ...(parameters ? { parameters } : {}),
      }),
    );
    const data = Buffer.from(Float32Array.from(digit()).buffer);
    // An odd header length puts the tensor at an unaligned offset: the server must cope.
    const padded = header.length % 2 === 0 ? Buffer.concat([header, Buffer.from(' ')]) : header;
    return {
      body: Buffer.concat([padded, data]),
      headers: {
        'content-type': 'application/octet-stream',
        'inference-header-content-length': String(padded.length),
      },
    };
  };

  it('binary input, JSON output', async () => {
    const { body, headers } = binaryRequest(null);
    const res = await post('/v2/models/mnist-mlp/infer', body, headers);
    expect(res.status).toBe(200);
    const out = (await res.json()) as Json;
    for (const [i, v] of (out.outputs[0].data as number[]).entries()) expect(v).toBeCloseTo(expected[i], 5);
  });

  for (const [label, outputs, parameters] of [
    ['binary_data on the output', [{ name: 'logits', parameters: { binary_data: true } }], undefined],
    ['binary_data_output on the request', undefined, { binary_data_output: true }],
  ] as const) {
    it(`binary output via ${label}`, async () => {
      const { body, headers } = binaryRequest(outputs, parameters);
      const res = await post('/v2/models/mnist-mlp/infer', body, headers);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/octet-stream');
      const { header, rest } = await readBinaryResponse(res);
      expect(header.outputs[0]).toEqual({
        name: 'logits',
        datatype: 'FP32',
        shape: [1, 10],
        parameters: { binary_data_size: 40 },
      });
      const logits = new Float32Array(new Uint8Array(rest).buffer);
      expect(Array.from(logits)).toEqual(expected.map((v) => Math.fround(v)));
    });
  }

  it('refuses sizes that do not add up', async () => {
    const { body, headers } = binaryRequest(null);
    await expectProtocolError(
      await post('/v2/models/mnist-mlp/infer', body.subarray(0, body.length - 4), headers),
      400,
      'INPUT_INVALID',
      /runs past the end/,
    );
    await expectProtocolError(
      await post('/v2/models/mnist-mlp/infer', Buffer.concat([body, Buffer.alloc(8)]), headers),
      400,
      'INPUT_INVALID',
      /binary bytes; the inputs claim/,
    );
    await expectProtocolError(
      await post('/v2/models/mnist-mlp/infer', body, {
        ...headers,
        'inference-header-content-length': '999999',
      }),
      400,
      'INPUT_INVALID',
      /Inference-Header-Content-Length/,
    );
  });
});

describe('bad requests get protocol errors and the service keeps serving', () => {
  const cases: [string, () => Promise<Response>, number, string, RegExp][] = [
    [
      'wrong shape',
      () => post('/v2/models/mnist-mlp/infer', inferBody(digit(), [1, 784])),
      400,
      'ONNX_SHAPE',
      /expects \[-1,1,28,28\]/,
    ],
    [
      'too few elements',
      () => post('/v2/models/mnist-mlp/infer', inferBody(digit().slice(1))),
      400,
      'ONNX_SHAPE',
      /783 elements/,
    ],
    [
      'too many elements',
      () => post('/v2/models/mnist-mlp/infer', inferBody([...digit(), 1])),
      400,
      'ONNX_SHAPE',
      /more than the 784/,
    ],
    [
      'wrong datatype',
      () => post('/v2/models/mnist-mlp/infer', inferBody(digit(), undefined, 'INT32')),
      400,
      'SERVE_DATATYPE',
      /expects FP32/,
    ],
    [
      'a string in FP32 data',
      () => post('/v2/models/mnist-mlp/infer', inferBody(['x', ...digit().slice(1)])),
      400,
      'SERVE_DATATYPE',
      /"x" is not a FP32/,
    ],
    [
      'unknown datatype',
      () => post('/v2/models/mnist-mlp/infer', inferBody(digit(), undefined, 'FP8')),
      400,
      'SERVE_DATATYPE',
      /FP8/,
    ],
    ['not JSON', () => post('/v2/models/mnist-mlp/infer', '{"inputs": ['), 400, 'MSG_NOT_JSON', /not JSON/],
    ['no inputs', () => post('/v2/models/mnist-mlp/infer', '{"inputs": []}'), 400, 'INPUT_INVALID', /inputs/],
    [
      'unknown input name',
      () =>
        post(
          '/v2/models/mnist-mlp/infer',
          JSON.stringify({ inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [1] }] }),
        ),
      400,
      'INPUT_INVALID',
      /unknown input 'x'/,
    ],
    [
      'unknown output name',
      () =>
        post(
          '/v2/models/mnist-mlp/infer',
          JSON.stringify({ ...JSON.parse(inferBody()), outputs: [{ name: 'probs' }] }),
        ),
      400,
      'INPUT_INVALID',
      /unknown output 'probs'/,
    ],
    [
      'no data',
      () =>
        post(
          '/v2/models/mnist-mlp/infer',
          JSON.stringify({ inputs: [{ name: 'input', shape: [1, 1, 28, 28], datatype: 'FP32' }] }),
        ),
      400,
      'INPUT_INVALID',
      /has no data/,
    ],
    [
      'unknown model',
      () => post('/v2/models/resnet/infer', inferBody()),
      404,
      'NOT_FOUND',
      /unknown model 'resnet'/,
    ],
    [
      'version not served',
      () => post('/v2/models/mnist-mlp/versions/2/infer', inferBody()),
      404,
      'NOT_FOUND',
      /no served version '2'/,
    ],
    [
      'oversized body',
      () => post('/v2/models/mnist-mlp/infer', Buffer.alloc(1_000_001, 32)),
      413,
      'SERVE_BODY_TOO_LARGE',
      /exceeds the limit/,
    ],
    [
      'GET on infer',
      () => fetch(`${s.url}/v2/models/mnist-mlp/infer`),
      400,
      'INPUT_INVALID',
      /GET is not allowed/,
    ],
  ];
  for (const [label, send, status, code, text] of cases) {
    it(label, async () => {
      await expectProtocolError(await send(), status, code, text);
      const ok = await post('/v2/models/mnist-mlp/infer', inferBody());
      expect(ok.status).toBe(200);
    });
  }

  it('an oversized body sent in chunks (no Content-Length) is cut off with 413', async () => {
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(`${s.url}/v2/models/mnist-mlp/infer`, { method: 'POST' }, (r) => {
        let text = '';
        r.on('data', (c) => (text += c));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, body: text }));
      });
      req.on('error', reject);
      for (let i = 0; i < 20; i++) req.write(Buffer.alloc(100_000, 32));
      req.end();
    });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body).code).toBe('SERVE_BODY_TOO_LARGE');
  });

  it('counts requests and errors per release in the traffic sketches', async () => {
    s.traffic.take();
    await post('/v2/models/mnist-mlp/infer', inferBody());
    await post('/v2/models/mnist-mlp/infer', inferBody(digit(), [1, 784]));
    const [stats] = s.traffic.take();
    expect(stats).toMatchObject({ model: 'mnist-mlp', version: '1', requests: 2, errors: 1 });
    expect(stats.totalMs.count).toBe(1);
    expect(stats.computeMs.count).toBe(1);
    expect(stats.totalMs.max!).toBeGreaterThanOrEqual(stats.computeMs.max!);
  });
});

describe('listeners and access', () => {
  it('a token guards every endpoint when set', async () => {
    const guarded = await serveSample({ token: 'sesame' });
    try {
      const denied = await fetch(`${guarded.url}/v2/health/live`);
      expect(denied.status).toBe(401);
      expect(((await denied.json()) as Json).code).toBe('UNAUTHORIZED');
      const wrong = await fetch(`${guarded.url}/v2/health/live`, {
        headers: { authorization: 'Bearer nope' },
      });
      expect(wrong.status).toBe(401);
      const ok = await fetch(`${guarded.url}/v2/models/mnist-mlp/infer`, {
        method: 'POST',
        body: inferBody(),
        headers: { authorization: 'Bearer sesame' },
      });
      expect(ok.status).toBe(200);
    } finally {
      await guarded.stop();
    }
  });

  it('refuses to listen beyond loopback without a token', () => {
    const logger = createLogger({ name: 'test', level: 'silent' });
    expect(
      () =>
        new InferenceServer({
          registry: s.registry,
          executor: { run: () => Promise.reject(new Error('unused')) },
          traffic: s.traffic,
          logger,
          host: '0.0.0.0',
        }),
    ).toThrow(/beyond this device: set a token/);
  });

  it('a taken port is a coded error naming the address and the flag to change it', async () => {
    const port = Number(new URL(s.url).port);
    await expect(serveSample({ port })).rejects.toMatchObject({
      code: 'SERVE_ADDRESS_IN_USE',
      message: expect.stringMatching(new RegExp(`127\\.0\\.0\\.1:${port}: it is taken.*--serve-port`)),
    });
    // The service that had it goes on serving.
    expect((await post('/v2/models/mnist-mlp/infer', inferBody())).status).toBe(200);
  });

  it('serves on a Unix socket', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleetml-sock-'));
    const socketPath = join(dir, 'infer.sock');
    const onSocket = await serveSample({ port: null, socketPath });
    try {
      const reply = await new Promise<string>((resolve, reject) => {
        const req = httpRequest({ socketPath, path: '/v2/models/mnist-mlp/infer', method: 'POST' }, (r) => {
          let text = '';
          r.on('data', (c) => (text += c));
          r.on('end', () => resolve(text));
        });
        req.on('error', reject);
        req.end(inferBody());
      });
      expect(JSON.parse(reply).outputs[0].data).toHaveLength(10);
    } finally {
      await onSocket.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
