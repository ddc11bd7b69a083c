import { hostname } from 'node:os';

/**
 * The console URL that signs in: the console reads `#token=` once, keeps it in the browser's
 * storage and drops it from the address bar and history. The fragment never reaches a server
 * or a proxy log. A wildcard listen address is not a place a browser can go: name the host.
 */
export function consoleLink(httpUrl: string, adminToken: string, host = hostname()): string {
  const url = new URL(httpUrl);
  if (url.hostname === '0.0.0.0' || url.hostname === '[::]') url.hostname = host;
  url.hash = `token=${encodeURIComponent(adminToken)}`;
  return url.toString();
}
