import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CloudHandle, CloudOptions } from '../../../cloud/main.js';
import { createLogger } from '../../../shared/logger.js';
import { startCloudForTests } from './backend-mode.js';

export interface TestCloud {
  cloud: CloudHandle;
  /** Temporary directory holding the cloud's data (and whatever else the test puts there). */
  dir: string;
  /** Calls the HTTP API as the admin; returns status and parsed JSON body. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
  stop(): Promise<void>;
}

/** A real cloud (embedded broker and SQLite, or FLEETML_TEST_BACKEND's) with HTTP on free ports in a temporary directory. */
export async function startTestCloud(
  options: Partial<CloudOptions> = {},
  prefix = 'fleetml-test-',
): Promise<TestCloud> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const cloud = await startCloudForTests({
    dataDir: join(dir, 'cloud'),
    httpPort: 0,
    mqttPort: 0,
    logger: createLogger({ name: 'test', level: 'silent' }),
    ...options,
  });
  return {
    cloud,
    dir,
    api: async (method, path, body) => {
      const response = await fetch(`${cloud.httpUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${cloud.adminToken}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: response.status, body: await response.json() };
    },
    stop: async () => {
      await cloud.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
