import { attr, makeNode } from '../onnx/build.js';
import { attrInt } from '../onnx/graph.js';
import type { RewriteContext } from './rewrite.js';

/** Copies of a single input channel a Conv reads after widening (K = 4·kh·kw). */
const WIDEN = 4;

/**
 * An x86 kernel rewrite, not a float-exact one (same result up to float rounding): a Conv
 * over a single input channel (e.g. the first conv of a grayscale CNN) reads its input WIDEN
 * times (Concat on the channel axis) with weights / WIDEN. onnxruntime's x86 int8 conv with
 * K = 9 ran ~6× slower than its float NCHWc kernel (MNIST CNN: 0.96 of 1.74 ms), and with
 * K = 36 the whole INT8 model went from 0.69 to 0.55 of FP32 at batch 32. Measured on x86
 * only, so applied only for x86 targets.
 */
export function widenSingleChannelConvs(ctx: RewriteContext): Record<string, number> {
  const widened = new Map<string, string>();
  let count = 0;
  for (const node of [...ctx.graph.node]) {
    if (node.opType !== 'Conv' || attrInt(node, 'group', 1) !== 1) continue;
    const wt = ctx.index.initializers.get(node.input[1]);
    const w = wt && ctx.constant(node.input[1]);
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
      input = ctx.names.next(`${x}_widened`);
      ctx.graph.node.unshift(makeNode('Concat', Array(WIDEN).fill(x), [input], [attr.int('axis', 1)], input));
      widened.set(x, input);
    }
    const weights = ctx.addConstant(`${node.input[1]}_widened`, [cout, WIDEN * cin, kh, kw], wide);
    node.input = [input, weights, ...node.input.slice(2)];
    count++;
  }
  return { singleChannelWidened: count };
}
