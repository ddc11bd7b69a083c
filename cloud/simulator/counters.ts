/** What the whole simulated fleet did; `fleetml simulate --json` prints a summary of it. */
export interface SimulatorCounters {
  enrolled: number;
  enrollFailed: number;
  /** Devices whose MQTT connection is up right now. */
  connected: number;
  /** Distinct telemetry records created and sent at least once. */
  recordsSent: number;
  /** Distinct records the cloud acknowledged (stored). */
  recordsAcked: number;
  /** Records sent again because no acknowledgement came in time. */
  recordsResent: number;
  batchesSent: number;
  events: number;
  blocksReceived: number;
  modelsActivated: number;
  transferFailures: number;
}

export function emptyCounters(): SimulatorCounters {
  return {
    enrolled: 0,
    enrollFailed: 0,
    connected: 0,
    recordsSent: 0,
    recordsAcked: 0,
    recordsResent: 0,
    batchesSent: 0,
    events: 0,
    blocksReceived: 0,
    modelsActivated: 0,
    transferFailures: 0,
  };
}
