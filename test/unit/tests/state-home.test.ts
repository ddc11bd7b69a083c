import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cloudPointerPath } from '../../../cloud/cli/cloud-context.js';
import { HOME_POINTER, isDescendant, pointerPid, watchHomePointer } from '../../support/state-home.js';

// Tests that start `fleetml cloud start` used to rewrite ~/.local/state/fleetml/cloud.json.
describe("the suite keeps `cloud start`'s note out of the developer's home", () => {
  it('every test process (and what it spawns) resolves the note under the temporary state home', () => {
    // vitest.config.ts computed it in the main process (its pid in the name, not this worker's).
    const stateHome = process.env.XDG_STATE_HOME ?? '';
    expect(stateHome.startsWith(join(tmpdir(), 'fleetml-test-state-'))).toBe(true);
    expect(cloudPointerPath()).toBe(join(stateHome, 'fleetml', 'cloud.json'));
    expect(cloudPointerPath().startsWith(homedir())).toBe(false);
    expect(HOME_POINTER).toBe(cloudPointerPath({ HOME: homedir() }));
    // A process a test spawns (as `fleetml cloud start` is) inherits it.
    const child = execFileSync(process.execPath, [
      '-e',
      'process.stdout.write(process.env.XDG_STATE_HOME ?? "")',
    ]);
    expect(child.toString()).toBe(stateHome);
  });

  it.runIf(process.platform === 'linux')(
    'the end-of-run check blames only processes of this run',
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'fleetml-pointer-'));
      const note = join(dir, 'cloud.json');
      const watch = watchHomePointer(process.pid, note);
      // A descendant of this process writes a note naming itself, as `cloud start` does.
      const writer = spawn(process.execPath, [
        '-e',
        `require('node:fs').writeFileSync(${JSON.stringify(note)}, JSON.stringify({ dataDir: '/x', pid: process.pid })); setTimeout(() => {}, 20000)`,
      ]);
      try {
        // The watcher polls: wait for its report rather than for a fixed time.
        const deadline = Date.now() + 30_000;
        while (watch.found().length === 0 && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 100));
        expect(watch.stop().join('\n')).toContain(`process ${writer.pid} of this test run rewrote`);
      } finally {
        writer.kill();
        await rm(dir, { recursive: true, force: true });
      }
    },
  );

  it.runIf(process.platform === 'linux')('knows its descendants, and ignores other processes', () => {
    expect(isDescendant(process.pid, process.pid)).toBe(true);
    expect(isDescendant(process.pid, process.ppid)).toBe(true);
    expect(isDescendant(process.ppid, process.pid)).toBe(false);
    expect(isDescendant(1, process.pid)).toBe(false);
    expect(pointerPid('{"dataDir":"/srv","pid":42}')).toBe(42);
    expect(pointerPid('not json')).toBeNull();
  });
});
