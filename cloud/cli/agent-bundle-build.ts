import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import { homedir, tmpdir } from 'node:os';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { FleetError } from '../../shared/errors/index.js';

/**
 * Builds a device bundle: everything `scripts/install-agent.sh --bundle` needs to install the
 * agent with no compiler and no network. Layout of the .tgz:
 *
 *   bundle.json                  arch, Node ABI, versions (the installer checks them)
 *   dist/fleetml-agent.mjs       the agent, bundled by esbuild (plain node, no loader)
 *   node_modules/                the agent's production dependencies only, native addons for `arch`
 *   node/bin/node                a pinned Node for `arch` (only with --node)
 *
 * Nothing is downloaded: JavaScript packages come from this checkout's node_modules; the native
 * addons of a foreign architecture from a node_modules installed for it (scripts/ci/arm64-setup.sh
 * makes one for arm64).
 */
export interface BundleOptions {
  arch: 'arm64' | 'x64';
  out: string;
  /** This checkout (holding package.json, package-lock.json, node_modules, agent/). */
  root: string;
  /** better_sqlite3.node built for `arch`; default: ours when arch is the host's, else the one scripts/ci/arm64-setup.sh cross-built. */
  sqliteAddon?: string;
  /** A Node distribution for `arch` (DIR/bin/node) to ship as node/bin/node. */
  nodeDir?: string;
}

/**
 * Packages the agent loads by name at run time, which esbuild cannot see as imports (pino starts
 * its pretty-printer transport from a worker by name). Every package the agent's code imports is
 * taken from the bundle itself (`bundleAgentCode`), so a new import cannot be left out.
 */
export const LOADED_BY_NAME = ['pino-pretty'];

const ELF_MACHINE: Record<BundleOptions['arch'], number> = { x64: 62, arm64: 183 };
const run = promisify(execFile);

export interface BundleResult {
  out: string;
  arch: string;
  packages: number;
  nodeAbi: string;
  pinnedNode: string | null;
}

export async function buildAgentBundle(options: BundleOptions): Promise<BundleResult> {
  const root = resolve(options.root);
  // A given addon is checked before anything is built or copied: a wrong one fails at once.
  if (options.sqliteAddon) await assertElf(options.sqliteAddon, options.arch);
  const stage = await mkdtemp(join(tmpdir(), 'fleetml-bundle-'));
  try {
    const imported = await bundleAgentCode(root, join(stage, 'dist/fleetml-agent.mjs'));
    const packages = await copyDependencies(root, stage, [...new Set([...imported, ...LOADED_BY_NAME])]);
    const pinnedNode = options.nodeDir ? await copyNode(options.nodeDir, stage, options.arch) : null;
    const nodeAbi = pinnedNode ? pinnedNode.abi : process.versions.modules;
    const addon = options.sqliteAddon ?? (await defaultSqliteAddon(root, options.arch, nodeAbi));
    await replaceNativeAddons(stage, addon, options.arch);
    const manifest = {
      v: 1,
      arch: options.arch,
      platform: 'linux',
      nodeAbi,
      nodeVersion: pinnedNode?.version ?? process.versions.node,
      pinnedNode: pinnedNode !== null,
      agentVersion: JSON.parse(await readFile(join(root, 'package.json'), 'utf8')).version,
      createdAt: new Date().toISOString(),
    };
    await writeFile(join(stage, 'bundle.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    await mkdir(resolve(options.out, '..'), { recursive: true });
    await run('tar', ['-czf', resolve(options.out), '-C', stage, '.']);
    return {
      out: resolve(options.out),
      arch: options.arch,
      packages,
      nodeAbi,
      pinnedNode: pinnedNode?.version ?? null,
    };
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

/**
 * agent/cli/daemon.ts bundled by esbuild into one ESM file for plain `node` (node_modules stay
 * external). Returns the packages the bundle imports: the roots of what the device must hold.
 */
export async function bundleAgentCode(root: string, outfile: string): Promise<string[]> {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: [join(root, 'agent/cli/daemon.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    outfile,
    logLevel: 'warning',
    metafile: true,
  });
  return importedPackages(Object.values(result.metafile.outputs).flatMap((o) => o.imports));
}

/** Package names (`pkg`, `@scope/pkg`) of a bundle's external imports, without Node's built-ins. */
export function importedPackages(imports: Array<{ path: string; external?: boolean }>): string[] {
  const names = imports
    .filter((i) => i.external && !isBuiltin(i.path) && !i.path.startsWith('.') && !isAbsolute(i.path))
    .map((i) =>
      i.path
        .split('/')
        .slice(0, i.path.startsWith('@') ? 2 : 1)
        .join('/'),
    );
  return [...new Set(names)].sort();
}

type Lock = {
  packages: Record<
    string,
    { dependencies?: Record<string, string>; optionalDependencies?: Record<string, string> }
  >;
};

/** The lockfile paths of the agent's dependencies and everything they need, resolved as Node does. */
export function dependencyClosure(lock: Lock, roots: string[]): string[] {
  const found = new Set<string>();
  const resolveFrom = (from: string, name: string): string | null => {
    for (let dir = from; ; ) {
      const candidate = `${dir ? `${dir}/` : ''}node_modules/${name}`;
      if (lock.packages[candidate]) return candidate;
      if (!dir) return null;
      const cut = dir.lastIndexOf('/node_modules/');
      dir = cut < 0 ? '' : dir.slice(0, cut);
    }
  };
  const visit = (path: string) => {
    if (found.has(path)) return;
    found.add(path);
    const entry = lock.packages[path];
    for (const name of Object.keys({ ...entry.dependencies, ...entry.optionalDependencies })) {
      const dep = resolveFrom(path, name);
      if (dep) visit(dep);
    }
  };
  for (const name of roots) {
    const path = resolveFrom('', name);
    if (!path) throw new FleetError('FILE_NOT_FOUND', `package-lock.json has no ${name}`);
    visit(path);
  }
  return [...found].sort();
}

async function copyDependencies(root: string, stage: string, packages: string[]): Promise<number> {
  const lock = JSON.parse(await readFile(join(root, 'package-lock.json'), 'utf8')) as Lock;
  const closure = dependencyClosure(lock, packages);
  let copied = 0;
  for (const path of closure) {
    // Nested packages travel inside their parent's directory; optional ones may be absent here.
    if (path.lastIndexOf('node_modules/') !== 0) continue;
    const from = join(root, path);
    if (!(await exists(from))) continue;
    await cp(from, join(stage, path), { recursive: true, dereference: true });
    copied++;
  }
  return copied;
}

async function defaultSqliteAddon(root: string, arch: BundleOptions['arch'], abi: string): Promise<string> {
  if (arch === process.arch && abi === process.versions.modules) {
    return join(root, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node');
  }
  const version = JSON.parse(
    await readFile(join(root, 'node_modules/better-sqlite3/package.json'), 'utf8'),
  ).version;
  const cache = process.env.FLEETML_ARM64_CACHE ?? join(homedir(), '.cache/fleetml-arm64');
  const addon = join(cache, `better-sqlite3-${version}-abi${abi}.node`);
  if (arch === 'arm64' && (await readdir(cache).catch((): string[] => [])).includes(basename(addon)))
    return addon;
  throw new FleetError(
    'INPUT_INVALID',
    `no linux/${arch} better-sqlite3 ${version} for Node ABI ${abi} here: run scripts/ci/arm64-setup.sh (it cross-builds one) or pass --sqlite-addon <better_sqlite3.node built for ${arch}>`,
  );
}

/** better-sqlite3's addon for `arch`; onnxruntime-node keeps only linux/<arch>. */
async function replaceNativeAddons(
  stage: string,
  sqliteBuild: string,
  arch: BundleOptions['arch'],
): Promise<void> {
  await assertElf(sqliteBuild, arch);
  const target = join(stage, 'node_modules/better-sqlite3/build');
  await rm(target, { recursive: true, force: true });
  await mkdir(join(target, 'Release'), { recursive: true });
  await cp(sqliteBuild, join(target, 'Release/better_sqlite3.node'));
  const bins = join(stage, 'node_modules/onnxruntime-node/bin/napi-v6');
  for (const platform of await readdir(bins)) {
    if (platform !== 'linux') await rm(join(bins, platform), { recursive: true, force: true });
  }
  for (const a of await readdir(join(bins, 'linux'))) {
    if (a !== arch) await rm(join(bins, 'linux', a), { recursive: true, force: true });
  }
  await assertElf(join(bins, 'linux', arch, 'onnxruntime_binding.node'), arch);
}

async function copyNode(nodeDir: string, stage: string, arch: BundleOptions['arch']) {
  const binary = join(nodeDir, 'bin/node');
  await assertElf(binary, arch);
  await mkdir(join(stage, 'node/bin'), { recursive: true });
  await cp(binary, join(stage, 'node/bin/node'));
  // The ABI of a foreign Node is read from its headers, since it cannot run here.
  const header = await readFile(join(nodeDir, 'include/node/node_version.h'), 'utf8').catch(() => '');
  const abi = /#define NODE_MODULE_VERSION (\d+)/.exec(header)?.[1];
  const version = ['MAJOR', 'MINOR', 'PATCH'].map(
    (p) => new RegExp(`#define NODE_${p}_VERSION (\\d+)`).exec(header)?.[1],
  );
  if (!abi || version.some((v) => !v)) {
    throw new FleetError(
      'INPUT_INVALID',
      `--node ${nodeDir} has no include/node/node_version.h to read its ABI from`,
    );
  }
  return { abi, version: version.join('.') };
}

/** Refuses a native file built for another machine (ELF e_machine), before it reaches a device. */
export async function assertElf(path: string, arch: BundleOptions['arch']): Promise<void> {
  const handle = await open(path).catch(() => {
    throw new FleetError('FILE_NOT_FOUND', `${path} does not exist`, { path });
  });
  const header = Buffer.alloc(20);
  await handle.read(header, 0, 20, 0);
  await handle.close();
  const isElf = header.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
  const machine = header.readUInt16LE(18);
  if (!isElf || machine !== ELF_MACHINE[arch]) {
    throw new FleetError(
      'INPUT_INVALID',
      `${path} is not a linux/${arch} binary (ELF machine ${isElf ? machine : 'none'})`,
      {
        path,
      },
    );
  }
}

async function exists(path: string): Promise<boolean> {
  return readdir(path).then(
    () => true,
    () => false,
  );
}
