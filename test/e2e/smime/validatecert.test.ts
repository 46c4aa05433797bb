/**
 * ValidateCert (MS-ASCMD §2.2.1.22) through the app, the device logging in against the test Dovecot, with a PKI the
 * test makes (test/services/smime-ca.ts): a root in SMIME_TRUST_STORE, an intermediate the device sends in
 * CertificateChain, and certificates valid, expired, from an untrusted root, for another purpose, revoked on a CRL a
 * local HTTP server of the test serves, with a broken signature. The request shape is MS-ASCMD §4.20.1's (Certificates
 * alone) and the answer §4.20.2's (Status, then one Certificate with its Status per certificate sent).
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { clearCrlCache } from '../../../src/smime/crl.ts';
import { x509 } from '../../../src/smime/x509.ts';
import { children, childText, el, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { createUser } from '../../services/seed.ts';
import { issue, makeCrl, makeRoot, withBrokenSignature, type Issued } from '../../services/smime-ca.ts';

const services = inject('services');
const DAY = 86_400_000;

let crlServer: Server;
let crlBase = '';
let crlRequests: { url: string; authorization: string | undefined; cookie: string | undefined }[] = [];
const crls = new Map<string, Uint8Array>();
let server: TestServer;
let device: TestDevice;
let root: Issued;
let intermediate: Issued;
let valid: Issued;
let viaIntermediate: Issued;
let expired: Issued;
let notYet: Issued;
let wrongPurpose: Issued;
let untrusted: Issued;
let otherRoot: Issued;
let revoked: Issued;
let goodWithCrl: Issued;
let unreachableCrl: Issued;

beforeAll(async () => {
  crlServer = createServer((req, res) => {
    crlRequests.push({ url: req.url ?? '', authorization: req.headers.authorization, cookie: req.headers.cookie });
    const body = crls.get(req.url ?? '');
    if (req.url === '/moved.crl') {
      res.writeHead(302, { location: '/root.crl' }).end();
      return;
    }
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(body);
  });
  await new Promise<void>((resolve) => crlServer.listen(0, '127.0.0.1', resolve));
  const address = crlServer.address();
  crlBase = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;

  root = await makeRoot('Edge Test Root');
  intermediate = await issue(root, 'Edge Test Issuing CA', { ca: true, crl: [`${crlBase}/root.crl`] });
  valid = await issue(root, 'ada@example.test');
  viaIntermediate = await issue(intermediate, 'grace@example.test', { crl: [`${crlBase}/issuing.crl`] });
  expired = await issue(root, 'old@example.test', {
    notBefore: new Date(Date.now() - 400 * DAY),
    notAfter: new Date(Date.now() - DAY),
  });
  notYet = await issue(root, 'soon@example.test', { notBefore: new Date(Date.now() + DAY) });
  wrongPurpose = await issue(root, 'tls@example.test', { eku: [x509.ExtendedKeyUsage.serverAuth] });
  otherRoot = await makeRoot('Someone Else Root');
  untrusted = await issue(otherRoot, 'eve@example.test');
  revoked = await issue(root, 'mallory@example.test', { crl: [`${crlBase}/moved.crl`] });
  goodWithCrl = await issue(root, 'bob@example.test', { crl: [`${crlBase}/root.crl`] });
  unreachableCrl = await issue(root, 'lost@example.test', { crl: ['http://127.0.0.1:9/none.crl'] });
  crls.set('/root.crl', await makeCrl(root, [revoked]));
  crls.set('/issuing.crl', await makeCrl(intermediate, []));

  server = testServer(services, { SMIME_TRUST_STORE: root.pem });
  device = new TestDevice(server, createUser(services));
});

afterAll(async () => {
  await new Promise((resolve) => crlServer.close(resolve));
});

/** ValidateCert as MS-ASCMD §4.20.1 sends it, with the chain and CheckCRL when given. */
async function validate(certs: string[], options: { chain?: string[]; checkCrl?: string } = {}): Promise<WbxmlElement> {
  return device.command(
    'ValidateCert',
    el('ValidateCert', 'ValidateCert', [
      options.chain
        ? el(
            'ValidateCert',
            'CertificateChain',
            options.chain.map((c) => el('ValidateCert', 'Certificate', c)),
          )
        : undefined,
      el(
        'ValidateCert',
        'Certificates',
        certs.map((c) => el('ValidateCert', 'Certificate', c)),
      ),
      options.checkCrl !== undefined ? el('ValidateCert', 'CheckCRL', options.checkCrl) : undefined,
    ]),
  );
}

function statuses(body: WbxmlElement): string[] {
  return children(body, 'Certificate').map((c) => childText(c, 'Status') ?? '');
}

describe('ValidateCert', () => {
  it('answers a trusted certificate 1, as MS-ASCMD §4.20.2 shows', async () => {
    const body = await validate([valid.base64]);
    expect(childText(body, 'Status')).toBe('1');
    expect(body.children.map((c) => c.tag)).toEqual(['Status', 'Certificate']);
    expect(statuses(body)).toEqual(['1']);
    expect(server.logs.some((l) => l.event === 'smime-trust-store' && l.certificates === 1)).toBe(true);
  });

  it('answers each certificate of one request: expired, not yet valid, other purpose, untrusted root, bad signature', async () => {
    const body = await validate([
      expired.base64,
      notYet.base64,
      wrongPurpose.base64,
      untrusted.base64,
      withBrokenSignature(valid),
      valid.base64,
    ]);
    expect(childText(body, 'Status')).toBe('1');
    expect(statuses(body)).toEqual(['7', '7', '6', '4', '3', '1']);
  });

  it('follows the CertificateChain the device sends to the trusted root; without it the issuer is unknown (4)', async () => {
    expect(statuses(await validate([viaIntermediate.base64], { chain: [intermediate.base64] }))).toEqual(['1']);
    expect(statuses(await validate([viaIntermediate.base64]))).toEqual(['4']);
    // A root the device sends along is still not trusted.
    expect(statuses(await validate([untrusted.base64], { chain: [otherRoot.base64] }))).toEqual(['4']);
  });

  it('with CheckCRL reads the CRLs of the path over HTTP: revoked 13, good 1, unreachable 14; without it reads none', async () => {
    clearCrlCache();
    crlRequests = [];
    const body = await validate(
      [revoked.base64, goodWithCrl.base64, unreachableCrl.base64, viaIntermediate.base64, valid.base64],
      { chain: [intermediate.base64], checkCrl: '1' },
    );
    // valid names no distribution point: with CheckCRL its status cannot be known either.
    expect(statuses(body)).toEqual(['13', '1', '14', '1', '14']);
    // The redirect was followed; each URL was read once (then kept: the intermediate's /root.crl came from the
    // cache); and nothing identifying went with the requests.
    expect(crlRequests.map((r) => r.url).sort()).toEqual(['/issuing.crl', '/moved.crl', '/root.crl', '/root.crl']);
    expect(crlRequests.every((r) => r.authorization === undefined && r.cookie === undefined)).toBe(true);

    crlRequests = [];
    clearCrlCache();
    expect(statuses(await validate([revoked.base64, unreachableCrl.base64], { checkCrl: '0' }))).toEqual(['1', '1']);
    expect(crlRequests).toEqual([]);
  });

  it('an intermediate on its root CRL revokes what it issued (15)', async () => {
    clearCrlCache();
    crls.set('/root.crl', await makeCrl(root, [revoked, intermediate]));
    try {
      expect(
        statuses(await validate([viaIntermediate.base64], { chain: [intermediate.base64], checkCrl: '1' })),
      ).toEqual(['15']);
    } finally {
      crls.set('/root.crl', await makeCrl(root, [revoked]));
      clearCrlCache();
    }
  });

  it('without a trust store says so at start-up, and calls every certificate untrusted (4)', async () => {
    const bare = testServer(services);
    const notice = bare.logs.find((l) => l.event === 'smime-trust-store');
    expect(notice?.certificates).toBe(0);
    expect(String(notice?.notice)).toContain('SMIME_TRUST_STORE');
    const other = new TestDevice(bare, createUser(services));
    const body = await other.command(
      'ValidateCert',
      el('ValidateCert', 'ValidateCert', [
        el('ValidateCert', 'Certificates', [el('ValidateCert', 'Certificate', valid.base64)]),
      ]),
    );
    expect(statuses(body)).toEqual(['4']);
  });

  it('a request that is not one is a protocol error (2); a certificate that is not one is 10', async () => {
    expect(childText(await validate(['not base64 ***']), 'Status')).toBe('2');
    expect(childText(await validate([]), 'Status')).toBe('2');
    expect(childText(await validate([valid.base64], { checkCrl: 'maybe' }), 'Status')).toBe('2');
    const garbage = await validate([Buffer.from('this is not DER at all').toString('base64')]);
    expect(childText(garbage, 'Status')).toBe('1');
    expect(statuses(garbage)).toEqual(['10']);
  });
});
