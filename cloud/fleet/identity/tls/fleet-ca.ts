// @peculiar/x509 resolves its algorithms through tsyringe, which needs this polyfill loaded first.
import 'reflect-metadata';
import { createHash, webcrypto, X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';

/** The fleet's TLS material: a CA that agents pin, and the broker's certificate signed by it. */
export interface FleetTls {
  caPem: string;
  certPem: string;
  keyPem: string;
  /** SHA-256 of the CA certificate (DER), hex: what an operator compares out of band. */
  caFingerprint: string;
}

export interface FleetTlsOptions {
  /** Directory holding ca.pem, ca.key, server.pem, server.key (keys mode 600). */
  dir: string;
  /** Names the broker certificate is valid for; default localhost, 127.0.0.1, ::1 and this host's name. */
  hostnames?: string[];
  /** Validity of the server certificate in days; default 825 (what browsers accept). The CA gets 10 years. */
  serverValidityDays?: number;
}

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const DAY_MS = 86_400_000;

function pem(label: string, der: ArrayBuffer): string {
  const body = Buffer.from(der)
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trimEnd();
  return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

async function exportKey(key: webcrypto.CryptoKey): Promise<string> {
  return pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', key));
}

async function writeSecret(path: string, text: string): Promise<void> {
  await writeFile(path, text, { mode: 0o600 });
  await chmod(path, 0o600);
}

function fingerprint(certPem: string): string {
  return createHash('sha256').update(new X509Certificate(certPem).raw).digest('hex');
}

async function readExisting(dir: string): Promise<FleetTls | undefined> {
  try {
    const [caPem, certPem, keyPem] = await Promise.all(
      ['ca.pem', 'server.pem', 'server.key'].map((f) => readFile(join(dir, f), 'utf8')),
    );
    return { caPem, certPem, keyPem, caFingerprint: fingerprint(caPem) };
  } catch {
    return undefined;
  }
}

/**
 * Loads the fleet CA and broker certificate from `dir`, creating them on first use
 * (ECDSA P-256). The CA key never leaves `dir`; agents receive only ca.pem.
 */
export async function loadOrCreateFleetTls(options: FleetTlsOptions): Promise<FleetTls> {
  const existing = await readExisting(options.dir);
  if (existing) return existing;
  await mkdir(options.dir, { recursive: true, mode: 0o700 });
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const now = Date.now();
  const caKeys = (await webcrypto.subtle.generateKey(ALGORITHM, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(8))).toString('hex'),
    name: 'CN=fleetml fleet CA',
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + 3650 * DAY_MS),
    signingAlgorithm: ALGORITHM,
    keys: caKeys as unknown as Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0]['keys'],
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  const serverKeys = (await webcrypto.subtle.generateKey(ALGORITHM, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const names = options.hostnames ?? ['localhost', '127.0.0.1', '::1', hostname()];
  const server = await x509.X509CertificateGenerator.create({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(8))).toString('hex'),
    subject: `CN=${names[0]}`,
    issuer: ca.subject,
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + (options.serverValidityDays ?? 825) * DAY_MS),
    signingAlgorithm: ALGORITHM,
    publicKey: serverKeys.publicKey as unknown as x509.PublicKeyType,
    signingKey: caKeys.privateKey as unknown as x509.X509CertificateCreateWithKeyParams['signingKey'],
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(
        names.map((n) =>
          /^[\d.]+$|:/.test(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n },
        ),
      ),
    ],
  });
  const tls: FleetTls = {
    caPem: ca.toString('pem'),
    certPem: server.toString('pem'),
    keyPem: await exportKey(serverKeys.privateKey),
    caFingerprint: '',
  };
  tls.caFingerprint = fingerprint(tls.caPem);
  await writeFile(join(options.dir, 'ca.pem'), tls.caPem);
  await writeSecret(join(options.dir, 'ca.key'), await exportKey(caKeys.privateKey));
  await writeFile(join(options.dir, 'server.pem'), tls.certPem);
  await writeSecret(join(options.dir, 'server.key'), tls.keyPem);
  return tls;
}
