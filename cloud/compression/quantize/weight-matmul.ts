import { attrFloat, attrInt, type GraphIndex } from '../onnx/graph.js';
import { tensorFloats } from '../onnx/tensor.js';
import { DataType, type NodeProto } from '../onnx/types.js';

/** A MatMul or Gemm whose right operand is a constant matrix: y = x·W (+ bias). */
export interface WeightMatMul {
  node: NodeProto;
  /** Weights as [K, N] row-major (Gemm's transB already undone). */
  w: Float32Array;
  k: number;
  n: number;
  /** Bias [N] (Gemm's C, broadcast to N if it was a scalar), if any. */
  bias?: Float32Array;
}

/**
 * Recognises the nodes weight-only formats (dynamic INT8, INT4) can rewrite: MatMul with a
 * 2-D float initializer as B, and Gemm with alpha = beta = 1, no transA, a constant B and a
 * constant C of shape [N], [1, N] or scalar. Anything else stays as it is.
 */
export function weightMatMul(node: NodeProto, index: GraphIndex): WeightMatMul | undefined {
  if ((node.domain ?? '') !== '' || (node.opType !== 'MatMul' && node.opType !== 'Gemm')) return undefined;
  const wt = index.initializers.get(node.input[1]);
  if (wt?.dims?.length !== 2 || (wt.dataType ?? DataType.FLOAT) !== DataType.FLOAT) return undefined;
  if (index.isInitializer(node.input[0])) return undefined;
  let w = tensorFloats(wt);
  let [k, n] = wt.dims as number[];
  if (node.opType === 'MatMul') return { node, w, k, n };
  if (attrInt(node, 'transA', 0) !== 0 || attrFloat(node, 'alpha', 1) !== 1) return undefined;
  if (attrInt(node, 'transB', 0) === 1) {
    [k, n] = [n, k];
    const t = new Float32Array(w.length);
    for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) t[c * n + r] = w[r * k + c];
    w = t;
  }
  if (!node.input[2]) return { node, w, k, n };
  const ct = index.initializers.get(node.input[2]);
  if (!ct || attrFloat(node, 'beta', 1) !== 1) return undefined;
  const c = tensorFloats(ct);
  if (c.length !== 1 && c.length !== n) return undefined;
  if ((ct.dims ?? []).length > 1 && ct.dims![0] !== 1) return undefined;
  const bias = c.length === n ? c : new Float32Array(n).fill(c[0]);
  return { node, w, k, n, bias };
}
