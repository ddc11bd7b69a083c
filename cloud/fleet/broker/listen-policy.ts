import { isIP } from 'node:net';

/** True for addresses only this machine can reach: localhost, 127.0.0.0/8, ::1. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

export interface TransportChoice {
  tls: boolean;
  /** A warning to print loudly, or undefined. */
  warning?: string;
}

/**
 * How the embedded broker listens: TLS unless the operator explicitly asks for plain MQTT.
 * Plain MQTT beyond loopback exposes enrollment tokens, device secrets and the fleet key to
 * anyone on the path, so it comes with a warning that says so.
 */
export function chooseBrokerTransport(host: string, insecurePlain: boolean): TransportChoice {
  if (!insecurePlain) return { tls: true };
  if (isLoopbackHost(host)) return { tls: false };
  return {
    tls: false,
    warning:
      `INSECURE: plain MQTT on ${host}: enrollment tokens, device secrets and the fleet key travel ` +
      'in clear text to anyone on the network. Drop --insecure-plain-mqtt to serve mqtts.',
  };
}
