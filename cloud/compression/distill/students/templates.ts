import { FleetError } from '../../../../shared/errors/index.js';
import { createRng } from '../../../../shared/random.js';
import { attr, floatInput, makeModel, makeNode } from '../../onnx/build.js';
import { floatTensor } from '../../onnx/tensor.js';
import type { ModelProto, NodeProto, TensorProto } from '../../onnx/types.js';

/** A student architecture from the CLI's template syntax. */
export type StudentTemplate = { kind: 'mlp'; hidden: number[] } | { kind: 'cnn'; channels: number[] };

export interface TemplateOptions {
  /** Input shape of one sample, without the batch axis (e.g. [1, 28, 28]). */
  sampleShape: number[];
  /** Number of classes (width of the logits). */
  classes: number;
  /** Dropout on hidden activations (MLP only); default 0 (none). */
  dropout?: number;
  /** Dropout on the input (MLP only); default 0 (none). */
  inputDropout?: number;
  /** Seed of the weight initialisation; default 0. */
  seed?: number;
  /** Name of the model input; default 'input' (use the teacher's). */
  inputName?: string;
  /** Name of the logits output; default 'logits'. */
  outputName?: string;
}

/**
 * Parses `mlp:800,800`, `cnn:16,32` or a parameter budget `mlp@50000` (two equal hidden
 * layers, as wide as the budget allows for the given input and class count).
 */
export function parseTemplate(
  text: string,
  sampleSize?: number,
  classes?: number,
): StudentTemplate | undefined {
  const budget = /^mlp@(\d+)(k?)$/i.exec(text.trim());
  if (budget) {
    if (!sampleSize || !classes) return undefined;
    const params = Number(budget[1]) * (budget[2] ? 1000 : 1);
    // in*h + h + h*h + h + h*c + c <= params, solved for h.
    const b = sampleSize + classes + 2;
    const h = Math.floor((-b + Math.sqrt(b * b + 4 * (params - classes))) / 2);
    if (h < 1) throw new FleetError('INPUT_INVALID', `parameter budget ${params} is too small for an MLP`);
    return { kind: 'mlp', hidden: [h, h] };
  }
  const match = /^(mlp|cnn):(\d+(?:,\d+)*)$/i.exec(text.trim());
  if (!match) return undefined;
  const sizes = match[2].split(',').map(Number);
  if (sizes.some((s) => s < 1)) throw new FleetError('INPUT_INVALID', `template ${text}: sizes must be >= 1`);
  return match[1].toLowerCase() === 'mlp' ? { kind: 'mlp', hidden: sizes } : { kind: 'cnn', channels: sizes };
}

/** PyTorch's default initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases. */
function uniform(name: string, dims: number[], fanIn: number, rng: () => number): TensorProto {
  const bound = 1 / Math.sqrt(fanIn);
  const n = dims.reduce((a, b) => a * b, 1);
  return floatTensor(
    name,
    dims,
    Float32Array.from({ length: n }, () => (rng() * 2 - 1) * bound),
  );
}

/** Builds the student as a plain inference model (the training graph is derived from it). */
export function buildTemplate(template: StudentTemplate, options: TemplateOptions): ModelProto {
  return template.kind === 'mlp' ? buildMlp(template.hidden, options) : buildCnn(template.channels, options);
}

function buildMlp(hidden: number[], o: TemplateOptions): ModelProto {
  const rng = createRng(o.seed ?? 0);
  const input = o.inputName ?? 'input';
  const nodes: NodeProto[] = [];
  const inits: TensorProto[] = [];
  let current = input;
  let width = o.sampleShape.reduce((a, b) => a * b, 1);
  if (o.sampleShape.length !== 1) {
    nodes.push(makeNode('Flatten', [input], ['flat'], [attr.int('axis', 1)], 'flatten'));
    current = 'flat';
  }
  const dropout = (rate: number | undefined, i: string) => {
    if (!rate) return;
    inits.push(floatTensor(`drop${i}.ratio`, [], [rate]));
    nodes.push(makeNode('Dropout', [current, `drop${i}.ratio`], [`drop${i}`], [], `dropout${i}`));
    current = `drop${i}`;
  };
  dropout(o.inputDropout, 'in');
  const layers = [...hidden, o.classes];
  layers.forEach((out, i) => {
    const last = i === layers.length - 1;
    inits.push(uniform(`fc${i}.weight`, [width, out], width, rng), uniform(`fc${i}.bias`, [out], width, rng));
    const z = last ? (o.outputName ?? 'logits') : `fc${i}`;
    nodes.push(makeNode('Gemm', [current, `fc${i}.weight`, `fc${i}.bias`], [z], [], `fc${i}`));
    current = z;
    if (!last) {
      nodes.push(makeNode('Relu', [z], [`relu${i}`], [], `relu${i}`));
      current = `relu${i}`;
      dropout(o.dropout, String(i));
    }
    width = out;
  });
  return makeModel(
    nodes,
    [floatInput(input, ['batch', ...o.sampleShape])],
    [floatInput(current, ['batch', o.classes])],
    {
      initializers: inits,
      name: `mlp_${hidden.join('x')}`,
    },
  );
}

function buildCnn(channels: number[], o: TemplateOptions): ModelProto {
  if (o.sampleShape.length !== 3) {
    throw new FleetError(
      'INPUT_INVALID',
      `a cnn student needs image inputs [C, H, W], got [${o.sampleShape}]`,
    );
  }
  const rng = createRng(o.seed ?? 0);
  const input = o.inputName ?? 'input';
  const nodes: NodeProto[] = [];
  const inits: TensorProto[] = [];
  let [cin, h, w] = o.sampleShape;
  let current = input;
  channels.forEach((cout, i) => {
    const p = `block${i}`;
    inits.push(uniform(`${p}.conv.weight`, [cout, cin, 3, 3], cin * 9, rng));
    inits.push(floatTensor(`${p}.bn.weight`, [cout], new Float32Array(cout).fill(1)));
    inits.push(floatTensor(`${p}.bn.bias`, [cout], new Float32Array(cout)));
    inits.push(floatTensor(`${p}.bn.running_mean`, [cout], new Float32Array(cout)));
    inits.push(floatTensor(`${p}.bn.running_var`, [cout], new Float32Array(cout).fill(1)));
    nodes.push(
      makeNode(
        'Conv',
        [current, `${p}.conv.weight`],
        [`${p}.conv`],
        [attr.ints('kernel_shape', [3, 3]), attr.ints('pads', [1, 1, 1, 1])],
        `${p}.conv`,
      ),
      makeNode(
        'BatchNormalization',
        [`${p}.conv`, `${p}.bn.weight`, `${p}.bn.bias`, `${p}.bn.running_mean`, `${p}.bn.running_var`],
        [`${p}.bn`],
        [attr.float('epsilon', 1e-5), attr.float('momentum', 0.9)],
        `${p}.bn`,
      ),
      makeNode('Relu', [`${p}.bn`], [`${p}.relu`], [], `${p}.relu`),
    );
    current = `${p}.relu`;
    if (h >= 2 && w >= 2) {
      nodes.push(
        makeNode(
          'MaxPool',
          [current],
          [`${p}.pool`],
          [attr.ints('kernel_shape', [2, 2]), attr.ints('strides', [2, 2])],
          `${p}.pool`,
        ),
      );
      current = `${p}.pool`;
      h = Math.floor(h / 2);
      w = Math.floor(w / 2);
    }
    cin = cout;
  });
  const features = cin * h * w;
  nodes.push(makeNode('Flatten', [current], ['features'], [attr.int('axis', 1)], 'flatten'));
  inits.push(
    uniform('head.weight', [features, o.classes], features, rng),
    uniform('head.bias', [o.classes], features, rng),
  );
  const out = o.outputName ?? 'logits';
  nodes.push(makeNode('Gemm', ['features', 'head.weight', 'head.bias'], [out], [], 'head'));
  return makeModel(
    nodes,
    [floatInput(input, ['batch', ...o.sampleShape])],
    [floatInput(out, ['batch', o.classes])],
    {
      initializers: inits,
      name: `cnn_${channels.join('x')}`,
    },
  );
}
