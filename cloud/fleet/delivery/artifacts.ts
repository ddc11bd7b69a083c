import { FleetError } from '../../../shared/errors/index.js';

/** What the store knows about one artifact without reading it. */
export interface ArtifactStat {
  sha256: string;
  size: number;
}

/** A byte range [start, end) of an artifact. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * The content-addressed artifact store every replica shares: model files, datasets and golden
 * sets, named by the sha256 of their bytes. Writes are idempotent (the same bytes land under the
 * same name) and never visible half-written, so replicas need no coordination to use it.
 *
 * Implementations: a directory (`LocalArtifactStore`, local-artifacts.ts), shared by replicas on
 * one host or through a network file system. The interface is what an S3-compatible bucket needs
 * too (an object per sha256, ranged GETs for blocks, HEAD for stat); `localPath` is the one
 * place where a remote store would copy an object into a local cache, for the compression child
 * processes that open files by path.
 */
export interface ArtifactStore {
  /** Where the bytes live, for logs: a directory, or a bucket URL. */
  readonly location: string;
  /** Stores bytes; returns their hash and size. Idempotent. */
  put(bytes: Uint8Array): Promise<ArtifactStat>;
  /** The whole artifact, or bytes [start, end) of it (clamped to its size). ARTIFACT_NOT_FOUND if absent. */
  get(sha256: string, range?: ByteRange): Promise<Buffer>;
  has(sha256: string): Promise<boolean>;
  /** Size of a stored artifact; null when it is not in the store. */
  stat(sha256: string): Promise<ArtifactStat | null>;
  /** Removes an artifact; removing one that is absent is not an error. */
  delete(sha256: string): Promise<void>;
  /** A local file holding the artifact's bytes, for child processes (a remote store caches it). */
  localPath(sha256: string): Promise<string>;
}

/** Throws INPUT_INVALID unless `sha256` is 64 lowercase hex digits (it becomes a file or object name). */
export function assertSha256(sha256: string): void {
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new FleetError('INPUT_INVALID', `not a sha256: ${sha256}`);
}

export function artifactNotFound(sha256: string): FleetError {
  return new FleetError('ARTIFACT_NOT_FOUND', `artifact ${sha256} is not in the store`, { sha256 });
}
