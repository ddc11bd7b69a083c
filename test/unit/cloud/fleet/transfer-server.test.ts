import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalArtifactStore } from '../../../../cloud/fleet/delivery/local-artifacts.js';
import { createTransferServer } from '../../../../cloud/fleet/delivery/transfer-server.js';
import { sha256Hex } from '../../../../shared/hash.js';
import { createLogger } from '../../../../shared/logger.js';
import { decodeBlockFrame, encodeJson } from '../../../../shared/protocol/index.js';

const logger = createLogger({ name: 'test', level: 'silent' });

describe('transfer server', () => {
  let dir: string;
  let store: LocalArtifactStore;
  let artifact: Buffer;
  let sha: string;
  let sent: Array<{ topic: string; payload: Buffer }>;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fleetml-ts-'));
    store = new LocalArtifactStore(dir);
    artifact = Buffer.from(Array.from({ length: 10_000 }, (_, i) => (i * 7) % 251));
    sha = (await store.put(artifact)).sha256;
    sent = [];
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const server = (extra: Partial<Parameters<typeof createTransferServer>[0]> = {}) =>
    createTransferServer({
      store,
      logger,
      publish: async (topic, payload) => {
        sent.push({ topic, payload });
      },
      ...extra,
    });

  it('serves requested blocks with index, total and per-block hash', async () => {
    const s = server();
    await s.handleRequest('dev1', encodeJson({ v: 1, sha256: sha, blocks: [0, 2], blockSize: 4096 }));
    await s.idle();
    expect(sent).toHaveLength(2);
    expect(sent[0].topic).toBe('fleetml/v1/d/dev1/transfer/blk');
    const frames = sent
      .map((m) => decodeBlockFrame(m.payload))
      .sort((a, b) => a.header.index - b.header.index);
    expect(frames[0].header).toMatchObject({ index: 0, total: 3, sha256: sha });
    expect(frames[0].data.equals(artifact.subarray(0, 4096))).toBe(true);
    expect(frames[1].data.equals(artifact.subarray(8192))).toBe(true);
    expect(frames[1].header.blockSha256).toBe(sha256Hex(artifact.subarray(8192)));
    expect(s.stats()).toMatchObject({ blocksServed: 2, bytesServed: 4096 + 10_000 - 8192 });
  });

  it('defaults to 64 KiB blocks', async () => {
    const s = server();
    await s.handleRequest('dev1', encodeJson({ v: 1, sha256: sha, blocks: [0] }));
    await s.idle();
    expect(decodeBlockFrame(sent[0].payload).header.total).toBe(1);
    expect(decodeBlockFrame(sent[0].payload).data.length).toBe(10_000);
  });

  it('drops malformed requests with a count and no reply', async () => {
    const s = server();
    await s.handleRequest('dev1', Buffer.from('{nope'));
    await s.handleRequest('dev1', encodeJson({ v: 1, sha256: 'abc', blocks: [0] }));
    await s.handleRequest('dev1', encodeJson({ v: 1, sha256: sha, blocks: [] }));
    expect(sent).toHaveLength(0);
    expect(s.stats().rejected).toBe(3);
  });

  it('answers an unknown artifact and out-of-range blocks with error frames', async () => {
    const s = server();
    await s.handleRequest('dev1', encodeJson({ v: 1, sha256: 'f'.repeat(64), blocks: [0] }));
    await s.handleRequest('dev1', encodeJson({ v: 1, sha256: sha, blocks: [9], blockSize: 4096 }));
    await s.idle();
    const headers = sent.map((m) => decodeBlockFrame(m.payload).header);
    expect(headers[0].error?.code).toBe('ARTIFACT_NOT_FOUND');
    expect(headers[1]).toMatchObject({ index: 9, error: { code: 'INPUT_INVALID' } });
  });

  it('refuses artifacts the device may not fetch exactly as artifacts that do not exist', async () => {
    const s = server({ authorize: (deviceId) => deviceId === 'ok' });
    await s.handleRequest('other', encodeJson({ v: 1, sha256: sha, blocks: [0] }));
    const unknown = 'e'.repeat(64);
    await s.handleRequest('ok', encodeJson({ v: 1, sha256: unknown, blocks: [0] }));
    const [forbidden, missing] = sent.map((m) => decodeBlockFrame(m.payload));
    expect(forbidden.data.length).toBe(0);
    expect(forbidden.header.error?.code).toBe('ARTIFACT_NOT_FOUND');
    const blank = (f: typeof forbidden, hash: string) => JSON.stringify(f.header).replaceAll(hash, 'x');
    expect(blank(forbidden, sha)).toBe(blank(missing, unknown));
  });

  it('answers a request it cannot authorize because the store is away with STORE_UNAVAILABLE (retryable)', async () => {
    // What pg throws when PostgreSQL ends the session mid-query (a restart); it was INTERNAL.
    const s = server({
      authorize: async () => {
        throw new Error('Connection terminated unexpectedly');
      },
    });
    await s.handleRequest('dev1', encodeJson({ v: 1, sha256: sha, blocks: [0] }));
    const [frame] = sent.map((m) => decodeBlockFrame(m.payload));
    expect(frame.header.error?.code).toBe('STORE_UNAVAILABLE');
    expect(frame.data.length).toBe(0);
  });

  it('bounds blocks in flight per device and skips duplicates', async () => {
    let inFlight = 0;
    let peak = 0;
    const s = server({
      maxInFlightPerDevice: 2,
      publish: async (topic, payload) => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        await new Promise((r) => setTimeout(r, 5));
        inFlight--;
        sent.push({ topic, payload });
      },
    });
    const blocks = Array.from({ length: 40 }, (_, i) => i);
    await s.handleRequest('dev1', encodeJson({ v: 1, sha256: sha, blocks, blockSize: 256 }));
    await s.handleRequest('dev1', encodeJson({ v: 1, sha256: sha, blocks: [39, 38], blockSize: 256 }));
    await s.idle();
    expect(peak).toBe(2);
    expect(new Set(sent.map((m) => decodeBlockFrame(m.payload).header.index)).size).toBe(40);
    expect(sent.length).toBeLessThanOrEqual(42);
  });
});
