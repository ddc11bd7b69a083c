import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseNpy } from '../../../cloud/compression/data/npy.js';
import { decodeModel } from '../../../cloud/compression/onnx/proto.js';
import { FleetError } from '../../../shared/errors/index.js';
import {
  benchReportSchema,
  decodeBlockFrame,
  decodeJson,
  encodeBlockFrame,
  enrollReplySchema,
  enrollRequestSchema,
  eventSchema,
  stateReportSchema,
  statusSchema,
  targetStateSchema,
  telemetryAckSchema,
  telemetryBatchSchema,
  transferRequestSchema,
} from '../../../shared/protocol/index.js';

// Property tests: every parser that sees bytes from outside answers random and mutated input
// with either a value or a coded FleetError, never another exception, and in bounded time.
const SCHEMAS = {
  enrollRequestSchema,
  enrollReplySchema,
  statusSchema,
  targetStateSchema,
  stateReportSchema,
  telemetryBatchSchema,
  telemetryAckSchema,
  benchReportSchema,
  eventSchema,
  transferRequestSchema,
};
const SAMPLE_MODEL = readFileSync(new URL('../../../cloud/samples/mnist-mlp.onnx', import.meta.url));
const RUNS = Number(process.env.FLEETML_FUZZ_RUNS ?? 300);

function onlyCodedErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (error) {
    if (!(error instanceof FleetError)) throw error;
    expect(error.code).toMatch(/^[A-Z_]+$/);
  }
}

/** JSON-ish values, including deep nesting and the protocol's own field names. */
const jsonish = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom(null, true, false, 0, -1, 1e308, 'v', '', 'a'.repeat(70)),
    fc.double(),
    fc.string(),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(
      fc.constantFrom('v', 'seq', 'records', 'sha256', 'blocks', 'model', 'version', 'deviceId', 'x'),
      tie('value'),
      {
        maxKeys: 6,
      },
    ),
  ),
})).value;

/** Flips, drops or inserts bytes in a valid encoding. */
function mutate(bytes: Uint8Array) {
  return fc
    .array(
      fc.tuple(
        fc.nat(bytes.length),
        fc.integer({ min: 0, max: 255 }),
        fc.constantFrom('flip', 'cut', 'insert'),
      ),
      {
        minLength: 1,
        maxLength: 8,
      },
    )
    .map((edits) => {
      let out = Buffer.from(bytes);
      for (const [at, value, kind] of edits) {
        const i = Math.min(at, Math.max(0, out.length - 1));
        if (kind === 'flip' && out.length > 0) out[i] = value;
        if (kind === 'cut') out = out.subarray(0, i);
        if (kind === 'insert')
          out = Buffer.concat([out.subarray(0, i), Buffer.from([value]), out.subarray(i)]);
      }
      return out;
    });
}

describe('fuzz: MQTT message parsers', () => {
  for (const [name, schema] of Object.entries(SCHEMAS)) {
    it(`${name} answers any JSON with a value or a coded error`, () => {
      fc.assert(
        fc.property(jsonish, (value) =>
          onlyCodedErrors(() => decodeJson(schema, Buffer.from(JSON.stringify(value) ?? 'null'))),
        ),
        { numRuns: RUNS },
      );
    });
    it(`${name} answers arbitrary bytes with a coded error`, () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) =>
          onlyCodedErrors(() => decodeJson(schema, bytes)),
        ),
        {
          numRuns: RUNS,
        },
      );
    });
  }

  it('refuses deeply nested JSON without blowing the stack', () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    onlyCodedErrors(() => decodeJson(telemetryBatchSchema, Buffer.from(deep)));
  });

  it('block frames: random and mutated frames give a coded error or a valid frame', () => {
    const valid = encodeBlockFrame({ v: 1, sha256: 'a'.repeat(64), index: 1, total: 3 }, Buffer.alloc(16, 7));
    expect(decodeBlockFrame(valid).header.index).toBe(1);
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 256 }), mutate(valid)), (b) =>
        onlyCodedErrors(() => decodeBlockFrame(b)),
      ),
      {
        numRuns: RUNS * 2,
      },
    );
  });
});

describe('fuzz: file loaders', () => {
  it('the ONNX loader answers mutated models with a model or a coded error', () => {
    fc.assert(
      fc.property(mutate(SAMPLE_MODEL), (bytes) => onlyCodedErrors(() => decodeModel(bytes))),
      { numRuns: RUNS },
    );
  });

  it('the ONNX loader answers random bytes with a coded error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => onlyCodedErrors(() => decodeModel(bytes))),
      {
        numRuns: RUNS,
      },
    );
  });

  it('the .npy reader answers mutated files with an array or a coded error', () => {
    const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), }";
    const padded = header.padEnd(118, ' ') + '\n';
    const valid = Buffer.concat([
      Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, padded.length, 0]),
      Buffer.from(padded),
      Buffer.alloc(32),
    ]);
    expect(parseNpy(valid).shape).toEqual([4, 2]);
    fc.assert(
      fc.property(mutate(valid), (bytes) => onlyCodedErrors(() => parseNpy(bytes))),
      { numRuns: RUNS },
    );
  });
});
