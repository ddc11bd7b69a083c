import { removeStateHome, watchHomePointer } from './state-home.js';

/**
 * Checks that the run leaves the developer's `~/.local/state/fleetml/cloud.json` alone: a
 * `fleetml cloud start` of this run that writes it (a test that dropped XDG_STATE_HOME from the
 * environment it spawns with) fails the run, naming the process and what it wrote.
 */
export default function setup(): () => void {
  const watch = watchHomePointer();
  return () => {
    removeStateHome();
    const touched = watch.stop();
    if (touched.length > 0)
      throw new Error(
        `the tests wrote the developer's cloud.json (use the suite's XDG_STATE_HOME):\n${touched.join('\n')}`,
      );
  };
}
