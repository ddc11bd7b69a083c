import { execFile } from 'node:child_process';
import { access, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Temperature and throttling from the sources devices really have: sysfs thermal zones
 * (millidegrees; Pi, Jetson, most x86), `vcgencmd get_throttled` on Raspberry Pi, and the
 * Jetson's named zones (CPU-therm, GPU-therm). Best effort; missing sources give nulls.
 */
export interface ThrottleState {
  /** Raw vcgencmd bit field. */
  raw: number;
  underVoltage: boolean;
  frequencyCapped: boolean;
  throttled: boolean;
  softTempLimit: boolean;
  /** Any of the above has occurred since boot (bits 16-19). */
  occurred: boolean;
}

export interface ThermalReading {
  /** Hottest CPU-ish zone, °C. */
  tempC: number | null;
  /** Zone name -> °C. */
  zones: Record<string, number>;
  throttle: ThrottleState | null;
}

const THERMAL_ROOT = '/sys/class/thermal';
let vcgencmdAvailable: Promise<boolean> | undefined;

export function decodeThrottled(raw: number): ThrottleState {
  return {
    raw,
    underVoltage: (raw & 0x1) !== 0,
    frequencyCapped: (raw & 0x2) !== 0,
    throttled: (raw & 0x4) !== 0,
    softTempLimit: (raw & 0x8) !== 0,
    occurred: (raw & 0xf0000) !== 0,
  };
}

export async function readThermal(root = THERMAL_ROOT): Promise<ThermalReading> {
  const zones: Record<string, number> = {};
  const names = await readdir(root).catch(() => [] as string[]);
  await Promise.all(
    names
      .filter((n) => n.startsWith('thermal_zone'))
      .map(async (n) => {
        const [type, temp] = await Promise.all([
          readFile(join(root, n, 'type'), 'utf8').catch(() => n),
          readFile(join(root, n, 'temp'), 'utf8').catch(() => ''),
        ]);
        const milli = Number.parseInt(temp, 10);
        // Some zones report garbage (negative, or absurd) when the sensor is absent.
        if (Number.isFinite(milli) && milli > 0 && milli < 150_000) zones[type.trim() || n] = milli / 1000;
      }),
  );
  const cpuZones = Object.entries(zones).filter(([name]) => /cpu|soc|x86_pkg|cpu-therm|tj/i.test(name));
  const candidates = (cpuZones.length > 0 ? cpuZones : Object.entries(zones)).map(([, t]) => t);
  return {
    tempC: candidates.length > 0 ? Math.max(...candidates) : null,
    zones,
    throttle: await readVcgencmdThrottle(),
  };
}

async function readVcgencmdThrottle(): Promise<ThrottleState | null> {
  vcgencmdAvailable ??= findVcgencmd();
  if (!(await vcgencmdAvailable)) return null;
  return new Promise((resolve) => {
    execFile('vcgencmd', ['get_throttled'], { timeout: 2000 }, (error, stdout) => {
      const match = /throttled=(0x[0-9a-f]+)/i.exec(stdout ?? '');
      resolve(error || !match ? null : decodeThrottled(Number.parseInt(match[1], 16)));
    });
  });
}

async function findVcgencmd(): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/bin', '/opt/vc/bin'])) {
    if (
      dir &&
      (await access(join(dir, 'vcgencmd')).then(
        () => true,
        () => false,
      ))
    ) {
      return true;
    }
  }
  return false;
}
