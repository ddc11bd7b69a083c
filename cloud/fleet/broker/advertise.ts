import { hostname } from 'node:os';

/**
 * The broker address devices are told (enrollment tokens print it as the agent's --cloud). A
 * broker listening on every interface calls itself localhost, which is right for the cloud's
 * own client and wrong for a device on another machine: name the first certificate host
 * (--tls-host) or this machine's host name instead, which the fleet certificate covers.
 */
export function advertisedBrokerUrl(
  url: string,
  listenHost: string | undefined,
  tls: boolean | { hostnames: string[] } | undefined,
  host = hostname(),
): string {
  if (listenHost !== '0.0.0.0' && listenHost !== '::') return url;
  const parsed = new URL(url);
  parsed.hostname = (typeof tls === 'object' ? tls.hostnames[0] : undefined) ?? host;
  return parsed.toString().replace(/\/$/, '');
}
