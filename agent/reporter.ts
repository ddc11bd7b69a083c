import type { FleetError } from '../shared/errors/index.js';
import type { Logger } from '../shared/logger.js';
import {
  type AgentPhase,
  type BenchReport,
  deviceTopic,
  encodeJson,
  PROTOCOL_VERSION,
  type StateReport,
} from '../shared/protocol/index.js';
import type { MqttTransport } from './transport/mqtt.js';

/** Publishes the agent's state, events and bench reports; publishing never throws into callers. */
export class Reporter {
  constructor(
    private readonly transport: MqttTransport,
    private readonly deviceId: string,
    private readonly logger: Logger,
  ) {}

  state(report: Omit<StateReport, 'v' | 'at'>): void {
    this.send('state', { v: PROTOCOL_VERSION, ...report, at: new Date().toISOString() });
  }

  event(level: 'info' | 'warn' | 'error', code: string, message: string): void {
    this.send('event', {
      v: PROTOCOL_VERSION,
      level,
      code,
      message: message.slice(0, 2000),
      at: new Date().toISOString(),
    });
  }

  error(error: FleetError): void {
    this.logger.error({ code: error.code, err: error.message, details: error.details }, 'coded error');
    this.event('error', error.code, error.message);
  }

  bench(report: Omit<BenchReport, 'v' | 'at'>): void {
    this.lastBench = { v: PROTOCOL_VERSION, ...report, at: new Date().toISOString() };
    this.send('bench', this.lastBench);
  }

  /**
   * Sends the last bench report again, unchanged (the cloud stores one per device, model and
   * time), when it was for `sha256`: a rollout waits for the benchmark of the model it sent.
   */
  resendBench(sha256: string): void {
    if (this.lastBench?.sha256 === sha256) this.send('bench', this.lastBench);
  }

  private lastBench: BenchReport | null = null;

  private send(channel: 'state' | 'event' | 'bench', body: unknown): void {
    this.transport
      .publish(deviceTopic(this.deviceId, channel), encodeJson(body), { qos: 1 })
      .catch((error) => {
        this.logger.debug({ channel, err: (error as Error).message }, 'report not published');
      });
  }
}

export type { AgentPhase };
