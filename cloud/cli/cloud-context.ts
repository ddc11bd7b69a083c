import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { FleetError } from '../../shared/errors/index.js';

/**
 * Which cloud an API-backed command talks to when the user names none. `cloud start` notes its
 * data directory and API address in a small per-user file, so that `tokens enroll` in another
 * terminal or directory finds the cloud started with `--data-dir /var/lib/fleetml-cloud` and
 * a non-default port without flags. The file holds no secret: the admin token stays in the
 * data directory (mode 600), readable only by the cloud's user.
 */
export const DEFAULT_API_URL = 'http://localhost:8080';
export const DEFAULT_CLOUD_DATA_DIR = '.fleetml/cloud';

export interface CloudPointer {
  api: string;
  dataDir: string;
  pid: number;
  startedAt: string;
}

/** `$XDG_STATE_HOME/fleetml/cloud.json`, by default `~/.local/state/fleetml/cloud.json`. */
export function cloudPointerPath(env: NodeJS.ProcessEnv = process.env): string {
  const stateHome = env.XDG_STATE_HOME || join(env.HOME || homedir(), '.local', 'state');
  return join(stateHome, 'fleetml', 'cloud.json');
}

export async function writeCloudPointer(
  api: string,
  dataDir: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const path = cloudPointerPath(env);
  const pointer: CloudPointer = {
    api,
    dataDir: resolve(dataDir),
    pid: process.pid,
    startedAt: new Date().toISOString(),
  };
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(pointer, null, 2)}\n`, { mode: 0o600 });
  return path;
}

/** Removes the pointer if it still names this process (another cloud may have started since). */
export async function clearCloudPointer(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const pointer = await readCloudPointer(env);
  if (pointer?.pid === process.pid) await rm(cloudPointerPath(env), { force: true });
}

export async function readCloudPointer(env: NodeJS.ProcessEnv = process.env): Promise<CloudPointer | null> {
  try {
    const value = JSON.parse(await readFile(cloudPointerPath(env), 'utf8')) as Partial<CloudPointer>;
    return typeof value.api === 'string' && typeof value.dataDir === 'string'
      ? (value as CloudPointer)
      : null;
  } catch {
    return null;
  }
}

export interface ContextInput {
  /** --api, when given. */
  api?: string;
  /** --token, when given. */
  token?: string;
  /** --data-dir, when given. */
  dataDir?: string;
}

export interface CloudContext {
  api: string;
  token: string;
}

const exists = (path: string) =>
  readFile(path).then(
    () => true,
    (error: NodeJS.ErrnoException) => error.code !== 'ENOENT',
  );

/**
 * API address and token, first found wins: flags, FLEETML_API / FLEETML_TOKEN, then the admin
 * token of a data directory: --data-dir, else `.fleetml/cloud` here if it holds one, else the
 * cloud this user started last. The API address of that cloud comes along with its directory.
 */
export async function resolveCloudContext(
  input: ContextInput,
  { env = process.env, cwd = process.cwd() }: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<CloudContext> {
  const pointer = await readCloudPointer(env);
  const localDefault = resolve(cwd, DEFAULT_CLOUD_DATA_DIR);
  const dataDir = resolve(
    cwd,
    input.dataDir ??
      ((await exists(join(localDefault, 'admin-token'))) ? localDefault : (pointer?.dataDir ?? localDefault)),
  );
  const pointerApi = pointer && dataDir === pointer.dataDir ? pointer.api : undefined;
  const api = input.api ?? env.FLEETML_API ?? pointerApi ?? DEFAULT_API_URL;
  const token =
    input.token ?? env.FLEETML_TOKEN ?? (await readAdminToken(dataDir, env, input.dataDir !== undefined));
  return { api, token };
}

async function readAdminToken(dataDir: string, env: NodeJS.ProcessEnv, explicit: boolean): Promise<string> {
  const path = join(dataDir, 'admin-token');
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') {
      throw new FleetError(
        'UNAUTHORIZED',
        `cannot read ${path} (permission denied): run as the user that started the cloud, or pass --token / set FLEETML_TOKEN`,
        { path },
      );
    }
    const where = explicit
      ? `no ${path} (is --data-dir the directory the cloud was started with?)`
      : `no ${path} and no cloud started by this user (${cloudPointerPath(env)})`;
    throw new FleetError(
      'UNAUTHORIZED',
      `no API token: ${where}; pass --data-dir <the cloud's data dir>, or --token / set FLEETML_TOKEN`,
      { path },
    );
  }
}
