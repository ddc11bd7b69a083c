import { randomBytes } from 'node:crypto';
import type { Logger } from '../../../shared/logger.js';
import type { FleetEvent, FleetEvents } from '../inventory/events.js';
import { newPostgresClient, type PgClient, type PgPool } from '../store/postgres.js';

export interface PgEventRelayOptions {
  url: string;
  pool: PgPool;
  events: FleetEvents;
  logger: Logger;
  /** Events made here within this many ms travel in one NOTIFY (duplicates dropped). Default 100. */
  flushMs?: number;
  /**
   * Device telemetry events relayed per flush at most (default 100, so 1,000 a second): with a
   * big fleet they are the bulk, and the console only uses them to refresh latency views
   * (debounced) and an open device page, which the next one refreshes as well.
   */
  maxTelemetryPerFlush?: number;
  /** Wait before listening again after the listening session ended, ms. Default 2 000. */
  reconnectMs?: number;
}

const CHANNEL = 'fleetml_events';
/** NOTIFY payloads must stay under 8000 bytes; events are ASCII JSON. */
const MAX_PAYLOAD_CHARS = 7000;

/** Identical events within one flush travel once. */
function eventKey(event: FleetEvent): string {
  switch (event.type) {
    case 'device':
      return `d:${event.deviceId}:${event.kind}`;
    case 'rollout':
      return `r:${event.rolloutId}`;
    case 'job':
      return `j:${event.jobId}`;
    case 'profile':
      return `p:${event.name}`;
  }
}

interface Envelope {
  from: string;
  events: FleetEvent[];
}

/**
 * Carries console live events between replicas through PostgreSQL LISTEN/NOTIFY: the events
 * this process makes are batched (at most one NOTIFY per `flushMs`, identical events once) and
 * published on `fleetml_events`; a dedicated session listens there and delivers the other
 * replicas' events to this process's SSE clients. Best effort like SSE itself: an event sent
 * while the listening session is down is not replayed (the console reloads what it shows on
 * each event, so the next one brings it up to date).
 */
export class PgEventRelay {
  private readonly origin = randomBytes(6).toString('hex');
  private readonly pending = new Map<string, FleetEvent>();
  private telemetryPending = 0;
  private listener: PgClient | null = null;
  private flushTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly o: PgEventRelayOptions) {}

  async start(): Promise<void> {
    this.o.events.relayTo((event) => this.queue(event));
    await this.listen().catch(() => this.scheduleReconnect());
  }

  private async listen(): Promise<void> {
    const client = newPostgresClient(this.o.url);
    client.on('notification', (message) => {
      if (message.channel === CHANNEL && message.payload) this.receive(message.payload);
    });
    const lost = () => {
      if (this.listener !== client) return;
      this.listener = null;
      this.o.logger.warn('event relay: listening session ended; reconnecting');
      this.scheduleReconnect();
    };
    client.on('error', lost);
    client.on('end', lost);
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}`);
    this.listener = client;
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.listen().catch(() => this.scheduleReconnect());
    }, this.o.reconnectMs ?? 2000);
    this.reconnectTimer.unref();
  }

  private receive(payload: string): void {
    try {
      const envelope = JSON.parse(payload) as Envelope;
      if (envelope.from === this.origin || !Array.isArray(envelope.events)) return;
      for (const event of envelope.events) this.o.events.deliver(event);
    } catch {
      // not ours to read: another writer on the channel
    }
  }

  private queue(event: FleetEvent): void {
    if (this.closed) return;
    if (event.type === 'device' && event.kind === 'telemetry') {
      if (this.telemetryPending >= (this.o.maxTelemetryPerFlush ?? 100)) return;
      this.telemetryPending++;
    }
    this.pending.set(eventKey(event), event);
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush();
    }, this.o.flushMs ?? 100);
  }

  /** Sends what is pending, in as many NOTIFYs as the payload limit needs. */
  async flush(): Promise<void> {
    const events = [...this.pending.values()];
    this.pending.clear();
    this.telemetryPending = 0;
    const payloads: string[] = [];
    let batch: FleetEvent[] = [];
    let size = 0;
    for (const event of events) {
      const length = JSON.stringify(event).length + 1;
      if (batch.length > 0 && size + length > MAX_PAYLOAD_CHARS - 64) {
        payloads.push(JSON.stringify({ from: this.origin, events: batch } satisfies Envelope));
        batch = [];
        size = 0;
      }
      batch.push(event);
      size += length;
    }
    if (batch.length > 0)
      payloads.push(JSON.stringify({ from: this.origin, events: batch } satisfies Envelope));
    for (const payload of payloads) {
      await this.o.pool
        .query('SELECT pg_notify($1, $2)', [CHANNEL, payload])
        .catch((error) =>
          this.o.logger.warn({ err: (error as Error).message }, 'event relay: notify failed'),
        );
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.o.events.relayTo(undefined);
    clearTimeout(this.flushTimer);
    clearTimeout(this.reconnectTimer);
    this.flushTimer = undefined;
    await this.flush();
    const client = this.listener;
    this.listener = null;
    await client?.end().catch(() => {});
  }
}
