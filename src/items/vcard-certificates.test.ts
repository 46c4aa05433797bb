/** The KEY forms of vCard 3.0 and 4.0 (vcard-certificates.ts); the directory read through Radicale: test/e2e/smime/. */
import ICAL from 'ical.js';
import { describe, expect, it } from 'vitest';
import { toBase64 } from '../util/base64.ts';
import { certificatesOfVcard } from './vcard-certificates.ts';

const der = new Uint8Array([0x30, 0x82, 0x01, 0x0a, 1, 2, 3, 4, 5, 6, 7, 8]);
const b64 = toBase64(der);
const card = (version: string, ...keys: string[]): ICAL.Component =>
  new ICAL.Component(
    ICAL.parse(['BEGIN:VCARD', `VERSION:${version}`, 'FN:A', ...keys, 'END:VCARD', ''].join('\r\n')) as unknown[],
  );

describe('certificates in vCard KEY', () => {
  it('reads the 3.0 binary form and the 4.0 data URI (also with its ; and , escaped as text)', () => {
    expect(certificatesOfVcard(card('3.0', `KEY;ENCODING=b;TYPE=X509:${b64}`))).toEqual([der]);
    expect(certificatesOfVcard(card('4.0', `KEY:data:application/pkix-cert;base64,${b64}`))).toEqual([der]);
    expect(certificatesOfVcard(card('4.0', `KEY;VALUE=text:data:application/pkix-cert\\;base64\\,${b64}`))).toEqual([
      der,
    ]);
  });

  it('leaves out URLs (never fetched) and PGP keys', () => {
    expect(certificatesOfVcard(card('4.0', 'KEY;MEDIATYPE=application/pkix-cert:https://ca.example/a.cer'))).toEqual(
      [],
    );
    expect(certificatesOfVcard(card('4.0', `KEY:data:application/pgp-keys;base64,${b64}`))).toEqual([]);
    expect(certificatesOfVcard(card('3.0', `KEY;ENCODING=b;TYPE=PGP:${b64}`))).toEqual([]);
  });
});
