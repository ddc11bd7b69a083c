import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, rename, symlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Logger } from '../../shared/logger.js';
import { fsyncDir, readJsonFile, writeFileAtomic } from '../store/files.js';

export interface ActiveModelEntry {
  name: string;
  /** The release (manifest version) as the inference service serves it. */
  version: string;
  modelId: string | null;
  sha256: string | null;
}

export interface StablePathOptions {
  dataDir: string;
  /** Shell command run after each activation ('' = none), with FLEETML_MODEL_* in its environment. */
  hookCommand?: string;
  /** Kill the hook after this many ms. Default 30 000. */
  hookTimeoutMs?: number;
  logger: Logger;
}

/** What `<data-dir>/models/models.json` holds: one entry per model name. */
export interface ModelsFile {
  models: Record<string, ActiveModelEntry & { path: string; activatedAt: string }>;
}

/** Model names become directory names: anything outside [A-Za-z0-9._-] is replaced. */
export function modelDirName(name: string): string {
  const safe = name.replace(/[^A-Za-z0-9._-]/g, '_');
  return safe === '.' || safe === '..' || safe === '' ? `_${safe}` : safe;
}

/**
 * The stable path for applications that load models themselves:
 * `<data-dir>/models/<name>/current.onnx`, a symlink to the active slot's file, replaced by one
 * rename (a reader sees the old model or the new one, never a mix), and `models/models.json`
 * naming what is active. An optional hook command runs after each switch.
 */
export class StablePaths {
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly o: StablePathOptions) {}

  get root(): string {
    return join(this.o.dataDir, 'models');
  }

  currentPath(name: string): string {
    return resolve(this.root, modelDirName(name), 'current.onnx');
  }

  /** Points `current.onnx` of the entry's model at `modelFile`, updates models.json, runs the hook. */
  publish(entry: ActiveModelEntry, modelFile: string): Promise<void> {
    // One switch at a time: models.json is read, changed and written as a whole.
    const next = this.chain.then(() => this.switchTo(entry, resolve(modelFile)));
    this.chain = next.catch(() => {});
    return next;
  }

  private async switchTo(entry: ActiveModelEntry, target: string): Promise<void> {
    const dir = join(this.root, modelDirName(entry.name));
    await mkdir(dir, { recursive: true });
    const link = this.currentPath(entry.name);
    const tmp = `${link}.tmp-${randomBytes(4).toString('hex')}`;
    await symlink(target, tmp);
    await rename(tmp, link);
    await fsyncDir(dir);
    const file = join(this.root, 'models.json');
    const current = ((await readJsonFile(file).catch(() => undefined)) as ModelsFile | undefined) ?? {
      models: {},
    };
    current.models[entry.name] = { ...entry, path: link, activatedAt: new Date().toISOString() };
    await writeFileAtomic(file, `${JSON.stringify(current, null, 2)}\n`);
    if (this.o.hookCommand) await this.runHook(entry, link);
  }

  private runHook(entry: ActiveModelEntry, link: string): Promise<void> {
    const env = {
      ...process.env,
      FLEETML_MODEL_NAME: entry.name,
      FLEETML_MODEL_VERSION: entry.version,
      FLEETML_MODEL_ID: entry.modelId ?? '',
      FLEETML_MODEL_SHA256: entry.sha256 ?? '',
      FLEETML_MODEL_PATH: link,
    };
    return new Promise((done) => {
      execFile(
        '/bin/sh',
        ['-c', this.o.hookCommand!],
        { env, timeout: this.o.hookTimeoutMs ?? 30_000, maxBuffer: 1 << 20 },
        (error, _stdout, stderr) => {
          // A failing hook is the application's business: log it, never undo the switch.
          if (error)
            this.o.logger.warn(
              { err: error.message, stderr: stderr.slice(0, 2000) },
              'activation hook failed',
            );
          else this.o.logger.info({ model: entry.name, version: entry.version }, 'activation hook ran');
          done();
        },
      );
    });
  }
}
