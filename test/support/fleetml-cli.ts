import { type ExecFileOptions, execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The executable as users run it: `node bin/fleetml.mjs …` (TypeScript through tsx). */
export const FLEETML_BIN = fileURLToPath(new URL('../../bin/fleetml.mjs', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `fleetml …args` as a child process. Never rejects: a failure is its exit code and stderr. */
export function fleetml(args: string[], options: ExecFileOptions = {}): Promise<CliResult> {
  return new Promise((done) =>
    execFile(
      process.execPath,
      [FLEETML_BIN, ...args],
      { maxBuffer: 1 << 24, ...options, encoding: 'utf8' },
      (error, stdout, stderr) =>
        done({
          code: error ? (typeof error.code === 'number' ? error.code : 1) : 0,
          stdout: String(stdout),
          stderr: String(stderr),
        }),
    ),
  );
}

export interface CloudCli {
  /** `fleetml …args --api … --token …`: the API flags after the command's own, as users type them. */
  cli(...args: string[]): Promise<CliResult>;
  /** The same with `--json`, parsed; a non-zero exit throws with the command's stderr. */
  json(...args: string[]): Promise<any>;
}

/** The CLI pointed at one running cloud. */
export function cloudCli(cloud: { httpUrl: string; adminToken: string }): CloudCli {
  const api = ['--api', cloud.httpUrl, '--token', cloud.adminToken];
  const cli = (...args: string[]) => fleetml([...args, ...api]);
  return {
    cli,
    async json(...args) {
      const r = await cli(...args, '--json');
      if (r.code !== 0) throw new Error(`fleetml ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
      return JSON.parse(r.stdout);
    },
  };
}
