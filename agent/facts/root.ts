import { readFile } from 'node:fs/promises';
import { isAbsolute, join, normalize } from 'node:path';

/**
 * Reads device files (proc/cpuinfo, proc/device-tree/model, etc/nv_tegra_release, ...) under a
 * root directory instead of `/`: tests and emulated devices point it at a board's fixture, since
 * under QEMU the host's own /proc shows through.
 */
export class FactsRoot {
  readonly root: string;

  constructor(root = '/') {
    this.root = root === '' ? '/' : root;
  }

  /** The file's text, or null when it is absent or unreadable (a fact the board does not expose). */
  async text(relative: string): Promise<string | null> {
    const clean = normalize(relative).replace(/^(\.\.(\/|$))+/, '');
    if (isAbsolute(clean)) return this.text(clean.slice(1));
    try {
      return await readFile(join(this.root, clean), 'utf8');
    } catch {
      return null;
    }
  }

  /** A device-tree property: NUL-separated strings (model has one, compatible several). */
  async deviceTreeStrings(property: string): Promise<string[]> {
    const raw = await this.text(join('proc/device-tree', property));
    return raw === null
      ? []
      : raw
          .split('\0')
          .map((s) => s.trim())
          .filter((s) => s.length > 0);
  }
}
