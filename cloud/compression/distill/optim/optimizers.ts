import { FleetError } from '../../../../shared/errors/index.js';

/** Emits element-wise nodes; the optimizer sees nothing else of the graph. */
export interface OptimizerEmitter {
  op(opType: string, inputs: readonly string[]): string;
  scalar(value: number): string;
}

export interface OptimizerOptions {
  /** 'sgd' (momentum, L2 weight decay), 'adam' (L2 weight decay) or 'adamw' (decoupled); default 'sgd'. */
  kind?: 'sgd' | 'adam' | 'adamw';
  /** Base learning rate; default 0.05 for SGD, 1e-3 for Adam. */
  lr?: number;
  /** SGD momentum; default 0.9. */
  momentum?: number;
  /** Weight decay coefficient; default 0. */
  weightDecay?: number;
  /** Adam beta1; default 0.9. */
  beta1?: number;
  /** Adam beta2; default 0.999. */
  beta2?: number;
  /** Adam epsilon; default 1e-8. */
  epsilon?: number;
}

export const DEFAULT_OPTIMIZER = {
  kind: 'sgd',
  momentum: 0.9,
  weightDecay: 0,
  beta1: 0.9,
  beta2: 0.999,
  epsilon: 1e-8,
} as const;

export function defaultLearningRate(kind: OptimizerOptions['kind']): number {
  return kind === 'adam' || kind === 'adamw' ? 1e-3 : 0.05;
}

/**
 * An optimizer written as graph nodes. Per-step numbers (learning rate, bias corrections)
 * arrive in a small hyper-parameter vector so that schedules need no graph change; `seed`
 * names the hyper-parameter that scales the loss gradient (backward emits pre-scaled
 * gradients, saving a pass over every parameter).
 */
export interface GraphOptimizer {
  /** Names of the optimizer's state tensors per parameter (e.g. ['velocity']). */
  states: string[];
  /** Index into the hyper vector used as the backward seed, or -1 for a constant 1. */
  seedIndex: number;
  hyperSize: number;
  /** The hyper vector for a step (0-based) at learning rate `lr`. */
  hyper(step: number, lr: number): number[];
  /**
   * When set, the first state follows s' = beta * s + grad, which the weight-gradient Gemm can
   * compute itself through its C input (saving two passes over the weights).
   */
  accumulateBeta?: number;
  /**
   * Emits the update; `hyper` holds scalar tensor names. `accumulated` says the gradient
   * already is beta * state + grad (see accumulateBeta). Returns the new parameter and states.
   */
  update(
    e: OptimizerEmitter,
    param: string,
    grad: string,
    states: string[],
    hyper: string[],
    accumulated: boolean,
  ): { param: string; states: string[] };
}

type Settings = Required<Omit<OptimizerOptions, 'lr' | 'kind'>>;

const OPTIMIZERS: Record<string, (s: Settings) => GraphOptimizer> = {
  // u' = mu u + lr (g + wd p); p' = p - u'. The rate sits inside the velocity (Sutskever's
  // form), which equals PyTorch's SGD at a constant rate and needs three passes per parameter.
  sgd: (s) => ({
    states: ['velocity'],
    seedIndex: 0,
    hyperSize: 2,
    hyper: (_step, lr) => [lr, lr * s.weightDecay],
    accumulateBeta: s.momentum > 0 ? s.momentum : undefined,
    update(e, p, g, [u], [, lrWd], accumulated) {
      let velocity = g;
      if (s.momentum > 0 && !accumulated)
        velocity = e.op('Add', [e.op('Mul', [u, e.scalar(s.momentum)]), velocity]);
      if (s.weightDecay > 0) velocity = e.op('Add', [velocity, e.op('Mul', [p, lrWd])]);
      return { param: e.op('Sub', [p, velocity]), states: [s.momentum > 0 ? velocity : u] };
    },
  }),
  adam: (s) => adam(s, false),
  adamw: (s) => adam(s, true),
};

/**
 * Adam with the bias corrections folded into two per-step scalars:
 * p' = p - a_t m' / (sqrt(v') + eps_t), a_t = lr sqrt(1 - b2^t) / (1 - b1^t), eps_t = eps sqrt(1 - b2^t),
 * which is exactly PyTorch's update. The seed (1 - b1) pre-scales the gradient for m.
 */
function adam(s: Settings, decoupled: boolean): GraphOptimizer {
  const b1 = s.beta1;
  const b2 = s.beta2;
  return {
    states: ['m', 'v'],
    seedIndex: 0,
    hyperSize: 4,
    hyper(step, lr) {
      const t = step + 1;
      const c2 = Math.sqrt(1 - b2 ** t);
      return [1 - b1, (lr * c2) / (1 - b1 ** t), s.epsilon * c2, lr * s.weightDecay];
    },
    update(e, p, g, [m, v], [, a, eps, lrWd]) {
      // g arrives as (1 - b1) * dL/dp.
      let scaled = g;
      if (!decoupled && s.weightDecay > 0)
        scaled = e.op('Add', [g, e.op('Mul', [p, e.scalar((1 - b1) * s.weightDecay)])]);
      const m2 = e.op('Add', [e.op('Mul', [m, e.scalar(b1)]), scaled]);
      const sq = e.op('Mul', [scaled, scaled]);
      const v2 = e.op('Add', [
        e.op('Mul', [v, e.scalar(b2)]),
        e.op('Mul', [sq, e.scalar((1 - b2) / (1 - b1) ** 2)]),
      ]);
      const denom = e.op('Add', [e.op('Sqrt', [v2]), eps]);
      let next = e.op('Sub', [p, e.op('Mul', [e.op('Div', [m2, denom]), a])]);
      if (decoupled && s.weightDecay > 0) next = e.op('Sub', [next, e.op('Mul', [p, lrWd])]);
      return { param: next, states: [m2, v2] };
    },
  };
}

export function createOptimizer(options: OptimizerOptions = {}): GraphOptimizer {
  const o = { ...DEFAULT_OPTIMIZER, ...options };
  const make = OPTIMIZERS[o.kind];
  if (!make) throw new FleetError('INPUT_INVALID', `unknown optimizer ${o.kind} (sgd, adam, adamw)`);
  return make(o);
}
