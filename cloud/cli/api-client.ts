import type { Command } from 'commander';
import { type ErrorCode, FleetError } from '../../shared/errors/index.js';
import { DEFAULT_API_URL, DEFAULT_CLOUD_DATA_DIR, resolveCloudContext } from './cloud-context.js';

export { DEFAULT_API_URL, DEFAULT_CLOUD_DATA_DIR };

export interface ApiOptions {
  /** Undefined when not given: resolveCloudContext picks (env, the cloud this user started). */
  api?: string;
  token?: string;
  dataDir?: string;
}

/** Adds the options every API-backed command shares. */
export function withApiOptions(command: Command): Command {
  return (
    command
      .option(
        '--api <url>',
        `cloud API URL (env FLEETML_API; default: the cloud this user started last, else ${DEFAULT_API_URL})`,
      )
      // No default value here: commander prints defaults in --help, and this one is a secret.
      .option('--token <token>', 'API token (env FLEETML_TOKEN; default: <data-dir>/admin-token)')
      .option(
        '--data-dir <dir>',
        `cloud data directory, to find the admin token (default: ${DEFAULT_CLOUD_DATA_DIR} if present, else the cloud this user started last)`,
      )
  );
}

/** Calls the cloud API; API errors come back as FleetErrors with the server's code. */
export async function callApi<T>(
  options: ApiOptions,
  method: string,
  path: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<T> {
  const { api, token } = await resolveCloudContext(options);
  let response: Response;
  try {
    response = await fetch(new URL(path, api), {
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
      `cannot reach the cloud API at ${api}: ${(error as Error).message}`,
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
