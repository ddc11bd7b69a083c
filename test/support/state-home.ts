import { readFileSync, rmSync, unwatchFile, watchFile } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * The suite's own `$XDG_STATE_HOME`. `fleetml cloud start` notes its data directory in
 * `$XDG_STATE_HOME/fleetml/cloud.json` (else `~/.local/state/...`), and tests start it as a real
 * process many times: without this every run rewrote the developer's own note, so that their
 * `fleetml tokens enroll` afterwards went to a temporary cloud long gone. vitest.config.ts sets
 * it for every worker; processes the tests spawn inherit it.
 */
export const TEST_STATE_HOME = join(tmpdir(), `fleetml-test-state-${process.pid}`);

/** The note a real `cloud start` of this user writes, which the suite must leave alone. */
export const HOME_POINTER = join(homedir(), '.local', 'state', 'fleetml', 'cloud.json');

/** The parent pid of `pid` from /proc (Linux), or null when it cannot be read. */
function parentOf(pid: number): number | null {
  try {
    // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return null;
  }
}

/** True when `pid` is `ancestor` or one of its descendants (the process must still run). */
export function isDescendant(pid: number, ancestor: number): boolean {
  for (let p: number | null = pid, hops = 0; p !== null && p > 1 && hops < 64; hops++) {
    if (p === ancestor) return true;
    p = parentOf(p);
  }
  return false;
}

/** The pid a cloud.json note names, or null. */
export function pointerPid(text: string): number | null {
  try {
    const pid = JSON.parse(text).pid;
    return Number.isInteger(pid) ? pid : null;
  } catch {
    return null;
  }
}

/**
 * Watches the developer's note while the suite runs and collects every rewrite made by a
 * process of this run (a `cloud start` that a test spawned without the suite's state home).
 * Other processes of the machine (the developer's own cloud, another checkout's tests) may
 * write it meanwhile: those are not this suite's doing and are ignored.
 */
export function watchHomePointer(
  root = process.pid,
  path = HOME_POINTER,
): { found(): string[]; stop(): string[] } {
  const found: string[] = [];
  const listener = (now: { mtimeMs: number }) => {
    if (now.mtimeMs === 0) return;
    let text = '';
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      return;
    }
    const pid = pointerPid(text);
    if (pid !== null && isDescendant(pid, root))
      found.push(`process ${pid} of this test run rewrote ${path}: ${text.trim()}`);
  };
  watchFile(path, { interval: 500 }, listener);
  return {
    found: () => [...found],
    stop() {
      unwatchFile(path, listener);
      return [...found];
    },
  };
}

export function removeStateHome(): void {
  rmSync(TEST_STATE_HOME, { recursive: true, force: true });
}
