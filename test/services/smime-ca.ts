/**
 * A throwaway S/MIME PKI made at test time with @peculiar/x509 over WebCrypto (so it runs in Node and in workerd): a
 * root, an intermediate, and end-entity certificates as CAs issue them (RFC 8550: emailProtection, the address in
 * subjectAltName), plus the broken ones ValidateCert must refuse. ECDSA P-256 keeps key generation fast.
 */
import { x509 } from '../../src/smime/x509.ts';
import { toBase64 } from '../../src/util/base64.ts';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

export interface Issued {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
  /** DER, base64: as ValidateCert and ResolveRecipients carry certificates. */
  base64: string;
  pem: string;
}

async function keyPair(): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
}

function issued(cert: x509.X509Certificate, keys: CryptoKeyPair): Issued {
  return { cert, keys, base64: toBase64(new Uint8Array(cert.rawData)), pem: cert.toString('pem') };
}

let serial = 0x1000;
const nextSerial = (): string => (serial++).toString(16).padStart(6, '0');

export async function makeRoot(name: string, options: { notBefore?: Date; notAfter?: Date } = {}): Promise<Issued> {
  const keys = await keyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: nextSerial(),
    name: `CN=${name}, O=ActiveSync Edge Tests`,
    notBefore: options.notBefore ?? new Date(Date.now() - 10 * DAY),
    notAfter: options.notAfter ?? new Date(Date.now() + 3650 * DAY),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return issued(cert, keys);
}

export interface IssueOptions {
  notBefore?: Date;
  notAfter?: Date;
  /** A CA certificate (basic constraints cA, keyCertSign). */
  ca?: boolean;
  /** Extended key usages; default emailProtection. */
  eku?: string[];
  /** CRL distribution point URLs. */
  crl?: string[];
  serialNumber?: string;
}

export async function issue(issuer: Issued, subject: string, options: IssueOptions = {}): Promise<Issued> {
  const keys = await keyPair();
  const email = subject.includes('@') ? subject : undefined;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: options.serialNumber ?? nextSerial(),
    subject: email ? `CN=${email.split('@')[0]}, E=${email}` : `CN=${subject}, O=ActiveSync Edge Tests`,
    issuer: issuer.cert.subject,
    notBefore: options.notBefore ?? new Date(Date.now() - DAY),
    notAfter: options.notAfter ?? new Date(Date.now() + 365 * DAY),
    publicKey: keys.publicKey,
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: ALG,
    extensions: [
      options.ca
        ? new x509.BasicConstraintsExtension(true, 0, true)
        : new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        options.ca
          ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign
          : x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.nonRepudiation,
        true,
      ),
      ...(options.ca
        ? []
        : [new x509.ExtendedKeyUsageExtension(options.eku ?? [x509.ExtendedKeyUsage.emailProtection])]),
      ...(email ? [new x509.SubjectAlternativeNameExtension([{ type: 'email', value: email }])] : []),
      ...(options.crl ? [new x509.CRLDistributionPointsExtension(options.crl)] : []),
      await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey),
    ],
  });
  return issued(cert, keys);
}

/** A CRL of `issuer` listing `revoked`, current for a day. */
export async function makeCrl(issuer: Issued, revoked: Issued[]): Promise<Uint8Array> {
  const crl = await x509.X509CrlGenerator.create({
    issuer: issuer.cert.subject,
    thisUpdate: new Date(Date.now() - 60_000),
    nextUpdate: new Date(Date.now() + DAY),
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: ALG,
    entries: revoked.map((r) => ({
      serialNumber: r.cert.serialNumber,
      revocationDate: new Date(Date.now() - 120_000),
    })),
  });
  return new Uint8Array(crl.rawData);
}

/** `cert` with one bit of its signature flipped: its issuer's key no longer verifies it. */
export function withBrokenSignature(cert: Issued): string {
  const der = new Uint8Array(cert.cert.rawData);
  der[der.length - 5] = der[der.length - 5]! ^ 0x01;
  return toBase64(der);
}
