import { timingSafeEqual } from 'node:crypto';
import { ENROLL_CLIENT_PREFIX, ENROLL_USERNAME, enrollCredentials } from '../../../shared/protocol/index.js';
import { secretMatches } from '../identity/secrets.js';
import { type BrokerIdentity, CLOUD_USERNAME, identityForEnrollClient } from './acl.js';

export interface AuthenticatorDeps {
  /** The stored secret hash of a device that is enrolled and not revoked. */
  deviceSecretHash: (deviceId: string) => Promise<string | undefined>;
  /** The cloud's own broker password (random per start for the embedded broker). */
  cloudPassword: string;
}

/** The MQTT client id of a device's agent. */
export function deviceClientId(deviceId: string): string {
  return `fleetml-${deviceId}`;
}

/**
 * A device may connect as `fleetml-<id>` or `fleetml-<id>:<suffix>` (a second local process):
 * never under another device's client id, so it cannot evict another device's session.
 */
export function clientIdBelongsTo(clientId: string, deviceId: string): boolean {
  const own = deviceClientId(deviceId);
  return clientId === own || clientId.startsWith(`${own}:`);
}

function equalStrings(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Maps MQTT CONNECT credentials to an identity; undefined refuses the connection. */
export function createBrokerAuthenticator(deps: AuthenticatorDeps) {
  return async (
    clientId: string,
    username: string | undefined,
    password: string | undefined,
  ): Promise<BrokerIdentity | undefined> => {
    if (!username) return undefined;
    if (username === CLOUD_USERNAME) {
      return password !== undefined && equalStrings(password, deps.cloudPassword)
        ? { kind: 'cloud' }
        : undefined;
    }
    // Older agents: the shared `enroll` user (harmless here: device client ids are bound below).
    if (username === ENROLL_USERNAME) return identityForEnrollClient(clientId);
    // An enrolling agent: client id = username = derived from the token it presents as password.
    if (username.startsWith(ENROLL_CLIENT_PREFIX) && clientId === username) {
      if (password === undefined) return undefined;
      return enrollCredentials(password).clientId === username
        ? identityForEnrollClient(clientId)
        : undefined;
    }
    if (!clientIdBelongsTo(clientId, username) || password === undefined) return undefined;
    const hash = await deps.deviceSecretHash(username);
    return hash && secretMatches(password, hash) ? { kind: 'device', deviceId: username } : undefined;
  };
}
