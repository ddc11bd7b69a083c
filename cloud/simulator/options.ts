/** Every tunable of the fleet simulator, with its unit and default. */
export interface SimulatorOptions {
  /** Broker URL the simulated agents connect to (the cloud's, or an external broker's). */
  cloud: string;
  /** Fleet CA (PEM) to pin when the broker speaks mqtts (`fleetml cloud start` does by default). */
  caPem?: string;
  /** Enrollment token with at least `devices` uses left. */
  enrollToken: string;
  /** Simulated devices run from this process. */
  devices: number;
  /** Seconds to run after the ramp starts; then every device disconnects cleanly. */
  durationS: number;
  /** Mean telemetry interval per device, seconds (the agent's default is 10). */
  telemetryIntervalS: number;
  /** Records per telemetry batch (the agent sends 1 per interval when connected). */
  recordsPerBatch: number;
  /** Devices are connected over this many seconds (a fleet coming back after an outage is not instant). */
  rampS: number;
  /** Enrollments in flight at once. */
  enrollConcurrency: number;
  /**
   * An enrollment request without a reply is sent again after this many seconds. The cloud
   * answers a repeat of a request with the same device (no second use of the token), so an early
   * re-ask costs only the cloud's time.
   */
  enrollRetryS: number;
  /** An unacknowledged batch is sent again after this many seconds (the agent's outbox does the same). */
  resendAfterS: number;
  /** Median inference latency a device reports, ms; each device draws its own around it. */
  latencyMedianMs: number;
  /** Log-normal spread (sigma) of per-inference latency. */
  latencySigma: number;
  /** Probability per telemetry interval of emitting an info event. */
  eventProbability: number;
  /** Seed of the random draws (rates, latencies, jitter). */
  seed: number;
  /** Hostname prefix the devices enroll with (device ids start with it). */
  namePrefix: string;
  /** Block requests per window while downloading a model (the agent pipelines requests). */
  blocksPerRequest: number;
  /** Stops waiting for acknowledgements of the last batches after this many seconds at the end. */
  drainS: number;
}

export const DEFAULT_SIMULATOR_OPTIONS: Omit<SimulatorOptions, 'cloud' | 'enrollToken'> = {
  devices: 10,
  durationS: 30,
  telemetryIntervalS: 10,
  recordsPerBatch: 1,
  rampS: 5,
  enrollConcurrency: 20,
  enrollRetryS: 60,
  resendAfterS: 15,
  latencyMedianMs: 8,
  latencySigma: 0.35,
  eventProbability: 0.01,
  seed: 1,
  namePrefix: 'sim',
  blocksPerRequest: 16,
  drainS: 10,
};

export function resolveSimulatorOptions(
  options: Partial<SimulatorOptions> & Pick<SimulatorOptions, 'cloud' | 'enrollToken'>,
): SimulatorOptions {
  const defined = Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined));
  return { ...DEFAULT_SIMULATOR_OPTIONS, ...defined } as SimulatorOptions;
}
