/**
 * Validates an S/MIME certificate as ValidateCert asks (MS-ASCMD §2.2.1.22): a path from the certificate up to a
 * trusted root (trust-store.ts), through the intermediates the device sent (CertificateChain), each link's signature
 * verified; every certificate on it within its validity period; the issuers CAs; the certificate fit for e-mail
 * (RFC 8550 §4.4: extended key usage emailProtection when the extension is there); and, with CheckCRL, none of them
 * revoked (RFC 5280 §6.3). The answer is the first failed check as a ValidateCert Status (MS-ASCMD §2.2.3.177.18).
 */
import { CrlUnavailableError, crlUrls, fetchCrl, type CrlFetchOptions } from './crl.ts';
import type { AnchorIndex } from './trust-store.ts';
import { ownBytes, x509 } from './x509.ts';

/** The per-certificate statuses of MS-ASCMD §2.2.3.177.18 that this validation answers. */
export const CertStatus = {
  Valid: 1,
  /** The signature on a certificate of the path does not verify with its issuer's key. */
  BadSignature: 3,
  /** The path ends at a root that is not in the trust store, or at a certificate whose issuer no one sent. */
  UntrustedRoot: 4,
  /** The path is longer than any real one (or loops). */
  InvalidChain: 5,
  /** Not for e-mail: extended key usage without emailProtection, or key usage allowing no S/MIME operation. */
  NotForEmail: 6,
  /** A certificate of the path is expired or not yet valid. */
  Expired: 7,
  /** A certificate's validity is not within its issuer's. */
  InconsistentTimes: 8,
  /** The certificate cannot be read, or carries what an S/MIME certificate cannot (e.g. no public key algorithm we know). */
  Malformed: 10,
  /** An issuer of the path is not a CA (basic constraints, key usage keyCertSign, path length). */
  NotACa: 11,
  Revoked: 13,
  /** CheckCRL, and no current CRL could be read (or the certificate names no distribution point). */
  RevocationUnknown: 14,
  /** An intermediate CA of the path is revoked. */
  IssuerRevoked: 15,
} as const;
export type CertStatusValue = (typeof CertStatus)[keyof typeof CertStatus];

export interface ValidationOptions {
  /** The trusted CAs (TrustStore.anchors()). */
  trust: AnchorIndex;
  /** Intermediates the device sent. */
  chain: readonly x509.X509Certificate[];
  checkCrl: boolean;
  now?: Date;
  /** Aborted when the request's budget is spent; CRL reads stop then. */
  signal: AbortSignal;
  crl?: Omit<CrlFetchOptions, 'signal'>;
}

export interface Validation {
  status: CertStatusValue;
  /** Why, for the request's log line. */
  reason?: string;
}

const MAX_PATH = 8;
const ANY_EKU = '2.5.29.37.0';
const SMIME_KEY_USAGES =
  x509.KeyUsageFlags.digitalSignature |
  x509.KeyUsageFlags.nonRepudiation |
  x509.KeyUsageFlags.keyEncipherment |
  x509.KeyUsageFlags.keyAgreement;

function sameCertificate(a: x509.X509Certificate, b: x509.X509Certificate): boolean {
  const x = new Uint8Array(a.rawData);
  const y = new Uint8Array(b.rawData);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

async function signedBy(cert: x509.X509Certificate, issuer: x509.X509Certificate): Promise<boolean> {
  try {
    return await cert.verify({ publicKey: issuer, signatureOnly: true });
  } catch {
    return false; // a key or algorithm WebCrypto cannot use: not this issuer
  }
}

type Path = { certs: x509.X509Certificate[]; anchored: boolean } | { failed: Validation };

/** The path from `leaf` up: each next certificate the issuer of the one before; anchored when it reached the store. */
async function buildPath(leaf: x509.X509Certificate, options: ValidationOptions): Promise<Path> {
  const certs = [leaf];
  for (;;) {
    const current = certs[certs.length - 1]!;
    const anchors = options.trust.get(current.subject) ?? [];
    if (anchors.some((a) => sameCertificate(a, current))) return { certs, anchored: true };
    if (certs.length > MAX_PATH) return { failed: { status: CertStatus.InvalidChain, reason: 'path too long' } };
    const trusted = options.trust.get(current.issuer) ?? [];
    for (const anchor of trusted)
      if (await signedBy(current, anchor)) return { certs: [...certs, anchor], anchored: true };
    if (current.subject === current.issuer && (await signedBy(current, current)))
      return { failed: { status: CertStatus.UntrustedRoot, reason: `root ${current.subject} is not trusted` } };
    const named = options.chain.filter((c) => c.subject === current.issuer && !certs.includes(c));
    let next: x509.X509Certificate | undefined;
    for (const candidate of named)
      if (await signedBy(current, candidate)) {
        next = candidate;
        break;
      }
    if (!next) {
      if (named.length > 0 || trusted.length > 0 || current.subject === current.issuer)
        return {
          failed: { status: CertStatus.BadSignature, reason: `signature of ${current.subject} does not verify` },
        };
      // Neither the store nor the chain the device sent has its issuer: it leads to no one trusted.
      return { failed: { status: CertStatus.UntrustedRoot, reason: `issuer ${current.issuer} is unknown` } };
    }
    certs.push(next);
  }
}

function checkTimes(path: readonly x509.X509Certificate[], now: Date): Validation | undefined {
  for (const cert of path)
    if (now < cert.notBefore || now > cert.notAfter)
      return {
        status: CertStatus.Expired,
        reason: `${cert.subject} valid ${cert.notBefore.toISOString()} to ${cert.notAfter.toISOString()}`,
      };
  for (let i = 0; i + 1 < path.length; i++) {
    const cert = path[i]!;
    const issuer = path[i + 1]!;
    if (cert.notBefore < issuer.notBefore || cert.notAfter > issuer.notAfter)
      return { status: CertStatus.InconsistentTimes, reason: `${cert.subject} outlives its issuer` };
  }
  return undefined;
}

function checkIssuers(path: readonly x509.X509Certificate[]): Validation | undefined {
  // path[0] is the leaf; every later one issued the one before it. The last is the trust anchor, trusted as configured.
  for (let i = 1; i < path.length - 1; i++) {
    const ca = path[i]!;
    const constraints = ca.getExtension(x509.BasicConstraintsExtension);
    const keyUsage = ca.getExtension(x509.KeyUsagesExtension);
    if (!constraints?.ca) return { status: CertStatus.NotACa, reason: `${ca.subject} is not a CA` };
    if (keyUsage && !(keyUsage.usages & x509.KeyUsageFlags.keyCertSign))
      return { status: CertStatus.NotACa, reason: `${ca.subject} may not sign certificates` };
    // RFC 5280 §4.2.1.9: CAs below it on the path, not counting the leaf.
    const below = i - 1;
    if (constraints.pathLength !== undefined && below > constraints.pathLength)
      return { status: CertStatus.NotACa, reason: `${ca.subject} path length ${constraints.pathLength} exceeded` };
  }
  return undefined;
}

/** Whether `leaf` may serve S/MIME (RFC 8550 §4.4): undefined when it may, else why not. */
export function checkPurpose(leaf: x509.X509Certificate): Validation | undefined {
  const eku = leaf.getExtension(x509.ExtendedKeyUsageExtension);
  if (eku && !eku.usages.some((u) => u === x509.ExtendedKeyUsage.emailProtection || u === ANY_EKU))
    return { status: CertStatus.NotForEmail, reason: 'extended key usage without emailProtection' };
  const keyUsage = leaf.getExtension(x509.KeyUsagesExtension);
  if (keyUsage && !(keyUsage.usages & SMIME_KEY_USAGES))
    return { status: CertStatus.NotForEmail, reason: 'key usage allows no S/MIME operation' };
  return undefined;
}

/** Whether `cert` is on its issuer's current CRL: 'revoked', 'good', or why it is unknown. */
async function revocationOf(
  cert: x509.X509Certificate,
  issuer: x509.X509Certificate,
  options: ValidationOptions,
  now: Date,
): Promise<'revoked' | 'good' | string> {
  const urls = crlUrls(cert);
  if (urls.length === 0) return 'no CRL distribution point';
  let why = '';
  for (const url of urls) {
    try {
      const crl = await fetchCrl(url, { ...options.crl, signal: options.signal });
      if (crl.issuer !== issuer.subject || !(await crl.verify({ publicKey: issuer }).catch(() => false))) {
        why = `CRL at ${new URL(url).origin} is not signed by ${issuer.subject}`;
        continue;
      }
      if (crl.thisUpdate > now || (crl.nextUpdate && crl.nextUpdate < now)) {
        why = `CRL at ${new URL(url).origin} is not current`;
        continue;
      }
      return crl.findRevoked(cert) ? 'revoked' : 'good';
    } catch (err) {
      if (!(err instanceof CrlUnavailableError)) throw err;
      why = err.message;
    }
  }
  return why;
}

/** The ValidateCert status of `leaf` (its DER), with the reason when it is not valid. */
export async function validateCertificate(leafDer: Uint8Array, options: ValidationOptions): Promise<Validation> {
  let leaf: x509.X509Certificate;
  try {
    leaf = new x509.X509Certificate(ownBytes(leafDer));
  } catch (err) {
    return { status: CertStatus.Malformed, reason: `not a certificate (${(err as Error).message})` };
  }
  const now = options.now ?? new Date();
  const path = await buildPath(leaf, options);
  if ('failed' in path) return path.failed;
  const certs = path.certs;
  const failed = checkTimes(certs, now) ?? checkIssuers(certs) ?? checkPurpose(leaf);
  if (failed) return failed;
  if (options.checkCrl) {
    // Every certificate but the root, which no one above revokes. Only now: the path is trusted, so the URLs read
    // are those its CAs wrote (crl.ts).
    for (let i = 0; i + 1 < certs.length; i++) {
      const state = await revocationOf(certs[i]!, certs[i + 1]!, options, now);
      if (state === 'revoked')
        return i === 0
          ? { status: CertStatus.Revoked, reason: 'on its issuer CRL' }
          : { status: CertStatus.IssuerRevoked, reason: `${certs[i]!.subject} is revoked` };
      if (state !== 'good') return { status: CertStatus.RevocationUnknown, reason: state };
    }
  }
  return { status: CertStatus.Valid };
}
