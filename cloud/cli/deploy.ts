import type { Command } from 'commander';
import { FleetError } from '../../shared/errors/index.js';
import { callApi, printResult, withApiOptions } from './api-client.js';
import { numberOption } from './number-option.js';

interface RolloutView {
  id: string;
  modelId: string;
  status: string;
  reason: string | null;
  currentWave: number;
  counts: Record<string, number>;
  executions?: Array<{
    deviceId: string;
    wave: number;
    status: string;
    reason: string | null;
    p50Ms: number | null;
  }>;
}

const summary = (r: RolloutView) =>
  `${r.id}  ${r.status.padEnd(9)} model ${r.modelId}  wave ${r.currentWave}  ${Object.entries(r.counts)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')}${r.reason ? `  (${r.reason})` : ''}`;

/** Rollout statuses that can still change (`rollouts show --watch` stops at any other). */
const ACTIVE_ROLLOUT = new Set(['running', 'paused']);

const showRollout = (r: RolloutView) =>
  [
    summary(r),
    ...(r.executions ?? []).map(
      (e) =>
        `  wave ${e.wave}  ${e.deviceId.padEnd(28)} ${e.status.padEnd(11)} ${e.p50Ms === null ? '' : `p50 ${e.p50Ms.toFixed(3)} ms`}${e.reason ? ` ${e.reason}` : ''}`,
    ),
  ].join('\n');

const num = (value: string | undefined, flag: string) => numberOption(value, flag, 0);

/** The flags of `fleetml deploy` that choose devices and shape the rollout (commander's strings). */
export interface DeployFlags {
  to?: string;
  tag?: string;
  profile?: string;
  canary: string;
  waveSize: string;
  maxPerMinute: string;
  abortFailurePercent: string;
  abortMinDevices: string;
  latencyObjective?: string;
  timeout: string;
  rollback: boolean;
}

/** `--to a,b` as a list; one of --to, --tag or --profile is required. */
export function deployDevices(flags: DeployFlags): string[] | undefined {
  const devices = flags.to
    ? flags.to
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : undefined;
  if (!devices && !flags.tag && !flags.profile)
    throw new FleetError('INPUT_INVALID', 'name --to, --tag or --profile');
  return devices;
}

/** The rollout policy the flags ask for (POST /api/rollouts `policy`). */
export function rolloutPolicy(flags: DeployFlags) {
  return {
    canaryPercent: num(flags.canary, '--canary'),
    waveSize: num(flags.waveSize, '--wave-size'),
    maxPerMinute: num(flags.maxPerMinute, '--max-per-minute'),
    abortFailurePercent: num(flags.abortFailurePercent, '--abort-failure-percent'),
    abortMinDevices: num(flags.abortMinDevices, '--abort-min-devices'),
    latencyObjectiveMs: num(flags.latencyObjective, '--latency-objective') ?? null,
    deviceTimeoutS: num(flags.timeout, '--timeout'),
    rollbackOnAbort: flags.rollback,
  };
}

export function register(program: Command): void {
  withApiOptions(program.command('deploy <model>'))
    .description(
      'roll a model out to devices: one device, a tag, or a profile; canary, waves and abort rules.\n' +
        'NAME deploys the recommended variant of its latest release (with --profile) and says which;\n' +
        '--release and --variant choose explicitly; an ambiguous choice is an error listing the candidates',
    )
    .option('--release <n>', 'release of the model name (default: the latest)')
    .option('--variant <label>', 'variant label, e.g. fp32 or int8 (matches int8@rpi5)')
    .option('--to <devices>', 'comma-separated device ids')
    .option('--tag <tag>', 'every device with this tag')
    .option('--profile <name>', 'every device of this profile')
    .option('--canary <percent>', 'share of devices in the first wave', '0')
    .option('--wave-size <n>', 'devices per wave after the canary (0 = all)', '0')
    .option('--max-per-minute <n>', 'devices started per minute (0 = no limit)', '0')
    .option('--abort-failure-percent <p>', 'abort above this failure percentage', '20')
    .option('--abort-min-devices <n>', '...once this many devices have finished', '1')
    .option('--latency-objective <ms>', 'abort when a canary device p99 exceeds this')
    .option('--timeout <s>', 'per-device timeout in seconds', '600')
    .option('--no-rollback', 'keep updated devices on the new model when the rollout aborts')
    .option('--json', 'print JSON')
    .action(async (model: string, options) => {
      const devices = deployDevices(options);
      const query = new URLSearchParams({ ref: model });
      if (options.release) query.set('release', String(options.release));
      if (options.variant) query.set('variant', options.variant);
      if (options.profile) query.set('profile', options.profile);
      const chosen = await callApi<{
        model: { id: string; name: string; release: number; variant: string };
        why: string;
      }>(options, 'GET', `/api/model-resolution?${query}`);
      const rollout = await callApi<RolloutView>(options, 'POST', '/api/rollouts', {
        model: chosen.model.id,
        devices,
        tag: options.tag,
        profile: options.profile,
        policy: rolloutPolicy(options),
      });
      printResult(
        options.json,
        { ...rollout, resolved: chosen },
        () =>
          `deploying ${chosen.model.name} release ${chosen.model.release} variant ${chosen.model.variant} (${chosen.model.id}): ${chosen.why}\n` +
          `${summary(rollout)}\nwatch it: npx fleetml rollouts show ${rollout.id} --watch`,
      );
    });

  const rollouts = program.command('rollouts').description('watch and steer rollouts');
  withApiOptions(rollouts.command('list'))
    .description('every rollout with its status, model, wave and per-state counts')
    .option('--json', 'print JSON')
    .action(async (options) => {
      const { rollouts: list } = await callApi<{ rollouts: RolloutView[] }>(options, 'GET', '/api/rollouts');
      printResult(options.json, { rollouts: list }, () => list.map(summary).join('\n') || 'no rollouts');
    });
  withApiOptions(rollouts.command('show <id>'))
    .description('per-device state of a rollout; --watch redraws it until the rollout ends')
    .option('--watch', 'keep showing the rollout until it ends (redrawn every --interval seconds)')
    .option('--interval <s>', 'seconds between redraws with --watch', '2')
    .option('--json', 'print JSON (with --watch: one object per line)')
    .action(async (id: string, options) => {
      const interval = (num(options.interval, '--interval') ?? 2) * 1000;
      let previous = '';
      for (;;) {
        const r = await callApi<RolloutView>(options, 'GET', `/api/rollouts/${encodeURIComponent(id)}`);
        const text = options.json ? JSON.stringify(r) : showRollout(r);
        if (!options.watch) {
          printResult(options.json, r, () => text);
          return;
        }
        if (text !== previous)
          process.stdout.write(`${options.json ? '' : `\n${new Date().toISOString()}\n`}${text}\n`);
        previous = text;
        if (!ACTIVE_ROLLOUT.has(r.status)) return;
        await new Promise((resolve) => setTimeout(resolve, interval));
      }
    });
  const what = {
    pause: 'pause a running rollout (resume goes on with it)',
    resume: 'go on with a paused rollout',
    cancel: 'cancel a rollout: devices still queued are not started',
  } as const;
  for (const action of ['pause', 'resume', 'cancel'] as const) {
    withApiOptions(rollouts.command(`${action} <id>`))
      .description(what[action])
      .option('--json', 'print JSON')
      .action(async (id: string, options) => {
        const r = await callApi<RolloutView>(
          options,
          'POST',
          `/api/rollouts/${encodeURIComponent(id)}/${action}`,
        );
        printResult(options.json, r, () => summary(r));
      });
  }
}
