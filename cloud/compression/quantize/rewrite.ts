import { GraphIndex, NameGenerator } from '../onnx/graph.js';
import { floatTensor, tensorFloats } from '../onnx/tensor.js';
import type { GraphProto } from '../onnx/types.js';
import { foldAffineIntoConv } from './equalize.js';
import { nchwChannelGates, nchwNearestResize } from './keep-nchw.js';
import {
  divSubToMulAdd,
  expandHardSwish,
  foldHardSigmoid,
  foldResidualGate,
  matMulAddToGemm,
} from './rewrite-passes.js';
import { widenSingleChannelConvs } from './widen.js';

/**
 * What a rewrite pass gets: the graph, an index that is rebuilt only after a pass changed
 * the graph, unique names, constants, and the rank of a tensor when shape inference knows it.
 */
export class RewriteContext {
  readonly names: NameGenerator;
  private current: GraphIndex | undefined;

  constructor(
    readonly graph: GraphProto,
    readonly rank: (t: string) => number | undefined,
    /** Dimensions of a tensor when shape inference knows them (0 for a symbolic one). */
    readonly shape: (t: string) => number[] | undefined = () => undefined,
  ) {
    graph.initializer ??= [];
    this.names = new NameGenerator(graph);
  }

  get index(): GraphIndex {
    this.current ??= new GraphIndex(this.graph);
    return this.current;
  }

  /** Call after editing the graph: the next pass sees a fresh index. */
  changed(): void {
    this.current = undefined;
  }

  /** Values of a float initializer, if `name` is one. */
  constant(name: string): Float32Array | undefined {
    const t = this.index.initializers.get(name);
    return t && (t.dataType === 1 || t.dataType === undefined) ? tensorFloats(t) : undefined;
  }

  /** Adds a float initializer under a new unique name derived from `base`; returns the name. */
  addConstant(base: string, dims: number[], values: Float32Array | number[]): string {
    const name = this.names.next(base);
    this.graph.initializer!.push(floatTensor(name, dims, values));
    return name;
  }
}

/** One rewrite: edits the graph through the context, returns how many places it rewrote, by kind. */
export type RewritePass = (ctx: RewriteContext) => Record<string, number>;

export interface RewriteOptions {
  /**
   * Also apply rewrites that pay only on onnxruntime's x86 int8 kernels (widening
   * single-channel convolutions, see widen.ts); default true. Off for ARM and TensorRT targets.
   */
  x86Kernels: boolean;
  /** Dimensions of a tensor when known (some x86 rewrites pay only on large maps); default unknown. */
  shapeOf?: (t: string) => number[] | undefined;
}

export const DEFAULT_REWRITE_OPTIONS: RewriteOptions = { x86Kernels: true };

/**
 * Float-exact rewrites that give the quantizer ops with integer forms, in order (each pass
 * sees the previous ones' result), then the x86 kernel rewrites when the target has them.
 * Returns the number of rewrites per kind.
 */
export function rewriteForQuantization(
  graph: GraphProto,
  rank: (t: string) => number | undefined,
  options: Partial<RewriteOptions> = {},
): Record<string, number> {
  const o = { ...DEFAULT_REWRITE_OPTIONS, ...options };
  const passes: RewritePass[] = [
    divSubToMulAdd,
    (ctx) => ({ affineFolded: foldAffineIntoConv(ctx.graph) }),
    expandHardSwish,
    foldHardSigmoid,
    foldResidualGate,
    matMulAddToGemm,
  ];
  if (o.x86Kernels) passes.push(widenSingleChannelConvs, nchwNearestResize, nchwChannelGates);
  const ctx = new RewriteContext(graph, rank, o.shapeOf);
  const counts: Record<string, number> = {};
  for (const pass of passes) {
    for (const [kind, n] of Object.entries(pass(ctx))) {
      if (n <= 0) continue;
      counts[kind] = (counts[kind] ?? 0) + n;
      ctx.changed();
    }
  }
  return counts;
}
