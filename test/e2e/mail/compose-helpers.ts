/**
 * Helpers for the SendMail, SmartReply and SmartForward tests: the requests a phone sends, and reading what
 * arrived in a mailbox (whole sources, parsed with postal-mime).
 */
import PostalMime, { type Email } from 'postal-mime';
import { setTimeout as sleep } from 'node:timers/promises';
import { el, childText, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import type { DeviceResponse, TestDevice } from '../../device/device.ts';
import { withImap } from '../../services/seed.ts';
import type { TestServices, TestUser } from '../../services/types.ts';

export interface ComposeOptions {
  clientId?: string;
  saveInSent?: boolean;
  replaceMime?: boolean;
  source?: { folderId?: string; itemId?: string; longId?: string; instanceId?: string };
  forwardees?: { name?: string; email: string }[];
}

/** The 14.0+ WBXML body of SendMail, SmartReply or SmartForward. */
export function composeBody(
  command: 'SendMail' | 'SmartReply' | 'SmartForward',
  mime: Uint8Array | string,
  o: ComposeOptions = {},
): WbxmlElement {
  const source = o.source;
  return el('ComposeMail', command, [
    el('ComposeMail', 'ClientId', o.clientId ?? `c${Math.random().toString(36).slice(2)}`),
    o.saveInSent !== false && el('ComposeMail', 'SaveInSentItems'),
    source &&
      el('ComposeMail', 'Source', [
        source.folderId !== undefined && el('ComposeMail', 'FolderId', source.folderId),
        source.itemId !== undefined && el('ComposeMail', 'ItemId', source.itemId),
        source.longId !== undefined && el('ComposeMail', 'LongId', source.longId),
        source.instanceId !== undefined && el('ComposeMail', 'InstanceId', source.instanceId),
      ]),
    o.replaceMime === true && el('ComposeMail', 'ReplaceMime'),
    el('ComposeMail', 'Mime', typeof mime === 'string' ? new TextEncoder().encode(mime) : mime),
    (o.forwardees?.length ?? 0) > 0 &&
      el(
        'ComposeMail',
        'Forwardees',
        (o.forwardees ?? []).map((f) =>
          el('ComposeMail', 'Forwardee', [
            f.name !== undefined && el('ComposeMail', 'Name', f.name),
            el('ComposeMail', 'Email', f.email),
          ]),
        ),
      ),
  ]);
}

export function compose(
  device: TestDevice,
  command: 'SendMail' | 'SmartReply' | 'SmartForward',
  mime: Uint8Array | string,
  o: ComposeOptions = {},
): Promise<DeviceResponse> {
  return device.send(command, composeBody(command, mime, o));
}

/** The Status of a failed compose command; undefined for success (HTTP 200, empty body). */
export function composeStatus(res: DeviceResponse): number | undefined {
  if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
  if (res.bytes.length === 0) return undefined;
  return Number(childText(res.body, 'Status', 'ComposeMail'));
}

export interface StoredMessage {
  uid: number;
  flags: Set<string>;
  source: Buffer;
  email: Email;
  /** The raw value of a top-level header, or undefined. */
  header(name: string): string | undefined;
}

/** Every message of a folder, sources parsed. */
export async function readFolder(services: TestServices, user: TestUser, folder = 'INBOX'): Promise<StoredMessage[]> {
  const raw = await withImap(services, user, async (c) => {
    const box = await c.mailboxOpen(folder, { readOnly: true });
    if (box.exists === 0) return [];
    const out: { uid: number; flags: Set<string>; source: Buffer }[] = [];
    for await (const m of c.fetch('1:*', { uid: true, flags: true, source: true }))
      out.push({ uid: m.uid, flags: new Set(m.flags ?? []), source: Buffer.from(m.source ?? []) });
    return out;
  });
  return Promise.all(
    raw.map(async (m) => {
      const email = await PostalMime.parse(m.source, {
        forceRfc822Attachments: true,
        attachmentEncoding: 'arraybuffer',
      });
      return { ...m, email, header: (name: string) => email.headers.find((h) => h.key === name.toLowerCase())?.value };
    }),
  );
}

/** Waits until a folder holds a message that matches (delivery through Postfix takes a moment). */
export async function waitForStored(
  services: TestServices,
  user: TestUser,
  match: (m: StoredMessage) => boolean,
  folder = 'INBOX',
  timeoutMs = 10_000,
): Promise<StoredMessage> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = (await readFolder(services, user, folder)).find(match);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no matching message in ${user.email}/${folder} after ${timeoutMs} ms`);
    await sleep(150);
  }
}

/**
 * Whether anything with this subject turns up in the folder within `ms` (for "not delivered", and "delivered once"
 * after the first copy arrived: a second would have arrived as fast).
 */
export async function countAfter(
  services: TestServices,
  user: TestUser,
  subject: string,
  ms = 1_500,
  folder = 'INBOX',
): Promise<number> {
  await sleep(ms);
  return (await readFolder(services, user, folder)).filter((m) => m.email.subject === subject).length;
}
