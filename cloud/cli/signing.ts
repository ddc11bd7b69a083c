import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { FleetError } from '../../shared/errors/index.js';
import type { Manifest } from '../../shared/protocol/index.js';
import { callApi, printResult, withApiOptions } from './api-client.js';

/** Keys and offline signing: these commands (but `manifests`) never talk to the cloud. */
export function register(program: Command): void {
  const keys = program.command('keys').description('the fleet manifest-signing key');
  keys
    .command('generate')
    .description('create an ed25519 signing key pair (keep the file offline); prints the public key')
    .requiredOption('--out <file>', 'where to write the key pair (mode 600)')
    .option('--json', 'print JSON')
    .action(async (options) => {
      const { generateFleetKeyPair, keyIdOf } = await import('../../shared/manifest/index.js');
      const pair = generateFleetKeyPair();
      await writeFile(options.out, `${JSON.stringify(pair)}\n`, { mode: 0o600, flag: 'wx' }).catch(
        (error) => {
          throw new FleetError('INPUT_INVALID', `cannot write ${options.out}: ${(error as Error).message}`);
        },
      );
      await chmod(options.out, 0o600);
      const out = { publicKey: pair.publicKey, keyId: keyIdOf(pair.publicKey), file: options.out };
      printResult(options.json, out, () =>
        [
          `wrote ${options.out}`,
          `public key: ${pair.publicKey}`,
          `start the cloud with --signing-public-key ${pair.publicKey}`,
        ].join('\n'),
      );
    });

  keys
    .command('delegate')
    .description(
      "certify the cloud's online target key with the fleet key (offline signing; the key is shown by `fleetml manifests pending`); prints the certificate",
    )
    .requiredOption('--key <file>', 'the key pair from `fleetml keys generate`')
    .requiredOption('--target-key <base64>', "the cloud's target key")
    .option('--json', 'print JSON')
    .action(async (options) => {
      const { signTargetKeyDelegation } = await import('../../shared/manifest/index.js');
      const keysFile = JSON.parse(await readFile(options.key, 'utf8'));
      const signature = signTargetKeyDelegation(options.targetKey, keysFile);
      printResult(options.json, { targetKey: options.targetKey, signature }, () => signature);
    });

  program
    .command('sign <manifest>')
    .description('sign a release manifest (JSON) offline with the fleet key; prints the signature')
    .requiredOption('--key <file>', 'the key pair from `fleetml keys generate`')
    .option('--json', 'print JSON')
    .action(async (manifestFile: string, options) => {
      const { signManifest } = await import('../../shared/manifest/index.js');
      const { manifestSchema } = await import('../../shared/protocol/index.js');
      const manifest = manifestSchema.parse(JSON.parse(await readFile(manifestFile, 'utf8'))) as Manifest;
      const keysFile = JSON.parse(await readFile(options.key, 'utf8'));
      const signature = signManifest(manifest, keysFile);
      printResult(
        options.json,
        { modelId: manifest.modelId, version: manifest.version, signature },
        () => signature,
      );
    });

  const manifests = program.command('manifests').description('release manifests awaiting offline signatures');
  withApiOptions(manifests.command('pending'))
    .description('list manifests to sign; --out writes each as <modelId>.json for `fleetml sign`')
    .option('--out <dir>', 'directory to write the manifests to')
    .option('--json', 'print JSON')
    .action(async (options) => {
      const result = await callApi<{ publicKey: string; manifests: Manifest[] }>(
        options,
        'GET',
        '/api/manifests/pending',
      );
      if (options.out) {
        await mkdir(options.out, { recursive: true });
        for (const m of result.manifests)
          await writeFile(join(options.out, `${m.modelId}.json`), `${JSON.stringify(m, null, 2)}\n`);
      }
      printResult(
        options.json,
        result,
        () =>
          result.manifests.map((m) => `${m.modelId} v${m.version} ${m.name} ${m.variant}`).join('\n') ||
          'nothing to sign',
      );
    });
  withApiOptions(manifests.command('prepare <model>'))
    .description("create a model's release manifest so that it can be signed offline")
    .option('--json', 'print JSON')
    .action(async (model: string, options) => {
      const manifest = await callApi<Manifest>(
        options,
        'POST',
        `/api/manifests/${encodeURIComponent(model)}/prepare`,
      );
      printResult(options.json, manifest, () => JSON.stringify(manifest, null, 2));
    });
  withApiOptions(manifests.command('attach <model>'))
    .description('upload an offline signature; the cloud checks it against the fleet key')
    .requiredOption('--signature <sig>', 'output of `fleetml sign`')
    .option('--json', 'print JSON')
    .action(async (model: string, options) => {
      const result = await callApi<{ manifest: Manifest }>(
        options,
        'POST',
        `/api/manifests/${encodeURIComponent(model)}/signature`,
        {
          signature: options.signature,
        },
      );
      printResult(
        options.json,
        result,
        () => `attached: ${result.manifest.modelId} v${result.manifest.version} can be deployed`,
      );
    });

  withApiOptions(manifests.command('delegate-target-key'))
    .description(
      "upload the fleet key's certificate of the cloud's target key (output of `fleetml keys delegate`)",
    )
    .requiredOption('--signature <sig>', 'output of `fleetml keys delegate`')
    .option('--json', 'print JSON')
    .action(async (options) => {
      const result = await callApi<{ publicKey: string; delegated: boolean }>(
        options,
        'POST',
        '/api/manifests/target-key/delegation',
        { signature: options.signature },
      );
      printResult(
        options.json,
        result,
        () => `target key ${result.publicKey} is certified: targets can be delivered`,
      );
    });
}
