/**
 * ValidateCert through the Worker (src/runtimes/cloudflare/worker.ts) inside workerd: the X.509 code (@peculiar/x509
 * over workerd's WebCrypto, with its Reflect polyfill) parses and verifies there, the PKI is made inside workerd too,
 * and the trust store is the PEM text of SMIME_TRUST_STORE (Workers read no files). Without the setting nothing is
 * trusted. With CheckCRL a distribution point no one answers at is read through workerd's fetch and answered 14.
 * The device logs in against the test Dovecot.
 */
import { createExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { EventEmitter } from 'node:events';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import worker from '../../src/runtimes/cloudflare/worker.ts';
import { decodeWbxml } from '../../src/wbxml/decoder.ts';
import { encodeWbxml } from '../../src/wbxml/encoder.ts';
import { children, childText, el, type WbxmlElement } from '../../src/wbxml/tree.ts';
import { issue, makeRoot, withBrokenSignature, type Issued } from '../services/smime-ca.ts';
import type { WorkersImap } from '../services/workers-global-setup.ts';

EventEmitter.defaultMaxListeners = 50;

const imap: WorkersImap = inject('imap');
const carol = imap.users.find((u) => u.name === 'carol')!;
const base = {
  ...env,
  IMAP_HOST: imap.host,
  IMAP_PORT: String(imap.port),
  IMAP_SECURE: 'false',
  TENANT: 'smime',
  PROVISIONING: 'loose',
};
const IncomingRequest = Request<unknown, IncomingRequestCfProperties>;
const DAY = 86_400_000;

let root: Issued;
let valid: Issued;
let expired: Issued;
let untrusted: Issued;
let unreachableCrl: Issued;

beforeAll(async () => {
  root = await makeRoot('Workers Test Root');
  valid = await issue(root, 'ada@example.test');
  expired = await issue(root, 'old@example.test', {
    notBefore: new Date(Date.now() - 400 * DAY),
    notAfter: new Date(Date.now() - DAY),
  });
  untrusted = await issue(await makeRoot('Other Root'), 'eve@example.test');
  unreachableCrl = await issue(root, 'lost@example.test', { crl: ['http://127.0.0.1:9/none.crl'] });
});

async function validate(settings: Record<string, string>, certs: string[], checkCrl?: string): Promise<WbxmlElement> {
  const url = `https://eas.example.test/Microsoft-Server-ActiveSync?Cmd=ValidateCert&User=${carol.name}&DeviceId=SMIMEWORKER&DeviceType=iPhone`;
  const response = await worker.fetch(
    new IncomingRequest(url, {
      method: 'POST',
      body: encodeWbxml(
        el('ValidateCert', 'ValidateCert', [
          el(
            'ValidateCert',
            'Certificates',
            certs.map((c) => el('ValidateCert', 'Certificate', c)),
          ),
          checkCrl ? el('ValidateCert', 'CheckCRL', checkCrl) : undefined,
        ]),
      ),
      headers: {
        Authorization: `Basic ${btoa(`${carol.email}:${carol.password}`)}`,
        'MS-ASProtocolVersion': '14.1',
        'Content-Type': 'application/vnd.ms-sync.wbxml',
      },
    }),
    { ...base, ...settings },
    createExecutionContext(),
  );
  expect(response.status).toBe(200);
  return decodeWbxml(new Uint8Array(await response.arrayBuffer()));
}

const statuses = (body: WbxmlElement): string[] =>
  children(body, 'Certificate').map((c) => childText(c, 'Status') ?? '');

describe('ValidateCert on Workers', () => {
  it('validates against the PEM text of SMIME_TRUST_STORE: valid, expired, untrusted, bad signature', async () => {
    const body = await validate({ SMIME_TRUST_STORE: root.pem }, [
      valid.base64,
      expired.base64,
      untrusted.base64,
      withBrokenSignature(valid),
    ]);
    expect(childText(body, 'Status')).toBe('1');
    expect(statuses(body)).toEqual(['1', '7', '4', '3']);
  });

  it('with CheckCRL, a distribution point that does not answer leaves the status unknown (14)', async () => {
    const body = await validate({ SMIME_TRUST_STORE: root.pem }, [unreachableCrl.base64, valid.base64], '1');
    expect(statuses(body)).toEqual(['14', '14']);
  });

  it('without SMIME_TRUST_STORE trusts no CA (Workers has no root list)', async () => {
    const body = await validate({}, [valid.base64]);
    expect(statuses(body)).toEqual(['4']);
  });
});
