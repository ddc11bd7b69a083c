import { ACTIVATION_RULES } from './rules/activation.js';
import { CONV_RULES } from './rules/conv.js';
import { ELEMENTWISE_RULES } from './rules/elementwise.js';
import { GATHER_RULES } from './rules/gather.js';
import { LINEAR_RULES } from './rules/linear.js';
import { NORMALIZATION_RULES } from './rules/normalization.js';
import { POOL_RULES } from './rules/pool.js';
import { QUANTIZATION_RULES } from './rules/quantization.js';
import { REDUCE_RULES } from './rules/reduce.js';
import { RESIZE_RULES } from './rules/resize.js';
import { SHAPE_RULES } from './rules/shape.js';
import { SOFTMAX_RULES } from './rules/softmax.js';
import { TYPE_AND_SHAPE_RULES } from './rules/type-and-shape.js';
import type { GradRule } from './types.js';

/** Gradient rules of the default ONNX domain, one module per op family. */
const RULES: ReadonlyMap<string, GradRule> = new Map(
  Object.entries({
    ...LINEAR_RULES,
    ...ELEMENTWISE_RULES,
    ...ACTIVATION_RULES,
    ...CONV_RULES,
    ...POOL_RULES,
    ...NORMALIZATION_RULES,
    ...SHAPE_RULES,
    ...SOFTMAX_RULES,
    ...REDUCE_RULES,
    ...QUANTIZATION_RULES,
    ...RESIZE_RULES,
    ...TYPE_AND_SHAPE_RULES,
    ...GATHER_RULES,
  }),
);

export function gradRule(opType: string, domain?: string): GradRule | undefined {
  if (domain && domain !== 'ai.onnx') return undefined;
  return RULES.get(opType);
}

/** Every op type with a gradient rule (for messages and docs). */
export function differentiableOps(): string[] {
  return [...RULES.keys()].sort();
}
