import { DEVICE_ID_PATTERN, ENROLL_CLIENT_PREFIX, TOPIC_ROOT } from '../../../shared/protocol/index.js';

export { ENROLL_CLIENT_PREFIX, ENROLL_USERNAME } from '../../../shared/protocol/index.js';

/**
 * Who may do what on the broker. Three kinds of client:
 * - the cloud (username `cloud`): everything;
 * - a device (username = its device id, password = its secret): publish only under its own
 *   subtree and only its own channels, subscribe only to its own target and block replies;
 * - an enrolling agent (username `enroll`, client id `enroll-<random>` used as its request id):
 *   publish its one enrollment request, subscribe to its one reply. Using the client id as the
 *   request id lets Mosquitto express the same rule with a `%c` pattern.
 * The same rules are rendered as a Mosquitto ACL file for external brokers (renderMosquittoAcl in mosquitto.ts).
 */
export type BrokerIdentity =
  | { kind: 'cloud' }
  | { kind: 'device'; deviceId: string }
  | { kind: 'enroll'; requestId: string };

export const CLOUD_USERNAME = 'cloud';

/** Channels a device publishes on; `status` is the only one it may retain (its last will). */
export const DEVICE_PUBLISH_CHANNELS = ['status', 'state', 'telemetry', 'bench', 'event', 'transfer/req'];
export const DEVICE_SUBSCRIBE_CHANNELS = ['target', 'transfer/blk', 'telemetry/ack'];

export function identityForEnrollClient(clientId: string): BrokerIdentity | undefined {
  if (!clientId.startsWith(ENROLL_CLIENT_PREFIX)) return undefined;
  return DEVICE_ID_PATTERN.test(clientId) ? { kind: 'enroll', requestId: clientId } : undefined;
}

export function mayPublish(identity: BrokerIdentity, topic: string, retain: boolean): boolean {
  switch (identity.kind) {
    case 'cloud':
      return true;
    case 'device': {
      const prefix = `${TOPIC_ROOT}/d/${identity.deviceId}/`;
      if (!topic.startsWith(prefix)) return false;
      const channel = topic.slice(prefix.length);
      if (!DEVICE_PUBLISH_CHANNELS.includes(channel)) return false;
      return !retain || channel === 'status';
    }
    case 'enroll':
      return !retain && topic === `${TOPIC_ROOT}/enroll/${identity.requestId}/req`;
  }
}

/** Subscriptions are exact topics for devices: no wildcard can reach another device. */
export function maySubscribe(identity: BrokerIdentity, topic: string): boolean {
  switch (identity.kind) {
    case 'cloud':
      return true;
    case 'device':
      return DEVICE_SUBSCRIBE_CHANNELS.some((c) => topic === `${TOPIC_ROOT}/d/${identity.deviceId}/${c}`);
    case 'enroll':
      return topic === `${TOPIC_ROOT}/enroll/${identity.requestId}/reply`;
  }
}
