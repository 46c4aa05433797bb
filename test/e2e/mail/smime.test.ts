/**
 * S/MIME mail end to end (issue 20 item 4): messages signed and encrypted with certificates made here by openssl
 * (smime-openssl.ts) travel through the test Postfix into Dovecot, sync to scripted devices, and go out from a device
 * by SendMail; openssl checks, on what the device and the recipients get, that the signatures still verify and the
 * encrypted content still decrypts.
 *
 * What the protocol asks:
 * - MessageClass (MS-ASEMAIL §2.2.2.49): IPM.Note.SMIME.MultipartSigned for clear-signed mail, IPM.Note.SMIME for
 *   encrypted and opaque-signed mail (MS-OXOSMIME §2.1.1, §2.1.2).
 * - MIMESupport (MS-ASCMD §2.2.3.110.3 Sync, §2.2.3.110.1 ItemOperations): 0 never MIME, 1 MIME for S/MIME messages
 *   only, 2 MIME for all, each time the device also asks for BodyPreference Type 4 (MS-ASAIRS §2.2.2.22.1), as that
 *   section requires of a device handling S/MIME. The MIME is the message as the server stores it, byte for byte.
 * - Without MIME, a device gets the regular body: the signed content's text for clear-signed mail; for an encrypted
 *   or opaque-signed message nothing readable, and the smime.p7m blob as an attachment (its FileReference fetches it).
 * - SendMail (MS-ASCMD §2.2.1.17): the device's MIME goes out as it is (only missing top-level header fields are added,
 *   outside anything signed); the Sent copy too.
 *
 * Request shapes: the Sync Options of the client corpus (test/fixtures/clients/): iOS Mail's
 * (ios/first-contact-14.1.json: FilterType 3, BodyPreference Type 2 with TruncationSize 200000, MIMESupport 0),
 * Windows Mail's (windows-mail/first-contact-16.1-base64.json: FilterType 4, Type 2 with 32768 and Preview 255,
 * MIMESupport 1) with the Type 4 preference MS-ASCMD §2.2.3.110.3 requires for S/MIME, and the ItemOperations Fetch
 * of the MS-ASEMAIL example (ms-as-spec/asemail-sync-read-fetch-move-14.1.json: MIMESupport 2, Type 4).
 */
import { randomBytes } from 'node:crypto';
import { Buffer } from 'node:buffer';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { bytesOf, child, children, childText, el, textOf, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { itemText, TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { createUser, makeMessage, sendViaSmtp } from '../../services/seed.ts';
import type { TestUser } from '../../services/types.ts';
import { compose, composeStatus, readFolder, waitForStored } from './compose-helpers.ts';
import { itemOperationsFetch, mailboxSearchRequest } from '../session-steps.ts';
import { bodyOf, headerOf, SmimeLab, type SmimeKind, type SmimeParty } from './smime-openssl.ts';

const services = inject('services');

let server: TestServer;
let lab: SmimeLab;

beforeAll(() => {
  server = testServer(services, { PROVISIONING: 'loose' });
  lab = new SmimeLab();
});
afterAll(() => lab?.close());

/**
 * A signed letter's content: text and HTML, non-ASCII, quoted-printable (what most mail apps write) or 8bit (raw UTF-8,
 * which a signature covers byte for byte: nothing on the way may re-encode it).
 */
function letter(words: string, encoding: 'quoted-printable' | '8bit' = 'quoted-printable'): string {
  const greeting = encoding === '8bit' ? `– ${GREETING}` : '=E2=80=93 Gr=C3=BC=C3=9Fe aus K=C3=B6ln';
  return [
    'Content-Type: multipart/alternative; boundary="alt-7d1e"',
    '',
    '--alt-7d1e',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Transfer-Encoding: ${encoding}`,
    '',
    `${words} ${greeting}`,
    '',
    '--alt-7d1e',
    'Content-Type: text/html; charset=utf-8',
    `Content-Transfer-Encoding: ${encoding}`,
    '',
    `<html><body><p>${words} ${greeting}</p></body></html>`,
    '',
    '--alt-7d1e--',
    '',
  ].join('\r\n');
}

/** What every check of a decrypted or verified letter looks for. */
const GREETING = 'Grüße aus Köln';

/** Options/children (Sync and ItemOperations alike). */
const IOS_OPTIONS = [
  el('AirSync', 'FilterType', '3'),
  el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '2'), el('AirSyncBase', 'TruncationSize', '200000')]),
  el('AirSync', 'MIMESupport', '0'),
];
const MIME_PREFERENCE = el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '4')]);
function windowsOptions(mimeSupport: 1 | 2): WbxmlElement[] {
  return [
    el('AirSync', 'FilterType', '4'),
    el('AirSyncBase', 'BodyPreference', [
      el('AirSyncBase', 'Type', '2'),
      el('AirSyncBase', 'TruncationSize', '32768'),
      el('AirSyncBase', 'Preview', '255'),
    ]),
    MIME_PREFERENCE,
    el('AirSync', 'MIMESupport', String(mimeSupport)),
  ];
}

interface SyncedMail {
  serverId: string;
  messageClass: string | undefined;
  bodyType: string | undefined;
  truncated: string | undefined;
  estimated: number;
  data: Uint8Array;
  attachments: { name: string | undefined; fileReference: string; size: number }[];
}

function mailOf(serverId: string, data: WbxmlElement | undefined): SyncedMail {
  const body = child(data, 'Body', 'AirSyncBase');
  return {
    serverId,
    messageClass: itemText(data, 'MessageClass', 'Email'),
    bodyType: childText(body, 'Type', 'AirSyncBase'),
    truncated: childText(body, 'Truncated', 'AirSyncBase'),
    estimated: Number(childText(body, 'EstimatedDataSize', 'AirSyncBase')),
    data: bytesOf(child(body, 'Data', 'AirSyncBase')),
    attachments: children(child(data, 'Attachments', 'AirSyncBase'), 'Attachment', 'AirSyncBase').map((a) => ({
      name: childText(a, 'DisplayName', 'AirSyncBase'),
      fileReference: childText(a, 'FileReference', 'AirSyncBase')!,
      size: Number(childText(a, 'EstimatedDataSize', 'AirSyncBase')),
    })),
  };
}

/** A 14.1 device's Inbox after a full Sync under these Options, by Subject. */
async function inboxAs(
  user: TestUser,
  options: WbxmlElement[],
): Promise<{ device: TestDevice; mail: Map<string, SyncedMail> }> {
  const device = new TestDevice(server, user, undefined, '14.1');
  await device.folderSync();
  const inbox = device.folderByType(FolderType.Inbox).serverId;
  await device.syncUntilDone(inbox, { options });
  const mail = new Map(
    [...device.items(inbox)].map(([id, data]) => [itemText(data, 'Subject', 'Email')!, mailOf(id, data)]),
  );
  return { device, mail };
}

function tag(what: string): string {
  return `${what} ${randomBytes(3).toString('hex')}`;
}

/** The checks of a message that reached someone whole: the signature verifies, the encrypted content decrypts. */
function expectIntact(kind: SmimeKind, message: Uint8Array, recipient: SmimeParty): void {
  const content = kind === 'encrypted' ? lab.verify(lab.decrypt(message, recipient)) : lab.verify(message);
  expect(content.toString('utf8')).toMatch(/Gr=C3=BC=C3=9Fe aus K=C3=B6ln|Grüße aus Köln/);
}

describe('S/MIME mail to the device', () => {
  it('syncs clear-signed, opaque-signed and encrypted mail as the stored MIME, byte for byte, under MIMESupport 1 and 2; other mail as MIME only under 2', async () => {
    const [alice, bob] = [createUser(services), createUser(services)];
    const from = lab.party(alice.email);
    const to = lab.party(bob.email);
    const subjects: Record<SmimeKind, string> = {
      'clear-signed': tag('Signed: quarterly figures'),
      'opaque-signed': tag('Opaque: travel approval'),
      encrypted: tag('Encrypted: salary statement'),
    };
    // Delivered as mail is: submitted to Postfix, which hands it to Dovecot over LMTP.
    for (const kind of Object.keys(subjects) as SmimeKind[]) {
      // The clear-signed one in 8bit: raw UTF-8 under the signature.
      const entity = letter(kind, kind === 'clear-signed' ? '8bit' : 'quoted-printable');
      const message = lab.message(kind, { from, to, subject: subjects[kind], entity });
      expect((await sendViaSmtp(services, alice.email, bob.email, message)).rejected).toEqual([]);
    }
    const plainSubject = tag('Lunch');
    await sendViaSmtp(services, alice.email, bob.email, makeMessage({ subject: plainSubject, text: 'Noon?\n' }));
    for (const subject of [...Object.values(subjects), plainSubject])
      await waitForStored(services, bob, (m) => m.email.subject === subject);
    const stored = new Map((await readFolder(services, bob)).map((m) => [m.email.subject!, m.source]));

    for (const mimeSupport of [1, 2] as const) {
      const { mail } = await inboxAs(bob, windowsOptions(mimeSupport));
      for (const kind of Object.keys(subjects) as SmimeKind[]) {
        const got = mail.get(subjects[kind])!;
        const label = `${kind}, MIMESupport ${mimeSupport}`;
        expect(got.messageClass, label).toBe(
          kind === 'clear-signed' ? 'IPM.Note.SMIME.MultipartSigned' : 'IPM.Note.SMIME',
        );
        expect([got.bodyType, got.truncated, got.estimated], label).toEqual([
          '4',
          '0',
          stored.get(subjects[kind])!.length,
        ]);
        expect(Buffer.from(got.data).equals(stored.get(subjects[kind])!), label).toBe(true);
        expectIntact(kind, got.data, to);
      }
      // Mail that is not S/MIME: MIME only when the device wants it for all messages.
      const plain = mail.get(plainSubject)!;
      expect([plain.messageClass, plain.bodyType], `plain, MIMESupport ${mimeSupport}`).toEqual([
        'IPM.Note',
        mimeSupport === 2 ? '4' : '2',
      ]);
    }
  });

  it('without MIME support: the signed text readable, the encrypted message as its smime.p7m attachment; ItemOperations fetches the MIME', async () => {
    const [alice, bob] = [createUser(services), createUser(services)];
    const from = lab.party(alice.email);
    const to = lab.party(bob.email);
    const signedSubject = tag('Signed: rollout');
    const encryptedSubject = tag('Encrypted: contract');
    await sendViaSmtp(
      services,
      alice.email,
      bob.email,
      lab.message('clear-signed', { from, to, subject: signedSubject, entity: letter('Rollout on Monday') }),
    );
    await sendViaSmtp(
      services,
      alice.email,
      bob.email,
      lab.message('encrypted', { from, to, subject: encryptedSubject, entity: letter('Contract attached') }),
    );
    for (const subject of [signedSubject, encryptedSubject])
      await waitForStored(services, bob, (m) => m.email.subject === subject);
    const stored = new Map((await readFolder(services, bob)).map((m) => [m.email.subject!, m.source]));

    const { device, mail } = await inboxAs(bob, IOS_OPTIONS);
    const inbox = device.folderByType(FolderType.Inbox).serverId;

    // Clear-signed: the signed content's HTML as the body, the signature as smime.p7s.
    const signed = mail.get(signedSubject)!;
    expect(signed.messageClass).toBe('IPM.Note.SMIME.MultipartSigned');
    expect(signed.bodyType).toBe('2');
    expect(Buffer.from(signed.data).toString('utf8')).toContain(`Rollout on Monday – ${GREETING}`);
    expect(signed.attachments.map((a) => a.name)).toEqual(['smime.p7s']);

    // Encrypted: nothing readable in the body; the enveloped data as smime.p7m, which the device can fetch and
    // decrypt itself (Z-Push-contrib issue 190 shows devices taking it so).
    const encrypted = mail.get(encryptedSubject)!;
    expect(encrypted.messageClass).toBe('IPM.Note.SMIME');
    expect(Buffer.from(encrypted.data).toString('utf8')).not.toContain('Contract');
    expect(encrypted.attachments.map((a) => a.name)).toEqual(['smime.p7m']);
    const blob = await itemOperationsFetch(device, { fileReference: encrypted.attachments[0]!.fileReference });
    // ItemOperations Data is the attachment in base64 (MS-ASCMD §2.2.3.39.2).
    const der = Buffer.from(textOf(child(child(blob, 'Properties'), 'Data')), 'base64');
    expect(der.length).toBe(encrypted.attachments[0]!.size);
    expect(lab.verify(lab.decrypt(der, to, true)).toString('utf8')).toContain('Contract attached');

    // The MS-ASEMAIL example's Fetch (MIMESupport 2, Type 4): the stored message, byte for byte.
    for (const [subject, kind] of [
      [signedSubject, 'clear-signed'],
      [encryptedSubject, 'encrypted'],
    ] as const) {
      const fetch = await itemOperationsFetch(device, { collectionId: inbox, serverId: mail.get(subject)!.serverId }, [
        el('AirSync', 'MIMESupport', '2'),
        MIME_PREFERENCE,
      ]);
      expect(childText(fetch, 'Status')).toBe('1');
      const got = mailOf(mail.get(subject)!.serverId, child(fetch, 'Properties'));
      expect(got.bodyType).toBe('4');
      expect(Buffer.from(got.data).equals(stored.get(subject)!)).toBe(true);
      expectIntact(kind, got.data, to);
    }

    // Search (MS-ASCMD §2.2.3.110.2): with MIMESupport 1 and Type 4, a found S/MIME message comes as its MIME too.
    const found = await device.command(
      'Search',
      mailboxSearchRequest(
        [el('AirSync', 'CollectionId', inbox), el('Search', 'FreeText', encryptedSubject.split(' ').at(-1)!)],
        [el('Search', 'Range', '0-9'), el('AirSync', 'MIMESupport', '1'), MIME_PREFERENCE],
      ),
    );
    const results = children(child(child(found, 'Response', 'Search'), 'Store', 'Search'), 'Result', 'Search');
    expect(results).toHaveLength(1);
    const result = mailOf('', child(results[0], 'Properties', 'Search'));
    expect([result.messageClass, result.bodyType]).toEqual(['IPM.Note.SMIME', '4']);
    expect(Buffer.from(result.data).equals(stored.get(encryptedSubject)!)).toBe(true);
  });
});

describe('S/MIME mail from the device', () => {
  it('SendMail of clear-signed (quoted-printable and 8bit), opaque-signed and encrypted MIME, 14.1 WBXML and 12.1 message/rfc822: delivered and saved in Sent with the body untouched; signatures verify', async () => {
    const [alice, bob] = [createUser(services), createUser(services)];
    const from = lab.party(alice.email);
    const to = lab.party(bob.email);
    const device = new TestDevice(server, alice, undefined, '14.1');
    await device.folderSync();
    const old = new TestDevice(server, alice, undefined, '12.1');
    await old.folderSync();
    for (const [kind, encoding, version] of [
      ['clear-signed', 'quoted-printable', '14.1'],
      ['clear-signed', '8bit', '14.1'],
      ['opaque-signed', 'quoted-printable', '14.1'],
      ['encrypted', '8bit', '14.1'],
      ['clear-signed', 'quoted-printable', '12.1'],
    ] as const) {
      const subject = tag(`Sent ${kind}`);
      const mime = lab.message(kind, { from, to, subject, entity: letter(`From my phone, ${kind}`, encoding) });
      if (version === '14.1') expect(composeStatus(await compose(device, 'SendMail', mime)), kind).toBeUndefined();
      else {
        // The 12.x form (MS-ASCMD §2.2.1.17): the message itself as the body, SaveInSent=T in the query.
        const res = await old.send('SendMail', mime, {
          query: '&SaveInSent=T',
          headers: { 'Content-Type': 'message/rfc822' },
        });
        expect([res.status, res.bytes.length]).toEqual([200, 0]);
      }

      const delivered = await waitForStored(services, bob, (m) => m.email.subject === subject);
      const [sent] = (await readFolder(services, alice, 'Sent')).filter((m) => m.email.subject === subject);
      for (const [where, copy] of [
        ['delivered', delivered.source],
        ['Sent', sent!.source],
      ] as const) {
        const label = `${kind} (${encoding}, ${version}), ${where}`;
        // Postfix and the server add top-level fields (Received, Return-Path); the body stays byte for byte, and
        // the fields that say what it is are the device's.
        expect(bodyOf(copy).equals(bodyOf(mime)), label).toBe(true);
        expect(headerOf(copy, 'Content-Type'), label).toBe(headerOf(mime, 'Content-Type'));
        expect(headerOf(copy, 'Content-Transfer-Encoding'), label).toBe(headerOf(mime, 'Content-Transfer-Encoding'));
        expect(headerOf(copy, 'Message-ID'), label).toBe(headerOf(mime, 'Message-ID'));
        expectIntact(kind, copy, to);
      }
    }
  });

  it('SmartReply and SmartForward of signed or encrypted MIME without ReplaceMime: sent as the device made it, threaded, no original added', async () => {
    const [alice, bob, carol] = [createUser(services), createUser(services), createUser(services)];
    const [fromBob, toAlice, toCarol] = [lab.party(bob.email), lab.party(alice.email), lab.party(carol.email)];
    const originalSubject = tag('Budget draft');
    const secret = `confidential-${randomBytes(4).toString('hex')}`;
    await sendViaSmtp(
      services,
      alice.email,
      bob.email,
      makeMessage({
        subject: originalSubject,
        text: `The numbers: ${secret}\n`,
        messageId: `<budget-${randomBytes(4).toString('hex')}@example.test>`,
      }),
    );
    const original = await waitForStored(services, bob, (m) => m.email.subject === originalSubject);
    const { device, mail } = await inboxAs(bob, IOS_OPTIONS);
    const source = {
      folderId: device.folderByType(FolderType.Inbox).serverId,
      itemId: mail.get(originalSubject)!.serverId,
    };

    for (const [command, kind, to, recipient] of [
      ['SmartReply', 'clear-signed', toAlice, alice],
      ['SmartForward', 'encrypted', toCarol, carol],
    ] as const) {
      const subject = tag(`${command} ${kind}`);
      const mime = lab.message(kind, { from: fromBob, to, subject, entity: letter(`${command} from my phone`) });
      expect(composeStatus(await compose(device, command, mime, { source })), command).toBeUndefined();
      const delivered = await waitForStored(services, recipient, (m) => m.email.subject === subject);
      expect(bodyOf(delivered.source).equals(bodyOf(mime)), command).toBe(true);
      expect(delivered.source.toString('latin1'), command).not.toContain(secret);
      // Threaded to the original by top-level fields, outside the signature.
      expect(headerOf(delivered.source, 'In-Reply-To'), command).toBe(original.email.messageId);
      expectIntact(kind, delivered.source, to);
    }
  });
});
