import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { attr, floatInput, makeModel, makeNode } from '../../../../../cloud/compression/onnx/build.js';
import { cloneModel } from '../../../../../cloud/compression/onnx/edit.js';
import { runOnce } from '../../../../../cloud/compression/onnx/ort-eval.js';
import { floatTensor } from '../../../../../cloud/compression/onnx/tensor.js';
import type { ModelProto } from '../../../../../cloud/compression/onnx/types.js';
import { padChannels } from '../../../../../cloud/compression/quantize/pad-channels.js';
import { ort } from '../../../../../cloud/compression/runtime/ort.js';
import { createRng, gaussian } from '../../../../../shared/random.js';

const rng = createRng(11);
const randn = (n: number, scale = 1) => Float32Array.from({ length: n }, () => gaussian(rng) * scale);

/**
 * A MobileNetV3 block: expand 1×1 (8 → 12), HardSwish spelled Add/Clip/Mul/Div, depthwise
 * 3×3 over 12 channels, squeeze-excite (GAP, 12 → 4 → 12, HardSigmoid, Mul), project 12 → 8.
 */
function mobileBlock(output = 'y'): ModelProto {
  const scalar = (name: string, v: number) => floatTensor(name, [], [v]);
  return makeModel(
    [
      makeNode('Conv', ['x', 'we', 'be'], ['e'], [], 'expand'),
      makeNode('Add', ['e', 'three'], ['e3'], [], 'hs_add'),
      makeNode('Clip', ['e3', 'zero', 'six'], ['e3c'], [], 'hs_clip'),
      makeNode('Mul', ['e', 'e3c'], ['em'], [], 'hs_mul'),
      makeNode('Div', ['em', 'six'], ['h'], [], 'hs_div'),
      makeNode(
        'Conv',
        ['h', 'wd', 'bd'],
        ['d'],
        [attr.int('group', 12), attr.ints('pads', [1, 1, 1, 1])],
        'depthwise',
      ),
      makeNode('Mul', ['d', 'gamma'], ['dg'], [], 'channel_scale'),
      makeNode('GlobalAveragePool', ['dg'], ['p'], [], 'gap'),
      makeNode('Conv', ['p', 'ws1', 'bs1'], ['s1'], [], 'se_reduce'),
      makeNode('Relu', ['s1'], ['s1r'], [], 'se_relu'),
      makeNode('Conv', ['s1r', 'ws2', 'bs2'], ['s2'], [], 'se_expand'),
      makeNode(
        'HardSigmoid',
        ['s2'],
        ['s'],
        [attr.float('alpha', 1 / 6), attr.float('beta', 0.5)],
        'se_gate',
      ),
      makeNode('Mul', ['dg', 's'], ['g'], [], 'se_mul'),
      makeNode('Conv', ['g', 'wp', 'bp'], [output], [], 'project'),
    ],
    [floatInput('x', ['N', 8, 6, 6])],
    [floatInput(output, ['N', 8, 6, 6])],
    {
      opset: 13,
      initializers: [
        floatTensor('we', [12, 8, 1, 1], randn(96)),
        floatTensor('be', [12], randn(12)),
        scalar('three', 3),
        scalar('zero', 0),
        scalar('six', 6),
        floatTensor('wd', [12, 1, 3, 3], randn(108)),
        floatTensor('bd', [12], randn(12)),
        floatTensor('gamma', [1, 12, 1, 1], randn(12)),
        floatTensor('ws1', [4, 12, 1, 1], randn(48)),
        floatTensor('bs1', [4], randn(4)),
        floatTensor('ws2', [12, 4, 1, 1], randn(48)),
        floatTensor('bs2', [12], randn(12)),
        floatTensor('wp', [8, 12, 1, 1], randn(96)),
        floatTensor('bp', [8], randn(8)),
      ],
    },
  );
}

const dimsOf = (model: ModelProto, node: string, input = 1) => {
  const n = model.graph.node.find((x) => x.name === node)!;
  return model.graph.initializer!.find((t) => t.name === n.input[input])!.dims!.map(Number);
};

describe('channel padding', () => {
  it('widens a MobileNet block to multiples of 16 channels without changing its output', async () => {
    const model = mobileBlock();
    const padded = cloneModel(model);
    const report = padChannels(padded.graph);
    // The 12-channel group (expand … project) and the 4-channel squeeze; 8 channels at the
    // block's ends are graph input/output and stay.
    expect(report.regions.map((r) => `${r.from}->${r.to}`).sort()).toEqual(['12->16', '4->16']);
    expect(dimsOf(padded, 'expand')).toEqual([16, 8, 1, 1]);
    expect(dimsOf(padded, 'depthwise')).toEqual([16, 1, 3, 3]);
    expect(dimsOf(padded, 'channel_scale')).toEqual([1, 16, 1, 1]);
    expect(dimsOf(padded, 'se_reduce')).toEqual([16, 16, 1, 1]);
    expect(dimsOf(padded, 'se_expand')).toEqual([16, 16, 1, 1]);
    expect(dimsOf(padded, 'project')).toEqual([8, 16, 1, 1]);
    const group = padded.graph.node
      .find((n) => n.name === 'depthwise')!
      .attribute!.find((a) => a.name === 'group')!;
    expect(Number(group.i)).toBe(16);
    const feeds = { x: new ort.Tensor('float32', randn(2 * 8 * 36), [2, 8, 6, 6]) };
    const a = (await runOnce(model, feeds)).y.data as Float32Array;
    const b = (await runOnce(padded, feeds)).y.data as Float32Array;
    expect(b.length).toBe(a.length);
    for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i], 4);
  });

  it('leaves a group alone when it reaches something other than a Conv (here a graph output)', () => {
    const model = mobileBlock();
    // Expose the depthwise output: its 12 channels are now part of the model's interface.
    model.graph.output!.push(floatInput('d', ['N', 12, 6, 6]));
    const report = padChannels(model.graph);
    expect(report.regions.map((r) => `${r.from}->${r.to}`)).toEqual(['4->16']);
    expect(dimsOf(model, 'depthwise')).toEqual([12, 1, 3, 3]);
  });

  it('keeps the outputs of random MobileNet-style stacks (any channel counts, SE, residuals, strides)', async () => {
    const block = fc.record({
      expand: fc.integer({ min: 1, max: 40 }),
      kernel: fc.constantFrom(3, 5),
      stride: fc.constantFrom(1, 2),
      se: fc.boolean(),
      hardSwish: fc.boolean(),
      residual: fc.boolean(),
      shift: fc.boolean(),
    });
    let widened = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 20 }),
        fc.array(block, { minLength: 1, maxLength: 3 }),
        async (c0, blocks) => {
          const model = randomStack(c0, blocks);
          const padded = cloneModel(model);
          const report = padChannels(padded.graph);
          for (const r of report.regions) expect(r.to % 16).toBe(0);
          widened += report.regions.length;
          const feeds = { x: new ort.Tensor('float32', randn(2 * 3 * 64), [2, 3, 8, 8]) };
          const a = (await runOnce(model, feeds)).y.data as Float32Array;
          const b = (await runOnce(padded, feeds)).y.data as Float32Array;
          expect(b.length).toBe(a.length);
          for (let i = 0; i < a.length; i++)
            expect(Math.abs(b[i] - a[i])).toBeLessThan(1e-3 * (1 + Math.abs(a[i])));
        },
      ),
      { numRuns: 12, seed: 7 },
    );
    expect(widened).toBeGreaterThan(12);
  });
});

interface BlockSpec {
  expand: number;
  kernel: number;
  stride: number;
  se: boolean;
  hardSwish: boolean;
  residual: boolean;
  /** Add 0.5 before the projection: padded channels then carry non-zero values into it. */
  shift: boolean;
}

/** Stem conv (3 → c0), then inverted-residual blocks, then a 1×1 head conv to 4 channels. */
function randomStack(c0: number, blocks: BlockSpec[]): ModelProto {
  const nodes: ReturnType<typeof makeNode>[] = [];
  const inits = [
    floatTensor('three', [], [3]),
    floatTensor('zero', [], [0]),
    floatTensor('six', [], [6]),
    floatTensor('half', [], [0.5]),
  ];
  let id = 0;
  const weight = (dims: number[]) => {
    const name = `w${id++}`;
    inits.push(
      floatTensor(
        name,
        dims,
        randn(
          dims.reduce((a, b) => a * b, 1),
          0.5,
        ),
      ),
    );
    return name;
  };
  const conv = (x: string, cin: number, cout: number, k = 1, group = 1, stride = 1) => {
    const out = `t${id++}`;
    const pad = (k - 1) / 2;
    nodes.push(
      makeNode(
        'Conv',
        [x, weight([cout, cin / group, k, k]), weight([cout])],
        [out],
        [
          attr.int('group', group),
          attr.ints('pads', [pad, pad, pad, pad]),
          attr.ints('strides', [stride, stride]),
        ],
        out,
      ),
    );
    return out;
  };
  const act = (x: string, hardSwish: boolean) => {
    const out = `t${id++}`;
    if (!hardSwish) {
      nodes.push(makeNode('Relu', [x], [out], [], out));
      return out;
    }
    nodes.push(
      makeNode('Add', [x, 'three'], [`${out}_a`], [], `${out}_a`),
      makeNode('Clip', [`${out}_a`, 'zero', 'six'], [`${out}_c`], [], `${out}_c`),
      makeNode('Mul', [x, `${out}_c`], [`${out}_m`], [], `${out}_m`),
      makeNode('Div', [`${out}_m`, 'six'], [out], [], out),
    );
    return out;
  };
  let x = act(conv('x', 3, c0, 3), true);
  const c = c0;
  for (const b of blocks) {
    const e = act(conv(x, c, b.expand), b.hardSwish);
    let d = act(conv(e, b.expand, b.expand, b.kernel, b.expand, b.stride), b.hardSwish);
    if (b.se) {
      const p = `t${id++}`;
      nodes.push(makeNode('GlobalAveragePool', [d], [p], [], p));
      const s1 = act(conv(p, b.expand, Math.max(1, b.expand >> 2)), false);
      const s2 = conv(s1, Math.max(1, b.expand >> 2), b.expand);
      const g = `t${id++}`;
      nodes.push(
        makeNode('HardSigmoid', [s2], [g], [attr.float('alpha', 1 / 6), attr.float('beta', 0.5)], g),
      );
      const m = `t${id++}`;
      nodes.push(makeNode('Mul', [d, g], [m], [], m));
      d = m;
    }
    if (b.shift) {
      const h = `t${id++}`;
      nodes.push(makeNode('Add', [d, 'half'], [h], [], h));
      d = h;
    }
    const projected = conv(d, b.expand, c);
    if (b.residual && b.stride === 1) {
      const r = `t${id++}`;
      nodes.push(makeNode('Add', [x, projected], [r], [], r));
      x = r;
    } else x = projected;
  }
  nodes.push(makeNode('Conv', [x, weight([4, c, 1, 1])], ['y'], [], 'head'));
  return makeModel(nodes, [floatInput('x', ['N', 3, 8, 8])], [floatInput('y', ['N', 4, 'H', 'W'])], {
    opset: 13,
    initializers: inits,
  });
}
