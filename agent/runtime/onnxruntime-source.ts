import { copyFile, cp, mkdir, readdir, readFile, rm, stat, symlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { FleetError } from '../../shared/errors/index.js';

/**
 * Which onnxruntime the agent loads. Default: the onnxruntime-node package it was installed with
 * (CPU only on arm64). A user may supply their own, as Jetson users build it:
 * - an onnxruntime-node package directory (built with --build_nodejs --use_cuda --use_tensorrt):
 *   its binding knows the CUDA and TensorRT providers;
 * - a libonnxruntime.so (or the directory holding it) with libonnxruntime_providers_*.so beside it:
 *   the installed binding is set up in `workDir` next to links to that library, since the binding
 *   finds libonnxruntime.so.1 through its RUNPATH ($ORIGIN). The binding must have been built with
 *   a provider for the library's provider to be used (onnxruntime-node's arm64 binding has none).
 */
export interface OnnxruntimeSource {
  kind: 'bundled' | 'package' | 'library';
  /** The file to require(): onnxruntime-node's entry point. */
  entry: string;
  /** What the user gave (or the bundled package's directory). */
  origin: string;
}

const BINDING_DIR = join('bin', 'napi-v6', process.platform, process.arch);

export function bundledOnnxruntime(): OnnxruntimeSource {
  const entry = createRequire(import.meta.url).resolve('onnxruntime-node');
  return { kind: 'bundled', entry, origin: packageRoot(entry) };
}

export async function resolveOnnxruntime(path: string, workDir: string): Promise<OnnxruntimeSource> {
  if (!path) return bundledOnnxruntime();
  const full = resolve(path);
  const info = await stat(full).catch(() => null);
  if (!info) throw new FleetError('CONFIG_INVALID', `--onnxruntime ${full} does not exist`, { path: full });
  if (info.isDirectory()) {
    const pkg = await readFile(join(full, 'package.json'), 'utf8').catch(() => null);
    if (pkg !== null) {
      if (JSON.parse(pkg).name !== 'onnxruntime-node') {
        throw new FleetError(
          'CONFIG_INVALID',
          `--onnxruntime ${full} holds a package that is not onnxruntime-node`,
        );
      }
      return {
        kind: 'package',
        entry: createRequire(join(full, 'package.json')).resolve(full),
        origin: full,
      };
    }
    const lib = (await readdir(full)).find((f) => /^libonnxruntime\.so(\.\d+)*$/.test(f));
    if (!lib) {
      throw new FleetError(
        'CONFIG_INVALID',
        `--onnxruntime ${full} holds neither an onnxruntime-node package (package.json) nor libonnxruntime.so`,
      );
    }
    return libraryShim(join(full, lib), workDir);
  }
  if (!/^libonnxruntime\.so(\.\d+)*$/.test(basename(full))) {
    throw new FleetError('CONFIG_INVALID', `--onnxruntime ${full} is not libonnxruntime.so nor a directory`);
  }
  return libraryShim(full, workDir);
}

/** A copy of the installed onnxruntime-node whose binding loads the user's libonnxruntime. */
async function libraryShim(library: string, workDir: string): Promise<OnnxruntimeSource> {
  const bundled = bundledOnnxruntime();
  const pkg = join(workDir, 'node_modules', 'onnxruntime-node');
  await rm(workDir, { recursive: true, force: true });
  await mkdir(join(pkg, BINDING_DIR), { recursive: true });
  await cp(join(bundled.origin, 'dist'), join(pkg, 'dist'), { recursive: true });
  await copyFile(join(bundled.origin, 'package.json'), join(pkg, 'package.json'));
  await copyFile(
    join(bundled.origin, BINDING_DIR, 'onnxruntime_binding.node'),
    join(pkg, BINDING_DIR, 'onnxruntime_binding.node'),
  );
  await symlink(library, join(pkg, BINDING_DIR, 'libonnxruntime.so.1'));
  // onnxruntime loads its provider libraries from the directory it was loaded from.
  for (const file of await readdir(dirname(library))) {
    if (/^libonnxruntime_providers_\w+\.so$/.test(file)) {
      await symlink(join(dirname(library), file), join(pkg, BINDING_DIR, file));
    }
  }
  const common = packageRoot(createRequire(bundled.entry).resolve('onnxruntime-common'));
  await symlink(common, join(workDir, 'node_modules', 'onnxruntime-common'), 'dir');
  return { kind: 'library', entry: createRequire(join(pkg, 'package.json')).resolve(pkg), origin: library };
}

function packageRoot(entry: string): string {
  let dir = dirname(entry);
  while (basename(dirname(dir)) !== 'node_modules' && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}
