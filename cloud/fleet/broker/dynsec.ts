import { pbkdf2Sync, randomBytes, randomUUID } from 'node:crypto';
import { FleetError } from '../../../shared/errors/index.js';
import type { Logger } from '../../../shared/logger.js';
import {
  enrollCredentials,
  enrollReplyTopic,
  enrollRequestTopic,
  TOPIC_ROOT,
} from '../../../shared/protocol/index.js';
import type { CloudMqtt } from '../transport/mqtt.js';
import { CLOUD_USERNAME, DEVICE_PUBLISH_CHANNELS, DEVICE_SUBSCRIBE_CHANNELS } from './acl.js';
import { deviceClientId } from './authenticator.js';

/**
 * fleetml's access rules (acl.ts) on Mosquitto 2's dynamic security plugin, managed live over
 * `$CONTROL/dynamic-security/v1`: one client and one role per device (client id bound to
 * `fleetml-<id>`), one per enrollment token (client id bound to the id derived from the
 * token), and the cloud. Every client but the cloud is bound to its one client id, so nobody
 * can take over or evict another session; deleting a client disconnects it at once.
 * (Mosquitto 2.0's dynamic security has no %c/%u patterns: hence a role per client.)
 */
export const DYNSEC_PLUGIN = '/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so';
const CONTROL_TOPIC = '$CONTROL/dynamic-security/v1';
const RESPONSE_TOPIC = `${CONTROL_TOPIC}/response`;
export const CLOUD_ROLE = 'fleetml-cloud';

type Acl = { acltype: string; topic: string; allow: boolean; priority?: number };

/** A password as the plugin stores it: PBKDF2-SHA512, 101 iterations, base64. */
function dynsecPassword(password: string) {
  const salt = randomBytes(12);
  const hash = pbkdf2Sync(password, salt, 101, 64, 'sha512');
  return { password: hash.toString('base64'), salt: salt.toString('base64'), iterations: 101 };
}

function readWrite(topic: string): Acl[] {
  return [
    { acltype: 'publishClientSend', topic, allow: true },
    { acltype: 'publishClientReceive', topic, allow: true },
    { acltype: 'subscribePattern', topic, allow: true },
    { acltype: 'unsubscribePattern', topic, allow: true },
  ];
}

/** Read (subscribe to and receive) one exact topic. */
function readOnly(topic: string): Acl[] {
  return [
    { acltype: 'subscribeLiteral', topic, allow: true },
    { acltype: 'publishClientReceive', topic, allow: true },
  ];
}

export function deviceAcls(deviceId: string): Acl[] {
  return [
    ...DEVICE_PUBLISH_CHANNELS.map((c) => ({
      acltype: 'publishClientSend',
      topic: `${TOPIC_ROOT}/d/${deviceId}/${c}`,
      allow: true,
    })),
    ...DEVICE_SUBSCRIBE_CHANNELS.flatMap((c) => readOnly(`${TOPIC_ROOT}/d/${deviceId}/${c}`)),
  ];
}

export function enrollAcls(requestId: string): Acl[] {
  return [
    { acltype: 'publishClientSend', topic: enrollRequestTopic(requestId), allow: true },
    ...readOnly(enrollReplyTopic(requestId)),
  ];
}

/** The plugin's initial configuration: the cloud's client and role; everything else is denied. */
export function renderDynsecConfig(cloudPassword: string): object {
  return {
    defaultACLAccess: {
      publishClientSend: false,
      publishClientReceive: false,
      subscribe: false,
      unsubscribe: true,
    },
    clients: [
      {
        username: CLOUD_USERNAME,
        textName: 'fleetml cloud controller',
        ...dynsecPassword(cloudPassword),
        roles: [{ rolename: CLOUD_ROLE }],
      },
    ],
    groups: [],
    roles: [
      {
        rolename: CLOUD_ROLE,
        acls: [
          ...readWrite(`${TOPIC_ROOT}/#`),
          ...readWrite('$CONTROL/dynamic-security/#'),
          // Cloud replicas share the device subscriptions ($share/<group>/fleetml/v1/...).
          { acltype: 'subscribePattern', topic: '$share/#', allow: true },
          { acltype: 'unsubscribePattern', topic: '$share/#', allow: true },
        ],
      },
    ],
  };
}

interface Command {
  command: string;
  [key: string]: unknown;
}

/** Sends dynamic security commands through the cloud's own MQTT connection and awaits the answers. */
export class DynsecControl {
  private readonly pending = new Map<
    string,
    { resolve: () => void; reject: (e: Error) => void; command: string }
  >();

  constructor(
    private readonly mqtt: CloudMqtt,
    private readonly logger: Logger,
    private readonly timeoutMs = 10_000,
  ) {}

  async start(): Promise<void> {
    this.mqtt.client.on('message', (topic, payload) => {
      if (topic === RESPONSE_TOPIC) this.onResponse(payload);
    });
    await this.mqtt.client.subscribeAsync(RESPONSE_TOPIC, { qos: 1 });
  }

  private onResponse(payload: Buffer): void {
    let parsed: { responses?: Array<{ command: string; error?: string; correlationData?: string }> };
    try {
      parsed = JSON.parse(payload.toString('utf8'));
    } catch {
      return;
    }
    for (const response of parsed.responses ?? []) {
      const waiting = response.correlationData ? this.pending.get(response.correlationData) : undefined;
      if (!waiting) continue;
      this.pending.delete(response.correlationData!);
      if (response.error) waiting.reject(new FleetError('CONFLICT', `${waiting.command}: ${response.error}`));
      else waiting.resolve();
    }
  }

  /** Runs one command; rejects with the plugin's error (e.g. "Client already exists"). */
  run(command: Command): Promise<void> {
    const correlationData = randomUUID();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(correlationData);
        reject(
          new FleetError('INTERNAL', `no answer from Mosquitto's dynamic security to ${command.command}`),
        );
      }, this.timeoutMs);
      this.pending.set(correlationData, {
        command: command.command,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      const body = JSON.stringify({ commands: [{ ...command, correlationData }] });
      this.mqtt.publish(CONTROL_TOPIC, Buffer.from(body), { qos: 1 }).catch(reject);
    });
  }

  /** Runs a command whose "already exists" / "not found" answer means the work is done. */
  private async idempotent(command: Command): Promise<void> {
    await this.run(command).catch((error: Error) => {
      if (!/already exists|not found/i.test(error.message)) throw error;
    });
  }

  /**
   * A device may connect as `fleetml-<id>` with its secret, and use its own topics only. Given
   * again (a repeated enrollment, or two copies of one at once) the client is modified in place,
   * never deleted first: the device may already be connecting with the identity the first reply
   * carried, and a delete-then-create left a moment in which the broker did not know it.
   */
  async addDevice(deviceId: string, secret: string): Promise<void> {
    const rolename = `fleetml-device-${deviceId}`;
    await this.idempotent({ command: 'createRole', rolename, acls: deviceAcls(deviceId) });
    const client = {
      username: deviceId,
      password: secret,
      clientid: deviceClientId(deviceId),
      roles: [{ rolename }],
    };
    await this.run({ command: 'createClient', ...client }).catch(async (error: Error) => {
      if (!/already exists/i.test(error.message)) throw error;
      await this.run({ command: 'modifyClient', ...client });
    });
  }

  /** Deleting the client disconnects every session of it at once. */
  async removeDevice(deviceId: string): Promise<void> {
    await this.idempotent({ command: 'deleteClient', username: deviceId });
    await this.idempotent({ command: 'deleteRole', rolename: `fleetml-device-${deviceId}` });
    this.logger.info({ deviceId }, 'device removed from mosquitto dynamic security');
  }

  /** An enrollment token becomes a client bound to the id derived from it. */
  async addEnrollToken(token: string): Promise<void> {
    const { clientId, username, password } = enrollCredentials(token);
    const rolename = `fleetml-${clientId}`;
    await this.idempotent({ command: 'createRole', rolename, acls: enrollAcls(clientId) });
    await this.idempotent({
      command: 'createClient',
      username,
      password,
      clientid: clientId,
      roles: [{ rolename }],
    });
  }
}
