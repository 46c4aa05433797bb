/**
 * Conversations (MS-ASEMAIL §2.2.2.20 ConversationId, §2.2.2.21 ConversationIndex; MS-ASCON): which messages belong
 * together, derived from each message's own headers only, so that the same conversation has the same id in every
 * folder, on every device and in every request, with no index to keep.
 *
 * The conversation is named by its root message: the first id of References (RFC 5322 §3.6.4: a reply's References
 * begins with the thread's first message, and trimming keeps the first), else In-Reply-To, else the message's own
 * Message-ID; a message without any of them is grouped by its topic. A reply that carries only In-Reply-To to a
 * message that was itself a reply names that message, not the root: such a client splits the thread for us too.
 */

/** The headers that decide a message's conversation (raw values; ids in angle brackets). */
export interface ThreadHeaders {
  references?: string;
  inReplyTo?: string;
  messageId?: string;
  /** Thread-Topic, else the subject without reply/forward prefixes. */
  topic?: string;
}

/** The root message id a message's conversation is named by, lower-cased without brackets; undefined without any. */
export function conversationRoot(h: ThreadHeaders): string | undefined {
  const firstId = (value: string | undefined): string | undefined =>
    /<([^<>\s]+)>/.exec(value ?? '')?.[1] ?? (value?.trim().split(/\s+/)[0] || undefined);
  return (firstId(h.references) || firstId(h.inReplyTo) || firstId(h.messageId))?.toLowerCase();
}

/** email2:ConversationId: the first 16 bytes of SHA-1 over `id:<root>` (or `topic:<topic>`). */
export function conversationIdOf(h: ThreadHeaders): Uint8Array {
  const root = conversationRoot(h);
  const key = root ? `id:${root}` : `topic:${(h.topic ?? '').toLowerCase()}`;
  return sha1(new TextEncoder().encode(key)).subarray(0, 16);
}

/** A ConversationId as lower-case hex: how the state store names a conversation. */
export function conversationHex(id: Uint8Array): string {
  return Array.from(id, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * SHA-1 (FIPS 180-4), synchronous: crypto.subtle.digest would cost a thread-pool round trip per message in Node for
 * a hash over a few dozen bytes. Only used to derive stable ids, not for security.
 */
export function sha1(data: Uint8Array): Uint8Array {
  const bitLength = data.length * 8;
  const padded = new Uint8Array(((data.length + 8) >> 6) * 64 + 64);
  padded.set(data);
  padded[data.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(bitLength / 2 ** 32));
  view.setUint32(padded.length - 4, bitLength >>> 0);
  let h0 = 0x67452301,
    h1 = 0xefcdab89,
    h2 = 0x98badcfe,
    h3 = 0x10325476,
    h4 = 0xc3d2e1f0;
  const w = new Uint32Array(80);
  for (let offset = 0; offset < padded.length; offset += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(offset + 4 * i);
    for (let i = 16; i < 80; i++) {
      const x = w[i - 3]! ^ w[i - 8]! ^ w[i - 14]! ^ w[i - 16]!;
      w[i] = (x << 1) | (x >>> 31);
    }
    let a = h0,
      b = h1,
      c = h2,
      d = h3,
      e = h4;
    for (let i = 0; i < 80; i++) {
      const f = i < 20 ? (b & c) | (~b & d) : i < 40 ? b ^ c ^ d : i < 60 ? (b & c) | (b & d) | (c & d) : b ^ c ^ d;
      const k = i < 20 ? 0x5a827999 : i < 40 ? 0x6ed9eba1 : i < 60 ? 0x8f1bbcdc : 0xca62c1d6;
      const t = (((a << 5) | (a >>> 27)) + f + e + k + w[i]!) >>> 0;
      e = d;
      d = c;
      c = (b << 30) | (b >>> 2);
      b = a;
      a = t;
    }
    h0 = (h0 + a) >>> 0;
    h1 = (h1 + b) >>> 0;
    h2 = (h2 + c) >>> 0;
    h3 = (h3 + d) >>> 0;
    h4 = (h4 + e) >>> 0;
  }
  const out = new Uint8Array(20);
  const outView = new DataView(out.buffer);
  [h0, h1, h2, h3, h4].forEach((h, i) => {
    outView.setUint32(4 * i, h);
  });
  return out;
}

/**
 * email2:ConversationIndex in Outlook's header-block layout ([MS-OXOMSG] §2.2.1.3): 0x01, the high 40 bits of the
 * message's FILETIME (its Date), and a 16-byte GUID, here the conversation id. No child blocks.
 */
export function conversationIndexOf(conversationId: Uint8Array, date: Date): Uint8Array {
  const index = new Uint8Array(22);
  index[0] = 0x01;
  const fileTime = (BigInt(Math.max(0, date.getTime())) + 11_644_473_600_000n) * 10_000n;
  for (let i = 0; i < 5; i++) index[1 + i] = Number((fileTime >> BigInt(56 - 8 * i)) & 0xffn);
  index.set(conversationId.subarray(0, 16), 6);
  return index;
}
