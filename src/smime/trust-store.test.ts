/**
 * SMIME_TRUST_STORE as each runtime reads it (trust-store.ts): PEM text everywhere, a file on Node and Lambda, Node's
 * own roots when unset, and the errors that stop start-up rather than leave ValidateCert trusting nothing unsaid.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { nodeTrustStore } from '../runtimes/node-trust-store.ts';
import { makeRoot } from '../../test/services/smime-ca.ts';
import { loadTrustStore, TrustStoreError, type TrustStorePlatform } from './trust-store.ts';

const workers: TrustStorePlatform = { defaultRoots: [], defaultName: 'none: Workers has no root list' };

describe('SMIME_TRUST_STORE', () => {
  it('unset on Node: the roots Node trusts, all readable by the X.509 library', async () => {
    const store = loadTrustStore(undefined, nodeTrustStore);
    expect(store.source).toBe('platform roots (Node tls.rootCertificates)');
    expect(store.pems.length).toBeGreaterThan(100);
    const { bySubject, unreadable } = await store.anchors();
    expect(unreadable).toBe(0);
    expect([...bySubject.values()].flat()).toHaveLength(store.pems.length);
  });

  it('unset on Workers: nothing trusted, and the source says why', () => {
    const store = loadTrustStore(undefined, workers);
    expect(store.pems).toEqual([]);
    expect(store.source).toContain('Workers has no root list');
  });

  it('PEM text on any runtime; a file on Node; the PEM blocks only', async () => {
    const a = await makeRoot('Store A');
    const b = await makeRoot('Store B');
    const bundle = `# our CAs\n${a.pem}\nsome text\n${b.pem}\n`;
    const inline = loadTrustStore(bundle, workers);
    expect(inline.pems).toHaveLength(2);
    expect([...(await inline.anchors()).bySubject.keys()].sort()).toEqual([a.cert.subject, b.cert.subject].sort());
    const file = join(mkdtempSync(join(tmpdir(), 'ase-trust-')), 'cas.pem');
    writeFileSync(file, bundle);
    const fromFile = loadTrustStore(file, nodeTrustStore);
    expect(fromFile.source).toBe(`SMIME_TRUST_STORE file ${file}`);
    expect(fromFile.pems).toHaveLength(2);
  });

  it('a file that cannot be read, a file on Workers, or no certificate at all stops start-up', () => {
    expect(() => loadTrustStore('/nonexistent/cas.pem', nodeTrustStore)).toThrow(/cannot be read \(ENOENT\)/);
    expect(() => loadTrustStore('/etc/cas.pem', workers)).toThrow(TrustStoreError);
    expect(() => loadTrustStore('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----', workers)).toThrow(
      /no PEM certificate/,
    );
  });
});
