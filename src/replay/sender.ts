/**
 * A replayed message goes out as the replay's user: the server sends only from the signed-in user's own addresses
 * (README, Security model: Sending), so the From and Sender of a captured SendMail, SmartReply or SmartForward
 * (MS-ASCMD §2.2.3.108 Mime; the 12.x message/rfc822 body) name the replay's user instead of the captured one.
 */
import type { WbxmlElement } from '../wbxml/tree.ts';

/** The commands whose body carries a message to send. */
export const SENDING_COMMANDS: ReadonlySet<string> = new Set(['sendmail', 'smartreply', 'smartforward']);

/** `mime` with its From and Sender header fields (RFC 5322 §3.6.2, folded lines included) set to `user`. */
export function asSender(mime: string, user: string): string {
  if (!user.includes('@')) return mime;
  const end = mime.search(/\r?\n\r?\n/);
  const head = end < 0 ? mime : mime.slice(0, end);
  const rest = end < 0 ? '' : mime.slice(end);
  const newline = head.includes('\r\n') ? '\r\n' : '\n';
  const fixed = head.replace(
    /^(From|Sender):[^\n]*(?:\n[ \t][^\n]*)*/gim,
    (_m, name: string) => `${name}: ${user}${newline === '\r\n' ? '\r' : ''}`,
  );
  return fixed + rest;
}

/** The request tree with every ComposeMail Mime rewritten by asSender (text or opaque bytes, as captured). */
export function withSender(root: WbxmlElement, user: string): WbxmlElement {
  if (root.ns === 'ComposeMail' && root.tag === 'Mime') {
    if (root.text !== undefined) return { ...root, text: asSender(root.text, user) };
    if (root.opaque !== undefined) {
      const binary = asSender(String.fromCharCode(...root.opaque), user);
      return { ...root, opaque: Uint8Array.from(binary, (c) => c.charCodeAt(0)) };
    }
    return root;
  }
  return { ...root, children: root.children.map((c) => withSender(c, user)) };
}
