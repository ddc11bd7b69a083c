/** The latest benchmark a device reported for an artifact. */
export interface ArtifactBench {
  sha256: string;
  deviceId: string;
  p50Ms: number;
}

/**
 * Where lineage reads what devices measured: the latest benchmark per (device, artifact), from the
 * telemetry store (TelemetryRepository.artifactBenches), which may be another database than the
 * models'.
 */
export type ArtifactBenchSource = (sha256s: string[]) => Promise<ArtifactBench[]>;
