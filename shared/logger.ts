import pino, { type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

/**
 * Keys whose values never reach a log line (secrets, tokens, private keys), at the top level
 * and up to two levels down (pino has no recursive wildcard): `{ config: { enrollToken } }`,
 * `{ identity: { secret } }`, `{ req: { headers: { authorization } } }`.
 */
const SECRET_KEYS = [
  'password',
  'secret',
  'token',
  'enrollToken',
  'adminToken',
  'authorization',
  'privateKey',
  'keyPem',
  'cloudPassword',
  'mqttPassword',
];
export const REDACTED_PATHS = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  ...SECRET_KEYS.map((k) => `*.*.${k}`),
  'req.headers.authorization',
  'req.headers.cookie',
];

/**
 * Secrets with a recognisable shape are also scrubbed from the finished line, wherever they
 * hide (a message, an error text, a URL's query string): fleetml's enrollment (`enr_…`) and
 * API (`fml_…`) tokens, and PEM private keys. Device secrets have no shape; keys catch them.
 */
const SECRET_PATTERNS: Array<[RegExp, string]> = [
  [/\b(enr|fml)_[A-Za-z0-9_-]{8,}/g, '$1_[redacted]'],
  [/-----BEGIN ([A-Z ]*)PRIVATE KEY-----[\s\S]*?-----END \1PRIVATE KEY-----/g, '[redacted private key]'],
];

export function scrubSecrets(line: string): string {
  let out = line;
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

export interface LoggerFactoryOptions {
  /** Logger name shown on every line, e.g. 'cloud' or 'agent'. */
  name: string;
  /** pino level; default from FLEETML_LOG_LEVEL or 'info'. */
  level?: string;
  /** Pretty (human) output; default: when stdout is a TTY. JSON otherwise. */
  pretty?: boolean;
  /** Write to this destination instead of stdout (e.g. stderr for CLI commands printing JSON). */
  destination?: NodeJS.WritableStream;
}

/** The one logger factory: JSON lines by default, readable when a person watches a terminal. */
export function createLogger(options: LoggerFactoryOptions): Logger {
  const level = options.level ?? process.env.FLEETML_LOG_LEVEL ?? 'info';
  const stream = options.destination ?? process.stdout;
  const pretty = options.pretty ?? Boolean((stream as NodeJS.WriteStream).isTTY);
  const base: LoggerOptions = {
    name: options.name,
    level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    hooks: { streamWrite: scrubSecrets },
  };
  if (pretty) {
    return pino({
      ...base,
      transport: {
        target: 'pino-pretty',
        options: { destination: stream === process.stderr ? 2 : 1, colorize: true, ignore: 'pid,hostname' },
      },
    });
  }
  return pino(base, stream as pino.DestinationStream);
}
