import { describe, expect, it } from 'vitest';
import { el } from '../wbxml/tree.ts';
import { asSender, withSender } from './sender.ts';

describe('a replayed message is sent as the replay user', () => {
  it('sets From and Sender, folded lines included, and leaves the body alone', () => {
    const mime =
      'From: "Fake User"\r\n <fakeusername@example.test>\r\nSender: x@example.test\r\nTo: a@example.test\r\n\r\nFrom: the body\r\n';
    expect(asSender(mime, 'u1@example.test')).toBe(
      'From: u1@example.test\r\nSender: u1@example.test\r\nTo: a@example.test\r\n\r\nFrom: the body\r\n',
    );
  });
  it('keeps a message whose user is not an address', () => {
    expect(asSender('From: a@example.test\n\nx', 'alice')).toBe('From: a@example.test\n\nx');
  });
  it('rewrites the Mime of a SendMail tree, text or opaque', () => {
    const tree = el('ComposeMail', 'SendMail', [
      el('ComposeMail', 'ClientId', '1'),
      el('ComposeMail', 'Mime', new TextEncoder().encode('From: a@example.test\r\n\r\nhi')),
    ]);
    const mime = withSender(tree, 'u2@example.test').children[1]!;
    expect(new TextDecoder().decode(mime.opaque)).toBe('From: u2@example.test\r\n\r\nhi');
  });
});
