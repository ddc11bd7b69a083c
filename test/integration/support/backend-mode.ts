/**
 * Which backends the fleet tests run the cloud on, chosen by FLEETML_TEST_BACKEND:
 * - `embedded` (default): the embedded aedes broker and SQLite, as `npm start` runs;
 * - `pg-mosquitto`: `--database` on a new PostgreSQL database per cloud and `--mqtt-url` to a
 *   real Mosquitto (dynamic security, as `fleetml broker mosquitto-config` writes it) started
 *   for that cloud; agents connect through that Mosquitto. vitest.pg.config.ts sets it.
 * Harnesses start clouds through startCloudForTests / ExternalBackend and never look at the
 * mode themselves; tests that only make sense on the embedded backend skip with embeddedOnly().
 */
import pg from 'pg';
import { CLOUD_USERNAME } from '../../../cloud/fleet/broker/acl.js';
import type { CloudHandle, CloudOptions } from '../../../cloud/main.js';
import { startCloud } from '../../../cloud/main.js';
import { freshDatabase } from '../scale/pg.js';
import { DynsecMosquitto } from './external-broker.js';

export type TestBackendMode = 'embedded' | 'pg-mosquitto';

function parseMode(value: string | undefined): TestBackendMode {
  if (!value || value === 'embedded') return 'embedded';
  if (value === 'pg-mosquitto') return value;
  throw new Error(`FLEETML_TEST_BACKEND=${value}: expected embedded or pg-mosquitto`);
}

export const TEST_BACKEND: TestBackendMode = parseMode(process.env.FLEETML_TEST_BACKEND);
export const onPgMosquitto = TEST_BACKEND === 'pg-mosquitto';

/** For describe.skipIf / it.skipIf: true (skip) on pg-mosquitto; the reason goes in the title. */
export function embeddedOnly(reason: string): { skip: boolean; title: (t: string) => string } {
  return {
    skip: onPgMosquitto,
    title: (t) => (onPgMosquitto ? `${t} (skipped on pg-mosquitto: ${reason})` : t),
  };
}

/** An empty PostgreSQL database and (unless the test brings its own) a Mosquitto for one cloud, kept across its restarts. */
export class ExternalBackend {
  private constructor(
    private readonly mosquitto: DynsecMosquitto | null,
    readonly database: string,
    private readonly dropDatabase: () => Promise<void>,
  ) {}

  static async start(options: { broker?: boolean } = {}): Promise<ExternalBackend> {
    const { url, drop } = await freshDatabase();
    const broker =
      options.broker === false
        ? null
        : await DynsecMosquitto.start().catch(async (error) => {
            await drop();
            throw error;
          });
    return new ExternalBackend(broker, url, drop);
  }

  get broker(): DynsecMosquitto {
    if (!this.mosquitto) throw new Error('this backend has no Mosquitto of its own');
    return this.mosquitto;
  }

  /** What startCloud needs on top of its own options. */
  cloudOptions(): Partial<CloudOptions> {
    if (!this.mosquitto) return { database: this.database };
    return {
      database: this.database,
      mqttUrl: this.mosquitto.url,
      mqttUsername: CLOUD_USERNAME,
      mqttPassword: this.mosquitto.cloudPassword,
      mosquittoDynsec: true,
    };
  }

  /** The same for `fleetml cloud start` (the password through the environment, not argv). */
  cliArgs(): { args: string[]; env: NodeJS.ProcessEnv } {
    if (!this.mosquitto) return { args: ['--database', this.database], env: {} };
    return {
      args: ['--database', this.database, '--mqtt-url', this.mosquitto.url, '--mosquitto-dynsec'],
      env: { FLEETML_MQTT_PASSWORD: this.mosquitto.cloudPassword },
    };
  }

  /** One query on the cloud's PostgreSQL database. */
  async query<T extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<T[]> {
    const client = new pg.Client({ connectionString: this.database });
    await client.connect();
    try {
      return (await client.query<T>(sql, params)).rows;
    } finally {
      await client.end();
    }
  }

  async close(): Promise<void> {
    await this.mosquitto?.close();
    await this.dropDatabase();
  }
}

const backends = new WeakMap<CloudHandle, ExternalBackend>();

/** The external backend a cloud from startCloudForTests runs on (undefined: embedded). */
export function backendOf(cloud: CloudHandle): ExternalBackend | undefined {
  return backends.get(cloud);
}

/**
 * startCloud on the selected backend. On pg-mosquitto the cloud gets its own database and, unless
 * the options name a broker (a test of a particular broker setup), its own Mosquitto; its
 * stop() removes them. Options naming a database of their own are left as they are.
 */
export async function startCloudForTests(options: CloudOptions): Promise<CloudHandle> {
  if (!onPgMosquitto || options.database) return startCloud(options);
  const backend = await ExternalBackend.start({ broker: !options.mqttUrl });
  let cloud: CloudHandle;
  try {
    cloud = await startCloud({ ...options, ...backend.cloudOptions() });
  } catch (error) {
    await backend.close();
    throw error;
  }
  const wrapped: CloudHandle = {
    ...cloud,
    stop: async () => {
      try {
        await cloud.stop();
      } finally {
        await backend.close();
      }
    },
  };
  backends.set(wrapped, backend);
  return wrapped;
}

/** One stored telemetry record, as the tests look at it (times as ISO strings). */
export interface StoredTelemetry {
  seq: number;
  at: string;
  receivedAt: string;
  modelId: string | null;
  latCount: number | null;
}

/** The telemetry records stored for a device, in seq order, wherever this cloud stores them. */
export async function storedTelemetry(cloud: CloudHandle, deviceId: string): Promise<StoredTelemetry[]> {
  const backend = backendOf(cloud);
  if (!backend) {
    return cloud.services.db
      .prepare(
        `SELECT seq, at, received_at receivedAt, model_id modelId, lat_count latCount
         FROM telemetry WHERE device_id = ? ORDER BY seq`,
      )
      .all(deviceId) as StoredTelemetry[];
  }
  const rows = await backend.query<{
    seq: string;
    at: Date;
    received_at: Date;
    model_id: string | null;
    lat_count: number | null;
  }>('SELECT seq, at, received_at, model_id, lat_count FROM telemetry WHERE device_id = $1 ORDER BY seq', [
    deviceId,
  ]);
  return rows.map((r) => ({
    seq: Number(r.seq),
    at: r.at.toISOString(),
    receivedAt: r.received_at.toISOString(),
    modelId: r.model_id,
    latCount: r.lat_count,
  }));
}

/** How many telemetry records are stored for a device. */
export async function storedTelemetryCount(cloud: CloudHandle, deviceId: string): Promise<number> {
  return (await storedTelemetry(cloud, deviceId)).length;
}
