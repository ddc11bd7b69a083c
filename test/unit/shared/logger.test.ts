import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, scrubSecrets } from '../../../shared/logger.js';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _e, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, logger: createLogger({ name: 't', level: 'trace', destination }) };
}

const PEM =
  '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgVerySecretKeyMaterial\n-----END PRIVATE KEY-----\n';

describe('logger redaction', () => {
  it('redacts secret keys at any of the first three levels', () => {
    const { lines, logger } = capture();
    logger.info({ secret: 's3cr3t-device-1', password: 'broker-pw-1' }, 'top');
    logger.info(
      { identity: { secret: 's3cr3t-device-2' }, config: { enrollToken: 'tok-enroll-2' } },
      'nested',
    );
    logger.info(
      { req: { headers: { authorization: 'Bearer tok-api-3', cookie: 'c=tok-cookie-3' } } },
      'request',
    );
    logger.info({ tls: { keyPem: PEM }, keys: { privateKey: 'ed25519-private-4' } }, 'keys');
    logger.info({ a: { b: { token: 'tok-deep-5' } } }, 'deep');
    const text = lines.join('');
    for (const secret of [
      's3cr3t-device',
      'broker-pw',
      'tok-enroll',
      'tok-api',
      'tok-cookie',
      'VerySecretKey',
      'ed25519-private',
      'tok-deep',
    ]) {
      expect(text).not.toContain(secret);
    }
    expect(text.match(/\[redacted\]/g)?.length).toBeGreaterThanOrEqual(9);
  });

  it('scrubs token-shaped strings and private keys from messages and error texts', () => {
    const { lines, logger } = capture();
    logger.warn({ url: '/api/stream?token=fml_AbCdEfGhIjKlMnOpQrStUv' }, 'refused enr_ZyXwVuTsRqPoNm123');
    logger.error({ err: new Error(`cannot parse ${PEM}`) }, 'failed');
    const text = lines.join('');
    expect(text).not.toContain('AbCdEfGhIjKl');
    expect(text).not.toContain('ZyXwVuTsRq');
    expect(text).not.toContain('VerySecretKey');
    expect(text).toContain('fml_[redacted]');
    expect(text).toContain('[redacted private key]');
    expect(scrubSecrets('plain text with fml_ short')).toBe('plain text with fml_ short');
  });
});
