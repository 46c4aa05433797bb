/**
 * The certification authorities ValidateCert trusts (SMIME_TRUST_STORE): a PEM bundle, given as its text (every
 * runtime; Workers can read no file) or as a file path (Node, Lambda). Unset: the platform's roots, where it has a
 * list (Node: `tls.rootCertificates`); workerd has none, so there no root is trusted until the setting names some.
 * The bundle is read at start-up (a file that cannot be read stops it); its certificates are parsed on the first
 * ValidateCert, so a process that never validates never loads the X.509 code (docs/DESIGN.md, footprint).
 */
import type { x509 as X509 } from './x509.ts';

export class TrustStoreError extends Error {
  override readonly name = 'TrustStoreError';
}

/** The anchors by subject name (RFC 4514 string, as @peculiar/x509 writes it), for the path search (validate.ts). */
export type AnchorIndex = ReadonlyMap<string, readonly X509.X509Certificate[]>;

export interface TrustStore {
  /** The certificates, PEM (or DER base64) each. */
  readonly pems: readonly string[];
  /** Where they came from, for the start-up log line: `SMIME_TRUST_STORE file …`, `platform roots (…)`. */
  readonly source: string;
  /** The parsed anchors, parsed once; an anchor this library cannot read is left out (and counted in `unreadable`). */
  anchors(): Promise<{ bySubject: AnchorIndex; unreadable: number }>;
}

/** What a runtime gives: how to read a file, and its own roots when the setting is unset. */
export interface TrustStorePlatform {
  /** Absent where code cannot read files (Workers): a path setting is then a configuration error. */
  readFile?(path: string): string;
  /** The platform's roots as PEM texts; empty where there is no list. */
  defaultRoots: readonly string[];
  /** What the default is called in the log line, e.g. `Node tls.rootCertificates`. */
  defaultName: string;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The certificate blocks of a PEM bundle; other blocks (keys, CRLs) and text between blocks are ignored. */
export function pemCertificates(text: string): string[] {
  return text.match(PEM_CERTIFICATE) ?? [];
}

export function trustStoreOf(pems: readonly string[], source: string): TrustStore {
  let parsed: ReturnType<TrustStore['anchors']> | undefined;
  return {
    pems,
    source,
    anchors() {
      parsed ??= import('./x509.ts').then(({ x509 }) => {
        const bySubject = new Map<string, X509.X509Certificate[]>();
        let unreadable = 0;
        for (const pem of pems) {
          let anchor: X509.X509Certificate;
          try {
            anchor = new x509.X509Certificate(pem);
          } catch {
            unreadable++;
            continue;
          }
          const list = bySubject.get(anchor.subject) ?? [];
          list.push(anchor);
          bySubject.set(anchor.subject, list);
        }
        return { bySubject, unreadable };
      });
      return parsed;
    },
  };
}

/**
 * The trust store the setting names (its PEM text, or a file path), else the platform's roots. A setting that gives
 * no certificate, or a file that cannot be read, is a TrustStoreError: trusting nothing by mistake is not quiet.
 */
export function loadTrustStore(setting: string | undefined, platform: TrustStorePlatform): TrustStore {
  if (setting === undefined || setting.trim() === '')
    return trustStoreOf(platform.defaultRoots, `platform roots (${platform.defaultName})`);
  const text = setting.trim();
  if (text.includes('-----BEGIN')) {
    const pems = pemCertificates(text);
    if (pems.length === 0) throw new TrustStoreError('SMIME_TRUST_STORE holds no PEM certificate');
    return trustStoreOf(pems, 'SMIME_TRUST_STORE (PEM text)');
  }
  if (!platform.readFile)
    throw new TrustStoreError(
      'SMIME_TRUST_STORE names a file, which this runtime cannot read: give the PEM bundle itself as the setting',
    );
  let bundle: string;
  try {
    bundle = platform.readFile(text);
  } catch (err) {
    throw new TrustStoreError(
      `SMIME_TRUST_STORE file ${text} cannot be read (${(err as { code?: string }).code ?? (err as Error).message})`,
    );
  }
  const pems = pemCertificates(bundle);
  if (pems.length === 0) throw new TrustStoreError(`SMIME_TRUST_STORE file ${text} holds no PEM certificate`);
  return trustStoreOf(pems, `SMIME_TRUST_STORE file ${text}`);
}
