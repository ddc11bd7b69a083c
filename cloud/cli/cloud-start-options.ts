import { FleetError } from '../../shared/errors/index.js';
import type { CloudOptions } from '../cloud-options.js';
import { chooseBrokerTransport } from '../fleet/broker/listen-policy.js';
import { SHARED_GROUP_PATTERN } from '../fleet/transport/mqtt.js';
import { numberOption } from './number-option.js';

/** The flags of `fleetml cloud start`, as commander hands them over (strings). */
export interface CloudStartFlags {
  dataDir: string;
  httpPort: string;
  httpHost: string;
  mqttPort?: string;
  mqttHost: string;
  mqttUrl?: string;
  mqttUsername: string;
  mqttPassword?: string;
  mosquittoDynsec?: boolean;
  signingKey?: string;
  signingPublicKey?: string;
  database?: string;
  artifactsDir?: string;
  jobWorkers: string;
  mqttSharedGroup: string;
  mqttShared: boolean;
  tls?: boolean;
  insecurePlainMqtt?: boolean;
  tlsHost?: string;
  enrollmentsPerMinute: string;
}

export interface CloudStartPlan {
  options: Omit<CloudOptions, 'logger'>;
  /** A loud warning to print (plain MQTT beyond loopback), or undefined. */
  warning?: string;
}

const port = (value: string, flag: string): number => {
  const n = numberOption(value, flag, 0);
  if (!Number.isInteger(n) || n > 65_535)
    throw new FleetError('INPUT_INVALID', `${flag} must be a port number (0-65535), got '${value}'`);
  return n;
};

/**
 * What `cloud start` passes to startCloud for its flags and environment (FLEETML_DATABASE,
 * FLEETML_MQTT_PASSWORD): one pure step, so that every flag is checked by a unit test and a bad
 * value is a coded error before anything starts.
 */
export function cloudStartPlan(flags: CloudStartFlags, env: NodeJS.ProcessEnv = process.env): CloudStartPlan {
  if (!SHARED_GROUP_PATTERN.test(flags.mqttSharedGroup))
    throw new FleetError('INPUT_INVALID', `--mqtt-shared-group must match ${SHARED_GROUP_PATTERN}`);
  const transport = chooseBrokerTransport(flags.mqttHost, Boolean(flags.insecurePlainMqtt) && !flags.tls);
  const options: Omit<CloudOptions, 'logger'> = {
    dataDir: flags.dataDir,
    httpPort: port(flags.httpPort, '--http-port'),
    httpHost: flags.httpHost,
    mqttPort:
      flags.mqttPort === undefined ? (transport.tls ? 8883 : 1883) : port(flags.mqttPort, '--mqtt-port'),
    mqttHost: flags.mqttHost,
    mqttUrl: flags.mqttUrl,
    mqttUsername: flags.mqttUrl ? flags.mqttUsername : undefined,
    mqttSharedGroup: flags.mqttShared ? flags.mqttSharedGroup : null,
    database: flags.database ?? env.FLEETML_DATABASE,
    artifactsDir: flags.artifactsDir,
    jobWorkers: numberOption(flags.jobWorkers, '--job-workers', 0),
    mqttPassword: flags.mqttPassword ?? env.FLEETML_MQTT_PASSWORD,
    mosquittoDynsec: Boolean(flags.mosquittoDynsec),
    enrollmentsPerMinute: numberOption(flags.enrollmentsPerMinute, '--enrollments-per-minute', 1),
    signingKeyFile: flags.signingKey,
    signingPublicKey: flags.signingPublicKey,
    tls: transport.tls ? (flags.tlsHost ? { hostnames: flags.tlsHost.split(',') } : true) : undefined,
  };
  // The warning is about the embedded broker; with --mqtt-url the cloud runs none.
  return { options, warning: flags.mqttUrl ? undefined : transport.warning };
}
