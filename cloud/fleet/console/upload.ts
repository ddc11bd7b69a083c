import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { FleetError } from '../../../shared/errors/index.js';

/** A request body written to disk as it arrived (octet-stream uploads), never held whole in memory. */
export interface UploadedFile {
  path: string;
  size: number;
  sha256: string;
  /** Reads the file (for parsers that need the bytes) and removes it. */
  take(): Promise<Buffer>;
  discard(): Promise<void>;
}

export interface UploadOptions {
  /** Directory for uploads in progress; default the OS temp dir. Removed files never linger. */
  dir?: string;
}

export function isUploadedFile(value: unknown): value is UploadedFile {
  return typeof value === 'object' && value !== null && typeof (value as UploadedFile).take === 'function';
}

/** Counts and hashes bytes on the way to disk; fails past `limit`. */
function meter(limit: number) {
  const hash = createHash('sha256');
  let size = 0;
  const transform = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      if (size > limit) {
        return done(new FleetError('UPLOAD_TOO_LARGE', `upload is larger than the limit of ${limit} bytes`));
      }
      hash.update(chunk);
      done(null, chunk);
    },
  });
  return { transform, result: () => ({ size, sha256: hash.digest('hex') }) };
}

/**
 * `application/octet-stream` bodies stream to a temporary file under the route's body limit
 * (checked against Content-Length first, then byte by byte). The authentication hooks run
 * before this parser, so an anonymous client never gets a byte written.
 */
export function registerOctetStreamUploads(app: FastifyInstance, options: UploadOptions = {}): void {
  const dir = options.dir ?? join(tmpdir(), 'fleetml-uploads');
  app.addContentTypeParser(
    'application/octet-stream',
    async (request: FastifyRequest, payload: NodeJS.ReadableStream) => {
      const limit = request.routeOptions.bodyLimit ?? 1024 * 1024;
      const declared = Number(request.headers['content-length'] ?? Number.NaN);
      if (declared > limit) {
        throw new FleetError(
          'UPLOAD_TOO_LARGE',
          `upload of ${declared} bytes is larger than the limit of ${limit} bytes`,
        );
      }
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const path = join(dir, `${randomUUID()}.part`);
      const counted = meter(limit);
      try {
        await pipeline(payload, counted.transform, createWriteStream(path, { mode: 0o600 }));
      } catch (error) {
        await rm(path, { force: true });
        throw error;
      }
      const { size, sha256 } = counted.result();
      const file: UploadedFile = {
        path,
        size,
        sha256,
        take: async () => {
          try {
            return await readFile(path);
          } finally {
            await rm(path, { force: true });
          }
        },
        discard: () => rm(path, { force: true }),
      };
      // Whatever the route does, the temporary file goes when the response is sent.
      request.raw.once('close', () => void rm(path, { force: true }));
      return file;
    },
  );
}
