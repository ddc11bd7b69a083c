// Tearing a benchmark down without hiding anything: every step runs even when an earlier one
// failed (a cloud that would not stop must not leave its database behind), and every failure
// is reported, by name, instead of being swallowed.

export type TeardownStep = [name: string, step: () => Promise<unknown>];

/** Runs the steps in order; returns one line per step that failed. */
export async function teardown(steps: TeardownStep[]): Promise<string[]> {
  const failures: string[] = [];
  for (const [name, step] of steps) {
    try {
      await step();
    } catch (error) {
      failures.push(`${name}: ${(error as Error)?.message ?? String(error)}`);
    }
  }
  return failures;
}

/**
 * Ends a benchmark run: tears down, prints each teardown failure, and rethrows the run's own
 * error if it had one (a teardown failure never replaces it). A run that succeeded but could
 * not clean up exits non-zero, so a leftover database or process is noticed.
 */
export async function finishRun(runError: unknown, steps: TeardownStep[]): Promise<void> {
  const failures = await teardown(steps);
  for (const failure of failures) process.stderr.write(`teardown failed: ${failure}\n`);
  if (runError !== undefined) throw runError;
  if (failures.length > 0) process.exitCode = 1;
}

/**
 * Rejects on SIGINT or SIGTERM, so that a run stopped by hand (Ctrl-C, `kill`) still tears
 * down: race it against the run. Without it Node exits at once and leaves the benchmark's
 * database and processes behind.
 */
export function interruption(): Promise<never> {
  return new Promise<never>((_, reject) => {
    const signals = ['SIGINT', 'SIGTERM'] as const;
    const handlers = signals.map((signal) => {
      const handler = () => {
        // A second Ctrl-C during the teardown then ends the process as usual.
        for (const [i, s] of signals.entries()) process.off(s, handlers[i]);
        reject(new Error(`interrupted by ${signal}`));
      };
      process.on(signal, handler);
      return handler;
    });
  });
}
