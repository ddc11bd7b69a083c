import { join } from 'node:path';
import type { Logger } from '../../../shared/logger.js';
import { newSecret } from '../identity/secrets.js';
import { type FleetTls, loadOrCreateFleetTls } from '../identity/tls/fleet-ca.js';
import type { DeviceRepository } from '../inventory/devices.js';
import type { CloudMqtt } from '../transport/mqtt.js';
import { CLOUD_USERNAME } from './acl.js';
import { createBrokerAuthenticator } from './authenticator.js';
import { DynsecControl } from './dynsec.js';
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
  /** The external broker is a Mosquitto with the dynamic security plugin (`fleetml broker mosquitto-config`). */
  mosquittoDynsec?: boolean;
  openBroker?: boolean;
  /** Embedded broker: enrollment connections per client address and minute (its default 30). */
  enrollmentsPerMinute?: number;
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
  disconnectDevice(deviceId: string): void | Promise<void>;
  /** Gives an enrollment token its broker credentials (Mosquitto's dynamic security). */
  onEnrollToken?: (token: string) => Promise<void>;
  /** Called once the cloud's own MQTT connection is up (dynamic security is managed through it). */
  attach?: (mqtt: CloudMqtt) => Promise<void>;
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
    enrollmentsPerMinute: o.enrollmentsPerMinute,
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
  if (o.mosquittoDynsec) return dynsecBroker(base, o.logger);
  if (!o.mosquitto) return { ...base, disconnectDevice: () => {} };
  const mosquitto = new MosquittoSync({ ...o.mosquitto, logger: o.logger });
  // Hashed once: PBKDF2 per enrollment would be wasted work, and a stable line keeps the file diffable.
  const cloudEntry = { username: CLOUD_USERNAME, hash: mosquittoPasswordHash(o.mqttPassword ?? '') };
  const sync = async () => mosquitto.write([cloudEntry, ...(await o.devices.brokerCredentials())]);
  await sync();
  return {
    ...base,
    onEnrolled: async (deviceId, secret) => {
      await o.devices.setBrokerHash(deviceId, mosquittoPasswordHash(secret));
      await sync();
    },
    disconnectDevice: () => void sync(),
  };
}

/** Mosquitto with dynamic security: devices and enrollment tokens become clients, live. */
function dynsecBroker(base: Omit<FleetBroker, 'disconnectDevice'>, logger: Logger): FleetBroker {
  let control: DynsecControl | undefined;
  const ready = () => {
    if (!control) throw new Error('dynamic security is used before the cloud connected');
    return control;
  };
  return {
    ...base,
    attach: async (mqtt) => {
      control = new DynsecControl(mqtt, logger);
      await control.start();
    },
    onEnrolled: (deviceId, secret) => ready().addDevice(deviceId, secret),
    onEnrollToken: (token) => ready().addEnrollToken(token),
    disconnectDevice: (deviceId) => ready().removeDevice(deviceId),
  };
}
