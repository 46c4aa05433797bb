/**
 * Request budgets (issue 17 item 1), through the real app, Dovecot and an SMTP sink: a WBXML body is held to
 * MAX_WBXML_BYTES and MAX_WBXML_ELEMENTS (413 before its tree is built), the commands that carry a message keep
 * MAX_REQUEST_BYTES, and a body is decoded only once the device has passed the access rules and the policy check.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { childText, el } from '../../src/wbxml/tree.ts';
import { TestDevice, testServer, type TestServer } from '../device/device.ts';
import { createUser, makeMessage } from '../services/seed.ts';
import { startSmtpSink, type SmtpSink } from '../services/smtp-sink.ts';

const services = inject('services');
const WBXML_BYTES = 64 * 1024;
const WBXML_ELEMENTS = 1000;
const TOKEN = 'test-admin-token-budgets-0123456789';

let sink: SmtpSink;
let server: TestServer;

/** A Sync whose root holds `count` empty Collection elements (AirSync 0x0F), one byte each on the wire. */
function emptyTags(count: number): Uint8Array {
  const body = new Uint8Array(4 + 1 + count + 1);
  body.set([3, 1, 106, 0, 0x45]);
  body.fill(0x0f, 5, 5 + count);
  body[5 + count] = 0x01;
  return body;
}

beforeAll(async () => {
  sink = await startSmtpSink({ tls: 'none' });
  server = testServer(services, {
    MAX_WBXML_BYTES: String(WBXML_BYTES),
    MAX_WBXML_ELEMENTS: String(WBXML_ELEMENTS),
    SMTP_HOST: '127.0.0.1',
    SMTP_PORT: String(sink.port),
    SMTP_SECURE: 'false',
    SMTP_AUTH: 'none',
    ADMIN_TOKEN: TOKEN,
  });
});

afterAll(async () => {
  await sink?.close();
});

describe('WBXML budget', () => {
  it('refuses a body of more elements than MAX_WBXML_ELEMENTS with 413, and serves the next request', async () => {
    const device = new TestDevice(server, createUser(services));
    // Within the element budget the command runs and answers with its own Status (no Collections: 13).
    const within = await device.send('Sync', emptyTags(WBXML_ELEMENTS - 1));
    expect(within.status).toBe(200);
    expect(childText(within.body, 'Status')).toBe('13');
    // Over it: 413, though the body is far under the byte limit.
    const over = await device.send('Sync', emptyTags(WBXML_ELEMENTS + 1));
    expect(over.status).toBe(413);
    expect(server.logs.at(-1)).toMatchObject({ cmd: 'Sync', http: 413 });
    expect(String(server.logs.at(-1)?.error)).toContain(`more than ${WBXML_ELEMENTS} elements`);
    const folders = await device.send(
      'FolderSync',
      el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]),
    );
    expect(childText(folders.body, 'Status')).toBe('1');
  });

  it('holds WBXML commands to MAX_WBXML_BYTES and lets SendMail carry a message up to MAX_REQUEST_BYTES', async () => {
    const user = createUser(services);
    const device = new TestDevice(server, user, undefined, '12.1');
    // A Sync of one long string: few elements, but more bytes than a WBXML command may send.
    const text = new Uint8Array(WBXML_BYTES).fill(0x61);
    const long = Uint8Array.from([3, 1, 106, 0, 0x45, 0x4b, 0x03, ...text, 0x00, 0x01, 0x01]);
    expect((await device.send('Sync', long)).status).toBe(413);
    // The same size of message goes through SendMail (message/rfc822, 12.1).
    const mime = makeMessage({
      from: user.email,
      to: 'bob@example.test',
      subject: 'Over the WBXML limit',
      text: `${'b'.repeat(76)}\n`.repeat(Math.ceil((WBXML_BYTES * 2) / 77)),
    });
    expect(mime.length).toBeGreaterThan(WBXML_BYTES * 2);
    const sent = await device.send('SendMail', mime, { headers: { 'Content-Type': 'message/rfc822' } });
    expect(sent.status).toBe(200);
    expect(sink.messages.some((m) => m.data.toString().includes('Over the WBXML limit'))).toBe(true);
  });
});

describe('decoding waits for the access rules and the policy check', () => {
  it('answers an unprovisioned device 142 and a blocked one 129, whatever its body, without decoding it', async () => {
    const user = createUser(services);
    // Strict provisioning: a device without a policy key is refused before its body is looked at.
    const unprovisioned = new TestDevice(server, user);
    unprovisioned.autoProvision = false;
    for (const body of [emptyTags(WBXML_ELEMENTS * 10), Uint8Array.from([3, 1, 106, 0, 0x45, 0x4f])]) {
      const res = await unprovisioned.send('Sync', body);
      expect(res.status).toBe(200);
      expect(childText(res.body, 'Status')).toBe('142');
    }

    const rules = await server.fetch('https://eas.example.test/admin/rules', {
      method: 'PUT',
      headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({
        defaultAccess: 'allow',
        rules: [{ id: 'no-blocked', action: 'block', deviceType: 'Blocked' }],
      }),
    });
    expect(rules.status).toBe(200);
    const blocked = new TestDevice(server, user, undefined, '14.1', 'Blocked');
    blocked.autoProvision = false;
    const res = await blocked.send('Sync', emptyTags(WBXML_ELEMENTS * 10));
    expect(res.status).toBe(200);
    expect(childText(res.body, 'Status')).toBe('129');
  });
});
