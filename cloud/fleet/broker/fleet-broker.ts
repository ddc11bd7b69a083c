import { join } from 'node:path';
import type { Logger } from '../../../shared/logger.js';
import { newSecret } from '../identity/secrets.js';
import { type FleetTls, loadOrCreateFleetTls } from '../identity/tls/fleet-ca.js';
import type { DeviceRepository } from '../inventory/devices.js';
import { CLOUD_USERNAME } from './acl.js';
import { createBrokerAuthenticator } from './authenticator.js';
import { type EmbeddedBroker, startEmbeddedBroker } from './embedded.js';
import { MosquittoSync, mosquittoPasswordHash } from './mosquitto.js';

export interface FleetBrokerOptions {
  dataDir: string;
  /** External broker URL; without it the embedded broker starts. */
  mqttUrl?: string;
  mqttUsername?: string;
  mqttPassword?: string;
  mqttPort?: number;
  mqttHost?: string;
  mosquitto?: { dir: string; reload?: string | (() => Promise<void> | void) };
  openBroker?: boolean;
  tls?: boolean | { hostnames: string[] };
  devices: DeviceRepository;
  logger: Logger;
}

/** The broker side of the cloud, whichever broker it is: where to connect, as whom, and how to
 * keep the broker's idea of who may connect in step with the device registry. */
export interface FleetBroker {
  url: string;
  username?: string;
  password?: string;
  tls?: FleetTls;
  /** Called after a device enrolled (an external Mosquitto needs its password hash). */
  onEnrolled?: (deviceId: string, secret: string) => Promise<void>;
  /** Drops a device's connection and its broker credentials (after revocation). */
  disconnectDevice(deviceId: string): void;
  close(): Promise<void>;
}

export async function openFleetBroker(o: FleetBrokerOptions): Promise<FleetBroker> {
  if (o.mqttUrl) return externalBroker(o);
  // The embedded broker authenticates every client; the cloud gets a fresh password per start.
  const password = newSecret();
  const authenticate = o.openBroker
    ? undefined
    : createBrokerAuthenticator({
        deviceSecretHash: (id) => o.devices.secretHash(id),
        cloudPassword: password,
      });
  const tls = o.tls
    ? await loadOrCreateFleetTls({
        dir: join(o.dataDir, 'tls'),
        hostnames: typeof o.tls === 'object' ? o.tls.hostnames : undefined,
      })
    : undefined;
  const broker: EmbeddedBroker = await startEmbeddedBroker({
    port: o.mqttPort,
    host: o.mqttHost,
    logger: o.logger,
    authenticate,
    tls: tls ? { certPem: tls.certPem, keyPem: tls.keyPem } : undefined,
  });
  return {
    url: broker.url,
    username: CLOUD_USERNAME,
    password,
    tls,
    // Every session of the device goes, whatever suffix its client id carries.
    disconnectDevice: (deviceId) => void broker.revokeDevice(deviceId),
    close: () => broker.close(),
  };
}

async function externalBroker(o: FleetBrokerOptions): Promise<FleetBroker> {
  const base = {
    url: o.mqttUrl!,
    username: o.mqttUsername,
    password: o.mqttPassword,
    close: async () => {},
  };
  if (!o.mosquitto) return { ...base, disconnectDevice: () => {} };
  const mosquitto = new MosquittoSync({ ...o.mosquitto, logger: o.logger });
  // Hashed once: PBKDF2 per enrollment would be wasted work, and a stable line keeps the file diffable.
  const cloudEntry = { username: CLOUD_USERNAME, hash: mosquittoPasswordHash(o.mqttPassword ?? '') };
  const sync = () => mosquitto.write([cloudEntry, ...o.devices.brokerCredentials()]);
  await sync();
  return {
    ...base,
    onEnrolled: async (deviceId, secret) => {
      o.devices.setBrokerHash(deviceId, mosquittoPasswordHash(secret));
      await sync();
    },
    disconnectDevice: () => void sync(),
  };
}
