import { attr, makeNode } from '../onnx/build.js';
import { attrFloat, attrInt, GraphIndex, NameGenerator } from '../onnx/graph.js';
import { floatTensor, tensorFloats } from '../onnx/tensor.js';
import type { GraphProto, NodeProto } from '../onnx/types.js';
import { foldAffineIntoConv } from './equalize.js';

/**
 * Float-exact rewrites that give the quantizer ops with integer forms: division and
 * subtraction by constants become Mul/Add, per-channel affine ops after a Conv fold into it, HardSigmoid folds into the Conv/Gemm before it
 * (leaving a Clip(0, 1) that quantization absorbs), HardSwish becomes x·HardSigmoid(x),
 * MatMul + bias on 2-D inputs becomes Gemm. Returns the number of rewrites per kind.
 */
export function rewriteForQuantization(
  graph: GraphProto,
  rank: (t: string) => number | undefined,
): Record<string, number> {
  const counts: Record<string, number> = {};
  const bump = (k: string) => {
    counts[k] = (counts[k] ?? 0) + 1;
  };
  const names = new NameGenerator(graph);
  graph.initializer ??= [];
  let index = new GraphIndex(graph);
  const constant = (name: string) => {
    const t = index.initializers.get(name);
    return t && (t.dataType === 1 || t.dataType === undefined) ? tensorFloats(t) : undefined;
  };
  const addConst = (base: string, dims: number[], values: Float32Array | number[]) => {
    const name = names.next(base);
    graph.initializer!.push(floatTensor(name, dims, values));
    return name;
  };

  // 1. x / c -> x * (1/c); x - c -> x + (-c).
  for (const node of graph.node) {
    if ((node.opType !== 'Div' && node.opType !== 'Sub') || !node.input[1]) continue;
    const c = constant(node.input[1]);
    if (!c || c.some((v) => v === 0)) continue;
    const t = index.initializers.get(node.input[1])!;
    const values = node.opType === 'Div' ? c.map((v) => 1 / v) : c.map((v) => -v);
    node.input[1] = addConst(
      `${node.input[1]}_${node.opType === 'Div' ? 'reciprocal' : 'negated'}`,
      t.dims ?? [],
      values,
    );
    node.opType = node.opType === 'Div' ? 'Mul' : 'Add';
    bump(node.opType === 'Mul' ? 'divToMul' : 'subToAdd');
  }

  // 1b. Conv -> Mul/Add by per-channel constants: fold into the Conv.
  const affine = foldAffineIntoConv(graph);
  if (affine > 0) counts.affineFolded = affine;
  index = new GraphIndex(graph);

  // 2. HardSwish(x) -> x * HardSigmoid(x; 1/6, 1/2).
  const extra: NodeProto[] = [];
  for (const node of graph.node) {
    if (node.opType !== 'HardSwish') continue;
    const hs = names.next(`${node.output[0]}_hardsigmoid`);
    extra.push(
      makeNode(
        'HardSigmoid',
        [node.input[0]],
        [hs],
        [attr.float('alpha', 1 / 6), attr.float('beta', 0.5)],
        hs,
      ),
    );
    node.opType = 'Mul';
    node.input = [node.input[0], hs];
    bump('hardSwish');
  }
  graph.node.push(...extra);
  index = new GraphIndex(graph);

  // 3. HardSigmoid(x) = clip(αx + β, 0, 1): fold α, β into the producing Conv/Gemm if it has
  //    no other reader, else spell it out as Mul/Add (each has an integer form).
  const added: NodeProto[] = [];
  for (const node of graph.node) {
    if (node.opType !== 'HardSigmoid') continue;
    const alpha = attrFloat(node, 'alpha', 0.2);
    const beta = attrFloat(node, 'beta', 0.5);
    const x = node.input[0];
    const producer = index.producer.get(x);
    const w = producer && constant(producer.input[1] ?? '');
    const foldable =
      producer &&
      (producer.opType === 'Conv' || (producer.opType === 'Gemm' && attrInt(producer, 'transB', 0) === 1)) &&
      w &&
      alpha > 0 &&
      index.consumersOf(x).length === 1 &&
      !index.graphOutputs.has(x) &&
      (!producer.input[2] || constant(producer.input[2]));
    if (foldable) {
      const wt = index.initializers.get(producer.input[1])!;
      const channels = wt.dims![0];
      const b = producer.input[2] ? constant(producer.input[2])! : new Float32Array(channels);
      producer.input[1] = addConst(
        `${producer.input[1]}_hsfold`,
        wt.dims!,
        w.map((v) => v * alpha),
      );
      producer.input[2] = addConst(
        `${producer.output[0]}_hsbias`,
        [channels],
        b.map((v) => v * alpha + beta),
      );
      bump('hardSigmoidFolded');
    } else {
      const scaled = names.next(`${x}_scaled`);
      const shifted = names.next(`${x}_shifted`);
      added.push(
        makeNode(
          'Mul',
          [x, addConst(`${node.output[0]}_alpha`, [], [alpha])],
          [scaled],
          [],
          names.next(`${scaled}_mul`),
        ),
        makeNode(
          'Add',
          [scaled, addConst(`${node.output[0]}_beta`, [], [beta])],
          [shifted],
          [],
          names.next(`${shifted}_add`),
        ),
      );
      node.input[0] = shifted;
      bump('hardSigmoidExpanded');
    }
    node.opType = 'Clip';
    node.attribute = [];
    node.input = [
      node.input[0],
      addConst(`${node.output[0]}_lo`, [], [0]),
      addConst(`${node.output[0]}_hi`, [], [1]),
    ];
  }
  graph.node.push(...added);
  index = new GraphIndex(graph);

  // 4. MatMul(x[N,K], W[K,M]) + b[M] -> Gemm (one fused int8 op with an int32 bias).
  const removed = new Set<NodeProto>();
  for (const node of graph.node) {
    if (node.opType !== 'MatMul' || rank(node.input[0]) !== 2) continue;
    const w = index.initializers.get(node.input[1]);
    if (w?.dims?.length !== 2) continue;
    const readers = index.consumersOf(node.output[0]);
    if (readers.length !== 1 || readers[0].opType !== 'Add' || index.graphOutputs.has(node.output[0]))
      continue;
    const add = readers[0];
    const biasName = add.input[0] === node.output[0] ? add.input[1] : add.input[0];
    const bias = constant(biasName);
    if (!bias || bias.length !== w.dims[1]) continue;
    node.opType = 'Gemm';
    node.input = [node.input[0], node.input[1], addConst(`${biasName}_gemm`, [bias.length], bias)];
    node.output = [add.output[0]];
    removed.add(add);
    bump('matMulAddToGemm');
  }
  graph.node = graph.node.filter((n) => !removed.has(n));

  // 5. Conv over a single input channel (e.g. the first conv of a grayscale CNN): read the
  //    input WIDEN times (Concat on the channel axis) with weights / WIDEN. Same result up to
  //    float rounding; onnxruntime's int8 conv with K = 9 ran ~6× slower than its float
  //    NCHWc kernel (MNIST CNN: 0.96 of 1.74 ms), and with K = 36 the whole INT8 model went
  //    from 0.69 to 0.55 of FP32 at batch 32.
  index = new GraphIndex(graph);
  const widened = new Map<string, string>();
  for (const node of [...graph.node]) {
    if (node.opType !== 'Conv' || attrInt(node, 'group', 1) !== 1) continue;
    const wt = index.initializers.get(node.input[1]);
    const w = wt && constant(node.input[1]);
    if (!w || wt.dims?.length !== 4 || wt.dims[1] !== 1) continue;
    const [cout, cin, kh, kw] = wt.dims;
    const k = kh * kw;
    const wide = new Float32Array(w.length * WIDEN);
    // Input channel r·cin + c of the widened input is channel c of copy r. (Widening the
    // 3-channel stem of the PaddleOCR classifier too was measured: no gain, so cin = 1 only.)
    for (let o = 0; o < cout; o++)
      for (let r = 0; r < WIDEN; r++)
        for (let c = 0; c < cin; c++)
          for (let j = 0; j < k; j++)
            wide[((o * WIDEN + r) * cin + c) * k + j] = w[(o * cin + c) * k + j] / WIDEN;
    const x = node.input[0];
    let input = widened.get(x);
    if (!input) {
      input = names.next(`${x}_widened`);
      graph.node.unshift(makeNode('Concat', Array(WIDEN).fill(x), [input], [attr.int('axis', 1)], input));
      widened.set(x, input);
    }
    node.input = [
      input,
      addConst(`${node.input[1]}_widened`, [cout, WIDEN * cin, kh, kw], wide),
      ...node.input.slice(2),
    ];
    bump('singleChannelWidened');
  }
  return counts;
}

/** Copies of a single input channel a Conv reads after rewrite 5 (K = 4·kh·kw). */
const WIDEN = 4;
