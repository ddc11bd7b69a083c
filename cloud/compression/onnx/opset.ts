import { FleetError } from '../../../shared/errors/index.js';
import { attr, makeNode } from './build.js';
import { opsetVersion, setOpset } from './edit.js';
import { attrFloat, attrInt, attrInts, attrString, describeNode, NameGenerator } from './graph.js';
import { floatTensor, int64Tensor } from './tensor.js';
import type { GraphProto, ModelProto, NodeProto, TensorProto } from './types.js';

/** What an adapter may use: the graph, fresh names, and a place for new initializers/nodes. */
interface AdapterContext {
  graph: GraphProto;
  names: NameGenerator;
  addInitializer(tensor: TensorProto): string;
  /** Nodes to insert right after the adapted node (in order). */
  after: NodeProto[];
  /** Rank of a tensor when value_info knows it. */
  rank(tensor: string): number | undefined;
  /** Set when the adapter replaced the node by the `after` nodes. */
  removed: boolean;
}

/** Rewrites one node whose op changed meaning or signature at opset `since`. */
interface OpsetAdapter {
  op: string;
  since: number;
  apply(node: NodeProto, ctx: AdapterContext): void;
}

function removeAttrs(node: NodeProto, ...names: string[]): void {
  node.attribute = (node.attribute ?? []).filter((a) => !names.includes(a.name));
}

/** Moves an INTS attribute to an int64 input at `position` ('' keeps an optional slot empty). */
function intsToInput(node: NodeProto, ctx: AdapterContext, name: string, position: number): void {
  const values = attrInts(node, name);
  removeAttrs(node, name);
  while (node.input.length < position) node.input.push('');
  if (values)
    node.input[position] = ctx.addInitializer(
      int64Tensor(ctx.names.next(`${node.output[0]}_${name}`), [values.length], values),
    );
}

const ADAPTERS: OpsetAdapter[] = [
  {
    op: 'Dropout',
    since: 7,
    apply: (node) => {
      // Inference only: Dropout is the identity; keep it valid for every opset by dropping attrs.
      removeAttrs(node, 'ratio', 'is_test', 'seed');
      node.input = [node.input[0]];
    },
  },
  {
    op: 'Slice',
    since: 10,
    apply: (node, ctx) => {
      const starts = attrInts(node, 'starts') ?? [];
      const ends = attrInts(node, 'ends') ?? [];
      const axes = attrInts(node, 'axes');
      removeAttrs(node, 'starts', 'ends', 'axes');
      const base = node.output[0];
      node.input = [
        node.input[0],
        ctx.addInitializer(int64Tensor(ctx.names.next(`${base}_starts`), [starts.length], starts)),
        ctx.addInitializer(int64Tensor(ctx.names.next(`${base}_ends`), [ends.length], ends)),
        ...(axes
          ? [ctx.addInitializer(int64Tensor(ctx.names.next(`${base}_axes`), [axes.length], axes))]
          : []),
      ];
    },
  },
  {
    op: 'Upsample',
    since: 10,
    apply: (node, ctx) => {
      // Upsample (<= 9) is Resize with asymmetric coordinates and floor rounding.
      const mode = attrString(node, 'mode') ?? 'nearest';
      let scales = node.input[1];
      const fromAttr = node.attribute?.find((a) => a.name === 'scales')?.floats;
      if (fromAttr)
        scales = ctx.addInitializer(
          floatTensor(ctx.names.next(`${node.output[0]}_scales`), [fromAttr.length], fromAttr),
        );
      node.opType = 'Resize';
      node.attribute = [
        attr.string('mode', mode === 'bilinear' ? 'linear' : mode),
        attr.string('coordinate_transformation_mode', 'asymmetric'),
        attr.string('nearest_mode', 'floor'),
      ];
      node.input = [node.input[0], '', scales];
    },
  },
  {
    op: 'Resize',
    since: 11,
    apply: (node) => {
      // Resize-10 had inputs (X, scales) and asymmetric/floor semantics; 11 adds roi and modes.
      const mode = attrString(node, 'mode') ?? 'nearest';
      node.attribute = [
        attr.string('mode', mode),
        attr.string('coordinate_transformation_mode', 'asymmetric'),
        attr.string('nearest_mode', 'floor'),
      ];
      node.input = [node.input[0], '', node.input[1]];
    },
  },
  {
    op: 'Clip',
    since: 11,
    apply: (node, ctx) => {
      const lo = attrFloat(node, 'min', -3.4028234663852886e38);
      const hi = attrFloat(node, 'max', 3.4028234663852886e38);
      removeAttrs(node, 'min', 'max');
      const base = node.output[0];
      node.input = [
        node.input[0],
        ctx.addInitializer(floatTensor(ctx.names.next(`${base}_min`), [], [lo])),
        ctx.addInitializer(floatTensor(ctx.names.next(`${base}_max`), [], [hi])),
      ];
    },
  },
  {
    op: 'Pad',
    since: 11,
    apply: (node, ctx) => {
      const pads = attrInts(node, 'pads') ?? [];
      const value = attrFloat(node, 'value', 0);
      removeAttrs(node, 'pads', 'value');
      const base = node.output[0];
      node.input = [
        node.input[0],
        ctx.addInitializer(int64Tensor(ctx.names.next(`${base}_pads`), [pads.length], pads)),
        ctx.addInitializer(floatTensor(ctx.names.next(`${base}_value`), [], [value])),
      ];
    },
  },
  {
    op: 'TopK',
    since: 10,
    apply: (node, ctx) => {
      const k = attrInt(node, 'k', 1);
      removeAttrs(node, 'k');
      node.input = [
        node.input[0],
        ctx.addInitializer(int64Tensor(ctx.names.next(`${node.output[0]}_k`), [1], [k])),
      ];
    },
  },
  ...['Squeeze', 'Unsqueeze', 'ReduceSum'].map(
    (op): OpsetAdapter => ({ op, since: 13, apply: (node, ctx) => intsToInput(node, ctx, 'axes', 1) }),
  ),
  { op: 'Split', since: 13, apply: (node, ctx) => intsToInput(node, ctx, 'split', 1) },
  ...['Softmax', 'LogSoftmax', 'Hardmax'].map(
    (op): OpsetAdapter => ({
      op,
      since: 13,
      apply: (node, ctx) => {
        // Before 13 these flattened the input to 2-D at `axis` (default 1); from 13 they act on
        // one axis (default -1). Equal when axis is the last one; otherwise flatten explicitly.
        const axis = attrInt(node, 'axis', 1);
        const rank = ctx.rank(node.input[0]);
        removeAttrs(node, 'axis');
        if (axis === -1 || (rank !== undefined && (axis === rank - 1 || axis + rank === rank - 1))) {
          node.attribute!.push(attr.int('axis', -1));
          return;
        }
        const x = node.input[0];
        const out = node.output[0];
        const flat = ctx.names.next(`${out}_flat`);
        const soft = ctx.names.next(`${out}_2d`);
        const shape = ctx.names.next(`${out}_shape`);
        ctx.after.push(
          makeNode('Flatten', [x], [flat], [attr.int('axis', axis)], ctx.names.next(`${out}_flatten`)),
          makeNode(op, [flat], [soft], [attr.int('axis', -1)], ctx.names.next(`${out}_${op.toLowerCase()}`)),
          makeNode('Shape', [x], [shape], [], ctx.names.next(`${out}_shapeof`)),
          makeNode('Reshape', [soft, shape], [out], [], ctx.names.next(`${out}_reshape`)),
        );
        ctx.removed = true;
      },
    }),
  ),
  {
    op: 'BatchNormalization',
    since: 9,
    apply: (node) => removeAttrs(node, 'spatial', 'is_test', 'consumed_inputs'),
  },
];

/** Ops whose changes between opsets 7 and 13 fleetml does not adapt (they are refused). */
const UNADAPTED = new Set(['Scan', 'Loop', 'If', 'ScatterElements', 'Scatter']);

export const MIN_SOURCE_OPSET = 7;

/**
 * Upgrades the default-domain opset of a model in place to `target` (>= 13 gives per-channel
 * Q/DQ). Returns the previous version. Refuses opsets below 7 and ops it cannot adapt with
 * ONNX_UNSUPPORTED_OP naming the node.
 */
export function upgradeOpset(model: ModelProto, target = 13): number {
  const from = opsetVersion(model, '');
  if (from >= target) return from;
  if (from < MIN_SOURCE_OPSET) {
    throw new FleetError(
      'ONNX_UNSUPPORTED_OP',
      `opset ${from} is older than ${MIN_SOURCE_OPSET}, which fleetml can upgrade`,
      {
        opset: from,
      },
    );
  }
  const graph = model.graph;
  graph.initializer ??= [];
  const names = new NameGenerator(graph);
  const ranks = new Map<string, number>();
  for (const v of [...(graph.input ?? []), ...(graph.valueInfo ?? []), ...(graph.output ?? [])]) {
    const dims = v.type?.tensorType?.shape?.dim;
    if (dims) ranks.set(v.name, dims.length);
  }
  const nodes: NodeProto[] = [];
  for (const node of graph.node) {
    if ((node.domain ?? '') !== '' && node.domain !== 'ai.onnx') {
      nodes.push(node);
      continue;
    }
    if (UNADAPTED.has(node.opType)) {
      throw new FleetError(
        'ONNX_UNSUPPORTED_OP',
        `${describeNode(node)}: cannot upgrade ${node.opType} from opset ${from}`,
        {
          node: node.name,
          op: node.opType,
        },
      );
    }
    const ctx: AdapterContext = {
      graph,
      names,
      after: [],
      removed: false,
      rank: (t) => ranks.get(t),
      addInitializer: (t) => {
        graph.initializer!.push(t);
        return t.name!;
      },
    };
    for (const adapter of ADAPTERS) {
      if (adapter.op === node.opType && adapter.since > from && adapter.since <= target)
        adapter.apply(node, ctx);
    }
    if (!ctx.removed) nodes.push(node);
    nodes.push(...ctx.after);
  }
  graph.node = nodes;
  setOpset(model, '', target);
  model.irVersion = Math.max(model.irVersion ?? 7, 7);
  return from;
}
