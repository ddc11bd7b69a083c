import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { type ErrorCode, FleetError } from '../../shared/errors/index.js';

export const DEFAULT_API_URL = 'http://localhost:8080';
export const DEFAULT_CLOUD_DATA_DIR = '.fleetml/cloud';

export interface ApiOptions {
  api: string;
  token?: string;
  dataDir: string;
}

/** Adds the options every API-backed command shares. */
export function withApiOptions(command: Command): Command {
  return (
    command
      .option('--api <url>', 'cloud API URL (env FLEETML_API)', process.env.FLEETML_API ?? DEFAULT_API_URL)
      // No default value here: commander prints defaults in --help, and this one is a secret.
      .option('--token <token>', 'API token (env FLEETML_TOKEN; default: <data-dir>/admin-token)')
      .option('--data-dir <dir>', 'cloud data directory, to find the admin token', DEFAULT_CLOUD_DATA_DIR)
  );
}

async function resolveToken(options: ApiOptions): Promise<string> {
  const given = options.token ?? process.env.FLEETML_TOKEN;
  if (given) return given;
  try {
    return (await readFile(join(options.dataDir, 'admin-token'), 'utf8')).trim();
  } catch {
    throw new FleetError(
      'UNAUTHORIZED',
      'no API token: pass --token, set FLEETML_TOKEN, or run next to the cloud data dir',
    );
  }
}

/** Calls the cloud API; API errors come back as FleetErrors with the server's code. */
export async function callApi<T>(
  options: ApiOptions,
  method: string,
  path: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<T> {
  const token = await resolveToken(options);
  let response: Response;
  try {
    response = await fetch(new URL(path, options.api), {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': contentType }),
      },
      body:
        body === undefined
          ? undefined
          : contentType === 'application/json'
            ? JSON.stringify(body)
            : (body as Uint8Array),
    });
  } catch (error) {
    throw new FleetError(
      'INPUT_INVALID',
      `cannot reach the cloud API at ${options.api}: ${(error as Error).message}`,
    );
  }
  const payload = (await response.json().catch(() => ({}))) as {
    error?: { code: ErrorCode; message: string };
  };
  if (!response.ok) {
    throw new FleetError(
      payload.error?.code ?? 'INTERNAL',
      payload.error?.message ?? `HTTP ${response.status}`,
    );
  }
  return payload as T;
}

/** Prints a result: one JSON object with --json, otherwise the human form. */
export function printResult(json: boolean | undefined, value: unknown, human: () => string): void {
  process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}
