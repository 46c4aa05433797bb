/**
 * Certificates in ResolveRecipients (MS-ASCMD §2.2.1.15, CertificateRetrieval §2.2.3.22) from a directory address book
 * in the real Radicale (GAL_URL), whose vCards publish S/MIME certificates in KEY as vCard 3.0 directories write them
 * (`KEY;ENCODING=b;TYPE=X509:`), folded at 75 octets, beside a PGP key by URL that is not a certificate. The
 * certificates come from a PKI the test makes (test/services/smime-ca.ts). The request's Options are those of
 * §2.2.3.125.4 (CertificateRetrieval, MaxCertificates, MaxAmbiguousRecipients).
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { x509 } from '../../../src/smime/x509.ts';
import { child, children, childText, el, textOf, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { TestDevice, testServer } from '../../device/device.ts';
import { createUser, seedAddressBook } from '../../services/seed.ts';
import { issue, makeRoot, type Issued } from '../../services/smime-ca.ts';

const services = inject('services');
const DAY = 86_400_000;
let device: TestDevice;
let adaOld: Issued;
let adaNew: Issued;
let bob: Issued;
let carl: Issued;

/** RFC 6350 §3.2: lines folded at 75 octets. */
function fold(line: string): string {
  const parts = [line.slice(0, 75)];
  for (let i = 75; i < line.length; i += 74) parts.push(` ${line.slice(i, i + 74)}`);
  return parts.join('\r\n');
}

function vcard(version: '3.0' | '4.0', uid: string, name: string, email: string, keys: string[]): string {
  return [
    'BEGIN:VCARD',
    `VERSION:${version}`,
    `UID:${uid}`,
    `FN:${name}`,
    `N:${name.split(' ')[1]};${name.split(' ')[0]};;;`,
    `EMAIL:${email}`,
    ...keys.map(fold),
    'END:VCARD',
    '',
  ].join('\r\n');
}

beforeAll(async () => {
  const root = await makeRoot('Directory Test Root');
  adaOld = await issue(root, 'ada@example.test', { notAfter: new Date(Date.now() + 30 * DAY) });
  adaNew = await issue(root, 'ada@example.test', { notAfter: new Date(Date.now() + 300 * DAY) });
  const adaExpired = await issue(root, 'ada@example.test', {
    notBefore: new Date(Date.now() - 400 * DAY),
    notAfter: new Date(Date.now() - DAY),
  });
  const adaTls = await issue(root, 'ada@example.test', { eku: [x509.ExtendedKeyUsage.serverAuth] });
  bob = await issue(root, 'bob@example.test');
  const owner = createUser(services);
  const directory = await seedAddressBook(
    services,
    owner,
    'directory-smime',
    [
      // Two usable certificates, and an expired one and a TLS one that are not offered.
      vcard('3.0', 'ada', 'Ada Lovelace', 'ada.lovelace@example.test', [
        `KEY;ENCODING=b;TYPE=X509:${adaOld.base64}`,
        `KEY;ENCODING=b;TYPE=X509:${adaNew.base64}`,
        `KEY;ENCODING=b;TYPE=X509:${adaExpired.base64}`,
        `KEY;ENCODING=b;TYPE=X509:${adaTls.base64}`,
      ]),
      // Radicale 3.1 stores vCard 4.0's `KEY:data:…;base64,…` as text split at the comma, losing the certificate:
      // a directory on it publishes certificates in the 3.0 form (the 4.0 form: src/items/vcard-certificates.test.ts).
      vcard('3.0', 'bob', 'Bob Builder', 'bob.builder@example.test', [
        `KEY;TYPE=x509;ENCODING=B:${bob.base64}`,
        'KEY;TYPE=PGP:https://keys.example.test/bob.asc',
      ]),
      vcard('3.0', 'grace', 'Grace Hopper', 'grace.hopper@example.test', []),
    ],
    { displayName: 'Directory' },
  );
  // The device user's own address book: a contact the directory does not have, and a copy of one it has.
  carl = await issue(root, 'carl@elsewhere.test');
  const me = createUser(services);
  await seedAddressBook(services, me, 'contacts', [
    vcard('3.0', 'carl', 'Carl Contact', 'carl@elsewhere.test', [`KEY;ENCODING=b;TYPE=X509:${carl.base64}`]),
    vcard('3.0', 'ada-copy', 'Ada Lovelace', 'ada.lovelace@example.test', []),
  ]);
  device = new TestDevice(testServer(services, { GAL_URL: directory.collectionUrl }), me);
});

async function resolve(to: string[], options: [string, string][]): Promise<WbxmlElement[]> {
  const body = await device.command(
    'ResolveRecipients',
    el('ResolveRecipients', 'ResolveRecipients', [
      ...to.map((t) => el('ResolveRecipients', 'To', t)),
      el(
        'ResolveRecipients',
        'Options',
        options.map(([tag, value]) => el('ResolveRecipients', tag as 'CertificateRetrieval', value)),
      ),
    ]),
  );
  expect(childText(body, 'Status')).toBe('1');
  return children(body, 'Response').map((r) => child(r, 'Recipient')!);
}

const certificatesOf = (recipient: WbxmlElement): WbxmlElement | undefined => child(recipient, 'Certificates');
const texts = (parent: WbxmlElement | undefined, tag: string): string[] => children(parent, tag).map((c) => textOf(c));

describe('ResolveRecipients certificates from the directory', () => {
  it('CertificateRetrieval 2: every valid e-mail certificate, newest first; none is Status 7', async () => {
    const [ada, bobR, grace] = await resolve(
      ['ada.lovelace@example.test', 'bob.builder@example.test', 'grace.hopper@example.test'],
      [
        ['CertificateRetrieval', '2'],
        ['MaxAmbiguousRecipients', '19'],
      ],
    );
    const adaCerts = certificatesOf(ada!);
    expect(adaCerts?.children.map((c) => c.tag)).toEqual([
      'Status',
      'CertificateCount',
      'RecipientCount',
      'Certificate',
      'Certificate',
    ]);
    expect(childText(adaCerts, 'Status')).toBe('1');
    expect(childText(adaCerts, 'CertificateCount')).toBe('2');
    expect(childText(adaCerts, 'RecipientCount')).toBe('1');
    expect(texts(adaCerts, 'Certificate')).toEqual([adaNew.base64, adaOld.base64]);
    expect(texts(certificatesOf(bobR!), 'Certificate')).toEqual([bob.base64]);
    expect(childText(certificatesOf(grace!), 'Status')).toBe('7');
    expect(childText(certificatesOf(grace!), 'CertificateCount')).toBe('0');
    expect(children(certificatesOf(grace!), 'Certificate')).toEqual([]);
  });

  it('CertificateRetrieval 3: the newest certificate as the MiniCertificate', async () => {
    const [ada, bobR] = await resolve(
      ['ada.lovelace@example.test', 'bob.builder@example.test'],
      [['CertificateRetrieval', '3']],
    );
    expect(texts(certificatesOf(ada!), 'MiniCertificate')).toEqual([adaNew.base64]);
    expect(childText(certificatesOf(ada!), 'CertificateCount')).toBe('2');
    expect(children(certificatesOf(ada!), 'Certificate')).toEqual([]);
    expect(texts(certificatesOf(bobR!), 'MiniCertificate')).toEqual([bob.base64]);
  });

  it('CertificateRetrieval 1 (or none) answers no Certificates', async () => {
    const [ada] = await resolve(['ada.lovelace@example.test'], [['CertificateRetrieval', '1']]);
    expect(certificatesOf(ada!)).toBeUndefined();
    const [plain] = await resolve(['ada.lovelace@example.test'], []);
    expect(certificatesOf(plain!)).toBeUndefined();
  });

  it("the user's own contacts resolve as Type 2 with their certificates; one the directory has is not listed twice", async () => {
    const [carlR, ada] = await resolve(
      ['carl@elsewhere.test', 'ada.lovelace@example.test'],
      [['CertificateRetrieval', '2']],
    );
    expect(childText(carlR!, 'Type')).toBe('2');
    expect(childText(carlR!, 'DisplayName')).toBe('Carl Contact');
    expect(texts(certificatesOf(carlR!), 'Certificate')).toEqual([carl.base64]);
    expect(childText(ada!, 'Type')).toBe('1');
    const ambiguous = await device.command(
      'ResolveRecipients',
      el('ResolveRecipients', 'ResolveRecipients', [el('ResolveRecipients', 'To', 'Lovelace')]),
    );
    expect(childText(child(ambiguous, 'Response'), 'RecipientCount')).toBe('1');
  });

  it('MaxCertificates: a recipient whose set does not fit gets none, Status 8 and its count; the next still fits', async () => {
    const [ada, bobR] = await resolve(
      ['ada.lovelace@example.test', 'bob.builder@example.test'],
      [
        ['CertificateRetrieval', '2'],
        ['MaxCertificates', '1'],
      ],
    );
    expect(childText(certificatesOf(ada!), 'Status')).toBe('8');
    expect(childText(certificatesOf(ada!), 'CertificateCount')).toBe('2');
    expect(children(certificatesOf(ada!), 'Certificate')).toEqual([]);
    expect(childText(certificatesOf(bobR!), 'Status')).toBe('1');
    expect(texts(certificatesOf(bobR!), 'Certificate')).toEqual([bob.base64]);
  });

  it('a MaxCertificates or CertificateRetrieval out of range is a protocol error (Status 5)', async () => {
    for (const options of [
      [['CertificateRetrieval', '4']],
      [
        ['CertificateRetrieval', '2'],
        ['MaxCertificates', '10000'],
      ],
    ] as [string, string][][]) {
      const body = await device.command(
        'ResolveRecipients',
        el('ResolveRecipients', 'ResolveRecipients', [
          el('ResolveRecipients', 'To', 'ada.lovelace@example.test'),
          el(
            'ResolveRecipients',
            'Options',
            options.map(([tag, value]) => el('ResolveRecipients', tag as 'CertificateRetrieval', value)),
          ),
        ]),
      );
      expect(childText(body, 'Status')).toBe('5');
    }
  });
});
