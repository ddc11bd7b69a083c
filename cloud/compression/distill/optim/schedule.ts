/** Learning-rate schedule, evaluated in JavaScript and fed to the graph per step. */
export interface ScheduleOptions {
  /** 'constant', 'cosine' (to minLr over totalSteps) or 'step' (x gamma every stepSize steps); default 'constant'. */
  kind?: 'constant' | 'cosine' | 'step';
  /** Linear warm-up from 0 over this many steps; default 0. */
  warmupSteps?: number;
  /** Floor of the cosine schedule, as a fraction of the base rate; default 0. */
  minFraction?: number;
  /** Steps between decays of the step schedule; default 1000. */
  stepSize?: number;
  /** Decay factor of the step schedule; default 0.1. */
  gamma?: number;
}

export const DEFAULT_SCHEDULE: Required<ScheduleOptions> = {
  kind: 'constant',
  warmupSteps: 0,
  minFraction: 0,
  stepSize: 1000,
  gamma: 0.1,
};

/** Learning rate at `step` (0-based) of `totalSteps`. */
export function learningRate(
  base: number,
  step: number,
  totalSteps: number,
  options: ScheduleOptions = {},
): number {
  const o = { ...DEFAULT_SCHEDULE, ...options };
  if (step < o.warmupSteps) return (base * (step + 1)) / o.warmupSteps;
  const t = step - o.warmupSteps;
  const span = Math.max(totalSteps - o.warmupSteps, 1);
  switch (o.kind) {
    case 'cosine': {
      const cos = 0.5 * (1 + Math.cos((Math.PI * Math.min(t, span)) / span));
      return base * (o.minFraction + (1 - o.minFraction) * cos);
    }
    case 'step':
      return base * o.gamma ** Math.floor(t / o.stepSize);
    default:
      return base;
  }
}
