import pino, { type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

/** Keys whose values never reach a log line (secrets, tokens, signatures). */
export const REDACTED_PATHS = [
  'password',
  'secret',
  'token',
  'authorization',
  '*.password',
  '*.secret',
  '*.token',
  '*.enrollToken',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
];

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
