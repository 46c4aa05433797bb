import PostalMime from 'postal-mime';
import { describe, expect, it } from 'vitest';
import {
  addHeaderFields,
  composeSmart,
  InvalidMimeError,
  isSmimeMessage,
  parseMime,
  prepareOutgoing,
  referencesOf,
  removeHeaderFields,
} from './outgoing.ts';

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('latin1');
const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));

const DEVICE = [
  'From: "Alice A." <alice@example.test>',
  'To: Bob <bob@example.test>,',
  '  Team: carol@example.test, dave@example.test;',
  'Bcc: secret@example.test,',
  '\tother-secret@example.test',
  'Subject: =?UTF-8?B?R3LDvMOfZQ==?=',
  'Message-ID: <device-1@example.test>',
  'Date: Tue, 03 Mar 2026 10:00:00 +0000',
  'Content-Type: text/plain; charset=utf-8',
  '',
  'Body line',
  'Bcc: not a header, stays',
  '',
].join('\r\n');

describe('header block editing', () => {
  it('drops a field with its folded lines and leaves the body byte for byte', () => {
    const out = text(removeHeaderFields(bytes(DEVICE), ['bcc']));
    expect(out).not.toMatch(/secret/);
    expect(out).toContain('Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\nMessage-ID');
    expect(out.slice(out.indexOf('\r\n\r\n'))).toBe(DEVICE.slice(DEVICE.indexOf('\r\n\r\n')));
  });

  it('keeps LF-only messages LF-only, and binary bodies intact', () => {
    const body = Buffer.from([0x0a, 0xff, 0x00, 0xc3, 0x28, 0x0a]);
    const lf = new Uint8Array(
      Buffer.concat([Buffer.from('To: a@example.test\nBcc: b@example.test\nSubject: x\n'), body]),
    );
    const out = removeHeaderFields(lf, ['bcc']);
    expect(Buffer.from(out).equals(Buffer.concat([Buffer.from('To: a@example.test\nSubject: x\n'), body]))).toBe(true);
    expect(text(addHeaderFields(out, [['Date', 'Mon, 1 Jan 2024 00:00:00 +0000']]))).toMatch(
      /^Date: Mon, 1 Jan 2024 00:00:00 \+0000\nTo: a@example.test\n/,
    );
  });

  it('handles a message that is only a header', () => {
    expect(text(removeHeaderFields(bytes('To: a@example.test\r\nBcc: b@example.test\r\n'), ['bcc']))).toBe(
      'To: a@example.test\r\n\r\n',
    );
  });
});

describe('prepareOutgoing', () => {
  it('sends to To, Cc, Bcc and group members; Bcc stays in the full copy only', async () => {
    const out = await prepareOutgoing(bytes(DEVICE), { user: 'alice@example.test' });
    expect(out.envelope).toEqual({
      from: 'alice@example.test',
      to: [
        'bob@example.test',
        'carol@example.test',
        'dave@example.test',
        'secret@example.test',
        'other-secret@example.test',
      ],
    });
    expect(text(out.full)).toContain('Bcc: secret@example.test');
    const wire = text(out.wire);
    expect(wire.slice(0, wire.indexOf('\r\n\r\n'))).not.toMatch(/^bcc:/im);
    expect(wire).toContain('\r\nBcc: not a header, stays');
    expect(out.messageId).toBe('<device-1@example.test>');
    // Nothing was missing: the device's header is untouched.
    expect(text(out.full)).toBe(DEVICE);
  });

  it('adds Date, Message-ID and From (the user) when missing, and threading headers for a reply', async () => {
    const now = new Date(Date.UTC(2026, 2, 3, 10, 4, 5));
    const out = await prepareOutgoing(bytes('To: bob@example.test\r\nSubject: hi\r\n\r\nx\r\n'), {
      user: 'alice@example.test',
      inReplyTo: '<orig@example.test>',
      references: ['<first@example.test>', '<orig@example.test>'],
      now,
    });
    const parsed = await PostalMime.parse(out.wire);
    expect(parsed.from?.address).toBe('alice@example.test');
    expect(parsed.headers.find((h) => h.key === 'date')?.value).toBe('Tue, 03 Mar 2026 10:04:05 +0000');
    expect(parsed.messageId).toMatch(/^<[0-9a-f-]{36}@example\.test>$/);
    expect(out.messageId).toBe(parsed.messageId);
    expect(parsed.inReplyTo).toBe('<orig@example.test>');
    expect(parsed.references).toBe('<first@example.test> <orig@example.test>');
  });

  it('adds Forwardees to To (once) and to the envelope', async () => {
    const out = await prepareOutgoing(
      bytes('From: alice@example.test\r\nTo: bob@example.test\r\nSubject: fwd\r\n\r\nx\r\n'),
      {
        user: 'alice@example.test',
        extraRecipients: [
          { name: 'Jürgen', address: 'juergen@example.test' },
          { name: '', address: 'BOB@example.test' },
        ],
      },
    );
    expect(out.envelope.to).toEqual(['bob@example.test', 'juergen@example.test']);
    const parsed = await PostalMime.parse(out.wire);
    expect(parsed.to?.map((a) => [a.name, a.address])).toEqual([
      ['', 'bob@example.test'],
      ['Jürgen', 'juergen@example.test'],
    ]);
  });

  it('refuses what is not a message', async () => {
    await expect(parseMime(new Uint8Array(0))).rejects.toBeInstanceOf(InvalidMimeError);
    await expect(parseMime(new Uint8Array([0x03, 0x01, 0x6a, 0x00]))).rejects.toBeInstanceOf(InvalidMimeError);
    await expect(parseMime(bytes('just some text\r\n'))).rejects.toBeInstanceOf(InvalidMimeError);
  });
});

const ORIGINAL = [
  'From: Bob Builder <bob@example.test>',
  'To: alice@example.test',
  'Subject: Plans',
  'Date: Mon, 2 Mar 2026 09:00:00 +0100',
  'Message-ID: <plans-2@example.test>',
  'In-Reply-To: <plans-1@example.test>',
  'References: <plans-0@example.test> <plans-1@example.test>',
  'MIME-Version: 1.0',
  'Content-Type: multipart/mixed; boundary="b"',
  '',
  '--b',
  'Content-Type: text/plain; charset=utf-8',
  '',
  'First line',
  '> earlier quote',
  '',
  'Last line',
  '--b',
  'Content-Type: application/pdf; name="plans.pdf"',
  'Content-Disposition: attachment; filename="plans.pdf"',
  'Content-Transfer-Encoding: base64',
  '',
  Buffer.from('%PDF plans').toString('base64'),
  '--b--',
  '',
].join('\r\n');

const REPLY =
  'From: alice@example.test\r\nTo: bob@example.test\r\nSubject: Re: Plans\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSounds good.\r\n';

describe('composeSmart', () => {
  it('reply: new text, then the original quoted under who wrote it; text only when neither side has HTML; no attachments', async () => {
    const out = await PostalMime.parse(await composeSmart('reply', bytes(REPLY), bytes(ORIGINAL)));
    expect(out.text).toBe(
      'Sounds good.\n\nOn Mon, 2 Mar 2026 09:00:00 +0100, Bob Builder <bob@example.test> wrote:\n> First line\n>> earlier quote\n>\n> Last line\n',
    );
    expect(out.html).toBeUndefined();
    expect(out.attachments).toEqual([]);
    expect(out.inReplyTo).toBe('<plans-2@example.test>');
    expect(out.references).toBe('<plans-0@example.test> <plans-1@example.test> <plans-2@example.test>');
    expect(out.subject).toBe('Re: Plans');
  });

  it('forward: the original under a header block, with its attachments', async () => {
    const out = await PostalMime.parse(
      await composeSmart('forward', bytes(REPLY.replace('Re:', 'Fwd:')), bytes(ORIGINAL)),
    );
    expect(out.text).toContain(
      'Sounds good.\n\n---------- Forwarded message ----------\nFrom: Bob Builder <bob@example.test>\nDate: Mon, 2 Mar 2026 09:00:00 +0100\nSubject: Plans\nTo: alice@example.test\n\nFirst line',
    );
    expect(
      out.attachments.map((a) => [a.filename, a.mimeType, Buffer.from(a.content as ArrayBuffer).toString()]),
    ).toEqual([['plans.pdf', 'application/pdf', '%PDF plans']]);
  });

  it('keeps Bcc for the Sent copy, and the threading headers the device set', async () => {
    const device =
      'From: alice@example.test\r\nTo: bob@example.test\r\nBcc: boss@example.test\r\nIn-Reply-To: <mine@example.test>\r\nImportance: high\r\nSubject: Re: Plans\r\n\r\nOk.\r\n';
    const composed = await composeSmart('reply', bytes(device), bytes(ORIGINAL));
    const out = await PostalMime.parse(composed);
    expect(out.bcc?.[0]?.address).toBe('boss@example.test');
    expect(out.inReplyTo).toBe('<mine@example.test>');
    expect(out.headers.find((h) => h.key === 'importance')?.value).toBe('high');
  });

  it('referencesOf: References, else In-Reply-To, then the Message-ID', async () => {
    const parsed = await PostalMime.parse(bytes('Message-ID: <c@x>\r\nIn-Reply-To: <b@x>\r\n\r\n'));
    expect(referencesOf(parsed)).toEqual(['<b@x>', '<c@x>']);
  });
});

describe('isSmimeMessage', () => {
  const withType = (contentType: string): Uint8Array =>
    bytes(`From: a@example.test\r\nContent-Type: ${contentType}\r\n\r\nbody\r\n`);

  it('knows clear-signed, opaque-signed and encrypted messages by their top-level Content-Type (RFC 8551 §3)', () => {
    expect(
      isSmimeMessage(
        withType('multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256;\r\n\tboundary="b"'),
      ),
    ).toBe(true);
    expect(
      isSmimeMessage(withType('Multipart/Signed; micalg=sha1; protocol=application/x-pkcs7-signature; boundary=b')),
    ).toBe(true);
    expect(isSmimeMessage(withType('application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"'))).toBe(true);
    expect(isSmimeMessage(withType('application/x-pkcs7-mime; smime-type=signed-data'))).toBe(true);
  });

  it('leaves other mail alone: PGP signatures, plain and mixed messages, an S/MIME part below the top', () => {
    expect(isSmimeMessage(withType('multipart/signed; protocol="application/pgp-signature"; boundary=b'))).toBe(false);
    expect(isSmimeMessage(withType('text/plain; charset=utf-8'))).toBe(false);
    expect(isSmimeMessage(bytes(DEVICE))).toBe(false);
    expect(isSmimeMessage(bytes('From: a@example.test\r\n\r\nContent-Type: application/pkcs7-mime\r\n'))).toBe(false);
  });
});
