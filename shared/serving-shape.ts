/**
 * Serving shapes (issue 14): most vision exports declare symbolic dimensions (batch, height,
 * width), and a model timed at an invented shape reports a latency nobody will see. A serving
 * shape names the concrete dims each input is used at; the cloud checks it against the model at
 * upload, the manifest carries it, and the agent benchmarks and probes at it. Pure code.
 */
import { FleetError } from './errors/index.js';
import type { ServingShapes } from './protocol/delivery.js';

/** An input as declared by the model: a symbolic dimension is a string (or a non-positive number). */
export interface DeclaredInput {
  name: string;
  shape: ReadonlyArray<number | string>;
}

const isFixed = (d: number | string): d is number => typeof d === 'number' && d > 0;

/** `[?batch,3,?h,?w]`-style rendering of a declared shape, for error messages. */
export function formatDeclaredShape(shape: ReadonlyArray<number | string>): string {
  return `[${shape.map((d) => (isFixed(d) ? String(d) : `${typeof d === 'string' && d ? d : '?'}`)).join(',')}]`;
}

function parseDims(text: string, flag: string): number[] {
  const dims = text.split(',').map((v) => Number(v.trim()));
  if (dims.length === 0 || dims.some((v) => !Number.isInteger(v) || v <= 0)) {
    throw new FleetError(
      'INPUT_INVALID',
      `${flag} must be positive integers separated by commas (per input: name=1,3,48,192), got ${text}`,
    );
  }
  return dims;
}

/**
 * Parses `--shape` values: `1,3,48,192` (the model's only input) or `name=1,3,48,192` (one per
 * input). The result is checked against the model separately (`checkServingShapes`).
 */
export function parseShapeFlags(values: readonly string[], flag = '--shape'): Record<string, number[]> {
  const shapes: Record<string, number[]> = {};
  for (const value of values) {
    const eq = value.lastIndexOf('=');
    const name = eq > 0 ? value.slice(0, eq) : '';
    if (name in shapes)
      throw new FleetError('INPUT_INVALID', `${flag} gives input ${name || '(unnamed)'} twice`);
    shapes[name] = parseDims(eq > 0 ? value.slice(eq + 1) : value, flag);
  }
  return shapes;
}

/**
 * Validates serving shapes against a model's declared inputs and returns them keyed by input
 * name. An unnamed shape (key '') applies to a model with exactly one input. Each shape must have
 * the input's rank and agree with every fixed dimension; an error names the expected shape.
 */
export function checkServingShapes(
  inputs: readonly DeclaredInput[],
  shapes: Record<string, readonly number[]>,
): ServingShapes {
  const out: ServingShapes = {};
  const expected = inputs.map((i) => `${i.name} ${formatDeclaredShape(i.shape)}`).join(', ');
  for (const [key, dims] of Object.entries(shapes)) {
    if (key === '' && inputs.length !== 1) {
      throw new FleetError(
        'INPUT_INVALID',
        `the model has ${inputs.length} inputs: name each shape (name=dims); inputs: ${expected}`,
        { expected },
      );
    }
    const input = key === '' ? inputs[0] : inputs.find((i) => i.name === key);
    if (!input) {
      throw new FleetError('INPUT_INVALID', `the model has no input ${key}; inputs: ${expected}`, {
        expected,
      });
    }
    const mismatch =
      dims.length !== input.shape.length || input.shape.some((d, i) => isFixed(d) && d !== dims[i]);
    if (mismatch) {
      throw new FleetError(
        'INPUT_INVALID',
        `shape [${dims.join(',')}] does not fit input ${input.name}, which expects ${formatDeclaredShape(input.shape)}`,
        { input: input.name, expected: formatDeclaredShape(input.shape), got: [...dims] },
      );
    }
    out[input.name] = [...dims];
  }
  return out;
}

/** Symbolic dimensions of the inputs that the serving shapes leave open, as `input:dim`. */
export function unresolvedDimensions(inputs: readonly DeclaredInput[], shapes: ServingShapes = {}): string[] {
  const open: string[] = [];
  for (const input of inputs) {
    if (shapes[input.name]) continue;
    input.shape.forEach((d, i) => {
      if (!isFixed(d)) open.push(`${input.name}:${typeof d === 'string' && d ? d : `dim${i}`}`);
    });
  }
  return open;
}

/**
 * The dims to run one input at: its serving shape, else its declared dims with each symbolic
 * one set to `fallbackDim` and listed in `unresolved` (the caller must say so, never hide it).
 */
export function resolveInputShape(
  input: DeclaredInput,
  shapes: ServingShapes | undefined,
  fallbackDim: number,
): { dims: number[]; unresolved: string[] } {
  const serving = shapes?.[input.name];
  if (serving) return { dims: [...serving], unresolved: [] };
  return {
    dims: input.shape.map((d) => (isFixed(d) ? d : fallbackDim)),
    unresolved: unresolvedDimensions([input]),
  };
}
