import { describe, expect, it } from 'vitest';
import { FleetError } from '../../../shared/errors/index.js';
import {
  decodeBlockFrame,
  decodeJson,
  deviceTopic,
  encodeBlockFrame,
  encodeStatus,
  enrollRequestSchema,
  MAX_JSON_PAYLOAD_BYTES,
  parseTopic,
  statusSchema,
  targetStateSchema,
  telemetryBatchSchema,
  transferRequestSchema,
} from '../../../shared/protocol/index.js';

const sha = 'a'.repeat(64);
const hardware = {
  hostname: 'pi-kitchen',
  arch: 'arm64',
  platform: 'linux',
  cpuModel: 'Cortex-A72',
  cpuCores: 4,
  memoryBytes: 4e9,
  gpu: null,
  executionProviders: ['cpu'],
  onnxruntimeVersion: '1.30.0',
  nodeVersion: 'v20.20.2',
};

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return error instanceof FleetError ? error.code : 'NOT_FLEET_ERROR';
  }
  return undefined;
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

describe('protocol schemas', () => {
  it('accepts a valid enrollment request', () => {
    const request = { v: 1, requestId: 'r1', token: 'enr_12345678', agentVersion: '0.1.0', hardware };
    expect(decodeJson(enrollRequestSchema, json(request)).hardware.cpuCores).toBe(4);
  });

  it('rejects each kind of bad payload with its own code', () => {
    expect(codeOf(() => decodeJson(enrollRequestSchema, Buffer.from('{not json')))).toBe('MSG_NOT_JSON');
    expect(codeOf(() => decodeJson(enrollRequestSchema, json({ v: 2 })))).toBe('MSG_VERSION');
    expect(codeOf(() => decodeJson(enrollRequestSchema, json({ v: 1, requestId: 'r1' })))).toBe('MSG_SCHEMA');
    expect(codeOf(() => decodeJson(enrollRequestSchema, Buffer.alloc(MAX_JSON_PAYLOAD_BYTES + 1, 32)))).toBe(
      'MSG_TOO_LARGE',
    );
    expect(codeOf(() => decodeJson(enrollRequestSchema, json(null)))).toBe('MSG_SCHEMA');
  });

  it('names the offending field in a schema error', () => {
    const bad = {
      v: 1,
      records: [
        {
          seq: -1,
          at: new Date().toISOString(),
          cpuLoad: 5,
          memUsedBytes: 1,
          memTotalBytes: 2,
          tempC: null,
          modelId: null,
          latency: null,
        },
      ],
    };
    expect(() => decodeJson(telemetryBatchSchema, json(bad))).toThrow(/records\.0\.seq/);
  });

  it('refuses device ids that could escape their topic subtree', () => {
    const target = { v: 1, deviceId: 'a/+/#', version: 1, model: null, issuedAt: new Date().toISOString() };
    expect(targetStateSchema.safeParse(target).success).toBe(false);
    expect(targetStateSchema.safeParse({ ...target, deviceId: 'pi-1' }).success).toBe(true);
  });

  it('bounds the number of blocks one transfer request may ask for', () => {
    expect(transferRequestSchema.safeParse({ v: 1, sha256: sha, blocks: [0, 1, 2] }).success).toBe(true);
    expect(
      transferRequestSchema.safeParse({ v: 1, sha256: sha, blocks: Array.from({ length: 257 }, (_, i) => i) })
        .success,
    ).toBe(false);
    expect(transferRequestSchema.safeParse({ v: 1, sha256: 'ABC', blocks: [0] }).success).toBe(false);
  });
});

describe('presence', () => {
  it('encodes online and offline status messages the status schema accepts', () => {
    for (const online of [true, false]) {
      const status = decodeJson(statusSchema, encodeStatus(online));
      expect(status.online).toBe(online);
      expect(status.v).toBe(1);
      expect(Number.isNaN(Date.parse(status.at))).toBe(false);
    }
  });
});

describe('topics', () => {
  it('round-trips device topics and rejects foreign ones', () => {
    expect(parseTopic(deviceTopic('pi-1', 'transfer/req'))).toEqual({
      kind: 'device',
      deviceId: 'pi-1',
      channel: 'transfer/req',
    });
    expect(parseTopic('fleetml/v1/d/pi-1/unknown')).toBeUndefined();
    expect(parseTopic('other/v1/d/pi-1/state')).toBeUndefined();
    expect(parseTopic('fleetml/v1/enroll/abc/req')).toEqual({
      kind: 'enroll',
      requestId: 'abc',
      direction: 'req',
    });
  });
});

describe('block frames', () => {
  it('round-trips header and data', () => {
    const data = Buffer.from([1, 2, 3, 4, 5]);
    const frame = encodeBlockFrame(
      { v: 1, sha256: sha, index: 3, total: 10, blockSha256: 'b'.repeat(64) },
      data,
    );
    const decoded = decodeBlockFrame(frame);
    expect(decoded.header.index).toBe(3);
    expect([...decoded.data]).toEqual([1, 2, 3, 4, 5]);
  });

  it('rejects frames without magic, with a lying header length, or a bad header', () => {
    expect(codeOf(() => decodeBlockFrame(Buffer.from('nope-nope')))).toBe('MSG_SCHEMA');
    const frame = encodeBlockFrame({ v: 1, sha256: sha, index: 0, total: 1 });
    frame.writeUInt32BE(1 << 30, 4);
    expect(codeOf(() => decodeBlockFrame(frame))).toBe('MSG_SCHEMA');
    const badHeader = encodeBlockFrame({ v: 1, sha256: sha, index: -1, total: 1 } as never);
    expect(codeOf(() => decodeBlockFrame(badHeader))).toBe('MSG_SCHEMA');
  });
});
