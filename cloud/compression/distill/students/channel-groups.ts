import { attrInt } from '../../onnx/graph.js';
import { elementCount } from '../../onnx/tensor.js';
import type { GraphProto, NodeProto, TensorProto } from '../../onnx/types.js';
import { BINARY, type ChannelGroup, type Joined, PASS_THROUGH, type Tagged } from './channel-ops.js';
import { GroupSets } from './group-sets.js';

export type { ChannelGroup } from './channel-ops.js';

/**
 * Channel groups of a graph: sets of channels that must be narrowed together. A convolution or
 * a linear layer opens a new group (its output channels); ops that keep channels (BN,
 * activations, pooling, resizing, depthwise convolutions) pass the group on; element-wise ops
 * between two feature tensors (residual additions, squeeze-excitation products) join their
 * groups; a Concat along the channels puts its inputs' groups side by side, which a following
 * convolution reads at their offsets (an FPN's branches). A group that reaches a graph input or
 * output, or an op this analysis does not know, is fixed.
 */
export function channelGroups(graph: GraphProto, shapes: ReadonlyMap<string, number[]>): ChannelGroup[] {
  const a = new GroupAnalysis(graph, shapes);
  for (const node of graph.node) a.visit(node);
  for (const out of graph.output ?? []) a.fix(out.name);
  return a.result();
}

class GroupAnalysis {
  private sets = new GroupSets();
  private tags = new Map<string, Tagged>();
  private joined = new Map<string, Joined>();
  private inits: Map<string, TensorProto>;

  constructor(
    graph: GraphProto,
    private readonly shapes: ReadonlyMap<string, number[]>,
  ) {
    this.inits = new Map((graph.initializer ?? []).map((t) => [t.name!, t]));
  }

  visit(node: NodeProto): void {
    const op = node.opType;
    const [x] = node.input;
    if (op === 'Constant') return;
    if (op === 'Concat') {
      this.concat(node);
      return;
    }
    if (op === 'Conv' || op === 'ConvTranspose') {
      this.conv(node);
      return;
    }
    if (node.input.some((i) => this.joined.has(i))) {
      this.readJoined(node);
      return;
    }
    if (op === 'Gemm' || op === 'MatMul') {
      this.linear(node);
      return;
    }
    if (op === 'BatchNormalization') {
      const t = this.tags.get(x);
      if (t) {
        for (const p of node.input.slice(1)) this.bind(t.group, p, 0, 1);
        this.sets.root(t.group).bnScales.push(node.input[1]);
      }
      this.pass(node, t);
      return;
    }
    if (PASS_THROUGH.has(op)) {
      this.pass(node, this.tags.get(x));
      return;
    }
    if (op === 'Flatten' && attrInt(node, 'axis', 1) === 1) {
      this.flatten(node);
      return;
    }
    if (BINARY.has(op)) {
      this.binary(node);
      return;
    }
    this.unknown(node);
  }

  fix(tensor: string): void {
    const t = this.tags.get(tensor);
    if (t) this.sets.root(t.group).fixed = true;
    for (const part of this.joined.get(tensor)?.parts ?? []) this.sets.root(part.group).fixed = true;
  }

  result(): ChannelGroup[] {
    return this.sets.merged();
  }

  private conv(node: NodeProto): void {
    const [x, w, b] = node.input;
    const weight = this.inits.get(w);
    const inTag = this.tags.get(x);
    if (!weight || this.shape(x)?.length !== 4) {
      this.unknown(node);
      return;
    }
    const group = attrInt(node, 'group', 1);
    const transpose = node.opType === 'ConvTranspose';
    const [d0, d1] = weight.dims!.map(Number);
    const cout = transpose ? d1 * group : d0;
    const cin = transpose ? d0 : d1 * group;
    if (group === 1) {
      const joined = this.joined.get(x);
      if (inTag) this.bind(inTag.group, w, transpose ? 0 : 1, 1);
      else if (joined) this.bindParts(joined, w, transpose ? 0 : 1);
      else this.fix(x);
      const out = this.open(cout, node.output[0], -3);
      this.bind(out, w, transpose ? 1 : 0, 1);
      this.sets.own(out).producers.push({ tensor: w, axis: transpose ? 1 : 0 });
      if (b) this.bind(out, b, 0, 1);
      return;
    }
    if (group === cin && group === cout && !transpose && inTag) {
      // Depthwise: one filter per channel, the output keeps the input's channels.
      this.bind(inTag.group, w, 0, 1);
      if (b) this.bind(inTag.group, b, 0, 1);
      this.sets.own(inTag.group).depthwise.push(node);
      this.tags.set(node.output[0], { ...inTag });
      return;
    }
    this.unknown(node);
  }

  /** A Concat along the tagged channel axis of all its inputs joins them; any other is unknown. */
  private concat(node: NodeProto): void {
    const rank = this.shape(node.output[0])?.length ?? 0;
    const axis = attrInt(node, 'axis', 0);
    const fromEnd = axis < 0 ? axis : axis - rank;
    const parts: Joined['parts'] = [];
    for (const input of node.input) {
      const joined = this.joined.get(input);
      const t = this.tags.get(input);
      const size = this.shape(input)?.[rank + fromEnd];
      if (joined?.axis === fromEnd) parts.push(...joined.parts);
      else if (t && t.block === 1 && t.axis === fromEnd && size) parts.push({ group: t.group, size });
      else {
        this.unknown(node);
        return;
      }
    }
    this.joined.set(node.output[0], { axis: fromEnd, parts });
  }

  /** A node other than a convolution reading a Concat's output: ops that keep channels pass it on. */
  private readJoined(node: NodeProto): void {
    const joined = this.joined.get(node.input[0]);
    const others = node.input.slice(1).some((i) => this.joined.has(i) || this.tags.has(i));
    if (joined && !others && PASS_THROUGH.has(node.opType)) this.joined.set(node.output[0], joined);
    else this.unknown(node);
  }

  /** A full convolution over a Concat's output reads each part's channels at its offset. */
  private bindParts(joined: Joined, weight: string, axis: number): void {
    let offset = 0;
    for (const part of joined.parts) {
      this.bind(part.group, weight, axis, 1, offset);
      offset += part.size;
    }
  }

  private linear(node: NodeProto): void {
    const [x, w, b] = node.input;
    const weight = this.inits.get(w);
    const transB = node.opType === 'Gemm' && attrInt(node, 'transB', 0) === 1;
    const transA = node.opType === 'Gemm' && attrInt(node, 'transA', 0) === 1;
    if (!weight || weight.dims!.length !== 2 || transA) {
      this.unknown(node);
      return;
    }
    const inTag = this.tags.get(x);
    const [inAxis, outAxis] = transB ? [1, 0] : [0, 1];
    if (inTag && inTag.axis === -1) this.bind(inTag.group, w, inAxis, inTag.block);
    else this.fix(x);
    const out = this.open(Number(weight.dims![outAxis]), node.output[0], -1);
    this.bind(out, w, outAxis, 1);
    this.sets.own(out).producers.push({ tensor: w, axis: outAxis });
    if (b) {
      if (elementCount(this.inits.get(b)?.dims?.map(Number)) === Number(weight.dims![outAxis]))
        this.bind(out, b, 0, 1);
      else this.sets.own(out).fixed = true;
    }
  }

  private flatten(node: NodeProto): void {
    const x = node.input[0];
    const t = this.tags.get(x);
    const shape = this.shape(x);
    if (!t || !shape || t.axis !== -shape.length + 1) {
      this.unknown(node);
      return;
    }
    const block = elementCount(shape.slice(2));
    this.tags.set(node.output[0], { group: t.group, axis: -1, block: t.block * block });
  }

  private binary(node: NodeProto): void {
    const tagged = node.input.map((i) => this.tags.get(i));
    const live = tagged.filter((t): t is Tagged => t !== undefined);
    if (live.length === 0) return;
    const outShape = this.shape(node.output[0]);
    for (let i = 0; i < node.input.length; i++) {
      if (tagged[i]) continue;
      if (!this.bindConstant(node.input[i], live[0], outShape)) {
        this.unknown(node);
        return;
      }
    }
    if (live.some((t) => t.block !== 1 || t.axis !== live[0].axis)) {
      this.unknown(node);
      return;
    }
    for (const t of live.slice(1)) this.sets.union(live[0].group, t.group);
    this.tags.set(node.output[0], { ...live[0] });
  }

  /** A constant operand of an element-wise op: a scalar, or one value per channel (then bound). */
  private bindConstant(name: string, tag: Tagged, outShape: number[] | undefined): boolean {
    const shape = this.shape(name);
    if (!shape) return false;
    const n = elementCount(shape);
    if (n === 1) return true;
    if (!this.inits.has(name) || !outShape) return false;
    const pos = shape.length + tag.axis;
    if (pos < 0 || shape.some((d, i) => (i === pos ? d !== this.size(tag.group) : d !== 1))) return false;
    this.bind(tag.group, name, pos, 1);
    return true;
  }

  private pass(node: NodeProto, t: Tagged | undefined): void {
    if (!t) {
      this.unknown(node);
      return;
    }
    for (const extra of node.input.slice(1)) {
      if (extra && this.tags.has(extra)) this.fix(extra);
    }
    this.tags.set(node.output[0], { ...t });
  }

  private unknown(node: NodeProto): void {
    for (const i of node.input) this.fix(i);
  }

  private open(size: number, tensor: string, axis: number): number {
    const id = this.sets.add(size);
    this.tags.set(tensor, { group: id, axis, block: 1 });
    return id;
  }

  private bind(group: number, tensor: string, axis: number, block: number, offset = 0): void {
    if (!this.inits.has(tensor)) {
      this.sets.root(group).fixed = true;
      return;
    }
    this.sets.own(group).bindings.push({ tensor, axis, block, offset });
  }

  private size(group: number): number {
    return this.sets.root(group).size;
  }

  private shape(name: string): number[] | undefined {
    return this.shapes.get(name) ?? this.inits.get(name)?.dims?.map(Number);
  }
}
