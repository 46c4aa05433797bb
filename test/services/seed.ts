// Test helpers for the real services started by global-setup.ts:
//   const services = inject('services');
//   await resetUser(services, 'alice');
//   await seedMailbox(services, 'alice', 'INBOX', sampleMessages());
// Users: pass a TestUser, or the name/email of a fixed user (alice, bob, carol).
// Test files that run in parallel should not share a user they reset: take a fresh
// one with createUser(services) instead.
import { randomBytes } from 'node:crypto';
import { ImapFlow, type FetchMessageObject, type ListResponse } from 'imapflow';
import nodemailer from 'nodemailer';
import { setTimeout as sleep } from 'node:timers/promises';
import { appendUserFiles, makeUser } from './accounts.ts';
import { uidOf } from './dav-builders.ts';
import { addressesOf, makeMessage, messageIdOf, type MessageOptions } from './message-builder.ts';
import type { TestServices, TestUser } from './types.ts';

export * from './message-builder.ts';
export * from './dav-builders.ts';

/** A TestUser, or the name (`alice`) or email of one of `services.users`. */
export type UserRef = TestUser | string;

export function getUser(services: TestServices, ref: UserRef): TestUser {
  if (typeof ref !== 'string') return ref;
  const u = services.users.find((x) => x.name === ref || x.email === ref);
  if (!u) throw new Error(`No test user ${ref}; known: ${services.users.map((x) => x.name).join(', ')}`);
  return u;
}

/**
 * Adds a new account to Dovecot and Radicale (both re-read their user files), with
 * an empty mailbox and no DAV collections. Use one per test file for isolation.
 */
export function createUser(services: TestServices, name = `u${randomBytes(5).toString('hex')}`): TestUser {
  const user = makeUser(name);
  appendUserFiles(services.dir, user);
  return user;
}

// ---------------------------------------------------------------- IMAP

export interface ImapConnectOptions {
  /** Log in through the master user (`alice*syncmaster`). */
  asMaster?: boolean;
  /** Login name to use instead of the canonical email (e.g. the bare `alice`). */
  login?: string;
  /** ENABLE CONDSTORE + QRESYNC (default true). */
  qresync?: boolean;
}

/**
 * An authenticated ImapFlow connection (logger off, auto-IDLE off: call `idle()` yourself).
 * Call `logout()` when done.
 */
export async function imapConnect(
  services: TestServices,
  ref: UserRef,
  opts: ImapConnectOptions = {},
): Promise<ImapFlow> {
  const user = getUser(services, ref);
  const login = opts.login ?? user.email;
  const auth = opts.asMaster
    ? { user: `${login}${services.master.separator}${services.master.user}`, pass: services.master.password }
    : { user: login, pass: user.password };
  const client = new ImapFlow({
    host: services.imap.host,
    port: services.imap.port,
    secure: false,
    // STARTTLS, required (the test CA is trusted through NODE_EXTRA_CA_CERTS).
    doSTARTTLS: true,
    auth,
    logger: false,
    qresync: opts.qresync ?? true,
    disableAutoIdle: true,
  });
  // Without a listener a socket error would be thrown as an uncaught 'error' event.
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Runs `fn` with a connection and always logs out. */
export async function withImap<T>(
  services: TestServices,
  ref: UserRef,
  fn: (client: ImapFlow) => Promise<T>,
  opts: ImapConnectOptions = {},
): Promise<T> {
  const client = await imapConnect(services, ref, opts);
  try {
    return await fn(client);
  } finally {
    await client.logout().catch(() => client.close());
  }
}

/** Creates (if missing) and subscribes a folder; nested paths use `/`, e.g. `Projects/2026`. */
export async function createMailbox(services: TestServices, ref: UserRef, path: string): Promise<void> {
  await withImap(services, ref, async (c) => {
    await c.mailboxCreate(path);
    await c.mailboxSubscribe(path);
  });
}

/** Raw message, or options for makeMessage(), plus the IMAP state to store it with. */
export interface SeedMessage {
  message: Buffer | string | MessageOptions;
  /** e.g. `\\Seen`, `\\Flagged`, `\\Answered`, `$Forwarded`. */
  flags?: readonly string[];
  /** IMAP INTERNALDATE (received time); defaults to the server's now. */
  internalDate?: Date;
}

export interface SeededMessage {
  uid: number;
  messageId: string | null;
  raw: Buffer;
}

function rawOf(m: SeedMessage['message']): Buffer {
  if (Buffer.isBuffer(m)) return m;
  return typeof m === 'string' ? Buffer.from(m) : makeMessage(m);
}

/** APPENDs messages to `folder` (created if missing) and returns their UIDs (UIDPLUS). */
export async function seedMailbox(
  services: TestServices,
  ref: UserRef,
  folder: string,
  messages: readonly SeedMessage[],
): Promise<SeededMessage[]> {
  return withImap(services, ref, async (c) => {
    if (folder !== 'INBOX') await c.mailboxCreate(folder);
    const out: SeededMessage[] = [];
    for (const m of messages) {
      const raw = rawOf(m.message);
      const res = await c.append(folder, raw, [...(m.flags ?? [])], m.internalDate);
      if (!res || res.uid === undefined) throw new Error(`APPEND to ${folder} failed`);
      out.push({ uid: res.uid, messageId: messageIdOf(raw), raw });
    }
    return out;
  });
}

/**
 * Five realistic messages: plain text (read, 3 days old), HTML alternative (unread),
 * with attachments (read + flagged), non-ASCII subject/sender, and a reply (answered).
 */
export function sampleMessages(opts: { to?: string; from?: string; now?: Date } = {}): SeedMessage[] {
  const to = opts.to ?? 'Alice Example <alice@example.test>';
  const from = opts.from ?? 'Bob Builder <bob@example.test>';
  const now = opts.now ?? new Date();
  const ago = (hours: number): Date => new Date(now.getTime() - hours * 3_600_000);
  const firstId = `${randomBytes(6).toString('hex')}@example.test`;
  // A 1x1 PNG and a tiny PDF-like file: real bytes, base64 in the message.
  const png = Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
    'base64',
  );
  const pdf = Buffer.from('%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n');
  return [
    {
      message: {
        from,
        to,
        subject: 'Project kickoff',
        text: 'Hi Alice,\n\nthe kickoff is on Monday at 10:00.\n\nBob\n',
        date: ago(72),
        messageId: firstId,
      },
      flags: ['\\Seen'],
      internalDate: ago(72),
    },
    {
      message: {
        from: 'Newsletter <news@lists.example.org>',
        to,
        subject: 'Your weekly digest',
        text: 'Top stories this week:\n* Item one\n* Item two\n',
        html: '<html><body><h1>Top stories</h1><ul><li>Item <b>one</b></li><li>Item two</li></ul></body></html>',
        date: ago(48),
      },
      internalDate: ago(48),
    },
    {
      message: {
        from,
        to,
        cc: 'Carol <carol@example.test>',
        subject: 'Quarterly report',
        text: 'Please find the report attached.\n',
        html: '<p>Please find the report attached.</p><p><img src="cid:logo@example.test"></p>',
        attachments: [
          { filename: 'report-Q1.pdf', contentType: 'application/pdf', content: pdf },
          { filename: 'logo.png', contentType: 'image/png', content: png, contentId: 'logo@example.test' },
        ],
        importance: 'high',
        date: ago(24),
      },
      flags: ['\\Seen', '\\Flagged'],
      internalDate: ago(24),
    },
    {
      message: {
        from: 'Jürgen Müller <juergen@example.test>',
        to,
        subject: 'Grüße aus München – Übersicht für März 📅',
        text: 'Hallo Alice,\n\nviele Grüße aus München! Die Übersicht für März: Straße, Größe, Maß.\n\nJürgen\n',
        date: ago(5),
      },
      internalDate: ago(5),
    },
    {
      message: {
        from: to,
        to: from,
        subject: 'Re: Project kickoff',
        text: 'Monday works for me.\n\n> the kickoff is on Monday at 10:00.\n',
        inReplyTo: firstId,
        references: [firstId],
        date: ago(1),
      },
      flags: ['\\Seen', '\\Answered'],
      internalDate: ago(1),
    },
  ];
}

/** What waitForMessage() and listMessages() report about a message. */
export interface MailSummary {
  uid: number;
  subject: string;
  from: string[];
  to: string[];
  messageId: string | null;
  flags: string[];
  internalDate: Date | null;
  size: number;
}

function summarize(m: FetchMessageObject): MailSummary {
  const env = m.envelope;
  const internal = m.internalDate === undefined ? null : new Date(m.internalDate);
  return {
    uid: m.uid,
    subject: env?.subject ?? '',
    from: (env?.from ?? []).map((a) => a.address ?? ''),
    to: (env?.to ?? []).map((a) => a.address ?? ''),
    messageId: env?.messageId ?? null,
    // \Recent is per session (whoever selects first); leave it out so results are stable.
    flags: [...(m.flags ?? [])].filter((f) => f !== '\\Recent'),
    internalDate: internal,
    size: m.size ?? 0,
  };
}

async function fetchSummaries(c: ImapFlow, folder: string): Promise<MailSummary[]> {
  const mailbox = await c.mailboxOpen(folder, { readOnly: true });
  if (mailbox.exists === 0) return [];
  const out: MailSummary[] = [];
  for await (const m of c.fetch('1:*', { uid: true, envelope: true, flags: true, internalDate: true, size: true }))
    out.push(summarize(m));
  return out;
}

export async function listMessages(services: TestServices, ref: UserRef, folder = 'INBOX'): Promise<MailSummary[]> {
  return withImap(services, ref, (c) => fetchSummaries(c, folder));
}

/** Polls `folder` until a message matches (e.g. one sent via SMTP has been delivered). */
export async function waitForMessage(
  services: TestServices,
  ref: UserRef,
  predicate: (m: MailSummary) => boolean,
  timeoutMs = 10_000,
  folder = 'INBOX',
): Promise<MailSummary> {
  return withImap(services, ref, async (c) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = (await fetchSummaries(c, folder)).find(predicate);
      if (found) return found;
      if (Date.now() > deadline)
        throw new Error(`No matching message in ${getUser(services, ref).email}/${folder} after ${timeoutMs} ms`);
      await sleep(150);
    }
  });
}

function isSpecial(box: ListResponse): boolean {
  return box.path.toUpperCase() === 'INBOX' || box.specialUse !== undefined;
}

/** Empties INBOX and the special folders and deletes every other folder (IMAP), then every DAV collection. */
export async function resetUser(services: TestServices, ref: UserRef, opts: { dav?: boolean } = {}): Promise<void> {
  await withImap(services, ref, async (c) => {
    const boxes = await c.list();
    // Deepest first, so children go before their parents.
    const extra = boxes
      .filter((b) => !isSpecial(b))
      .sort((a, b) => b.path.split(b.delimiter).length - a.path.split(a.delimiter).length);
    for (const b of extra) {
      // Maildir parents like `Projects` of `Projects/2026` may be only implied (\NonExistent).
      if (b.flags.has('\\NonExistent')) continue;
      await c.mailboxDelete(b.path).catch((err: unknown) => {
        if ((err as { serverResponseCode?: string }).serverResponseCode !== 'NONEXISTENT') throw err;
      });
    }
    for (const b of boxes.filter(isSpecial)) {
      const box = await c.mailboxOpen(b.path);
      if (box.exists > 0) await c.messageDelete('1:*');
    }
    await c.mailboxClose().catch(() => false);
  });
  if (opts.dav ?? true) await resetDav(services, ref);
}

// ---------------------------------------------------------------- CalDAV / CardDAV

/** The user's principal (= calendar and address book home) in Radicale. */
export function principalUrl(services: TestServices, ref: UserRef): string {
  return new URL(`${encodeURIComponent(getUser(services, ref).email)}/`, services.caldavUrl).href;
}

export interface DavRequestOptions {
  body?: string;
  depth?: '0' | '1' | 'infinity';
  contentType?: string;
  headers?: Readonly<Record<string, string>>;
  /** Log in with this name instead of the email (e.g. the bare `alice`). */
  login?: string;
}

/** An authenticated WebDAV request with fetch (Basic auth). */
export async function davRequest(
  services: TestServices,
  ref: UserRef,
  method: string,
  url: string,
  opts: DavRequestOptions = {},
): Promise<Response> {
  const user = getUser(services, ref);
  const headers: Record<string, string> = {
    Authorization: `Basic ${Buffer.from(`${opts.login ?? user.email}:${user.password}`).toString('base64')}`,
    ...opts.headers,
  };
  if (opts.depth) headers.Depth = opts.depth;
  if (opts.body !== undefined) headers['Content-Type'] = opts.contentType ?? 'application/xml; charset=utf-8';
  return fetch(new URL(url, services.caldavUrl), { method, headers, body: opts.body });
}

async function expectOk(res: Response, what: string): Promise<void> {
  if (!res.ok) throw new Error(`${what}: HTTP ${res.status} ${await res.text()}`);
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** hrefs of the collections directly under the principal. */
async function listCollections(services: TestServices, ref: UserRef): Promise<string[]> {
  const home = principalUrl(services, ref);
  const res = await davRequest(services, ref, 'PROPFIND', home, {
    depth: '1',
    body: '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><resourcetype/></prop></propfind>',
  });
  await expectOk(res, `PROPFIND ${home}`);
  const hrefs = [...(await res.text()).matchAll(/<(?:\w+:)?href>([^<]+)<\/(?:\w+:)?href>/g)].map((m) => m[1] ?? '');
  const homePath = new URL(home).pathname;
  return [...new Set(hrefs)].filter((h) => h !== homePath && h.startsWith(homePath));
}

async function resetDav(services: TestServices, ref: UserRef): Promise<void> {
  for (const href of await listCollections(services, ref)) {
    await expectOk(await davRequest(services, ref, 'DELETE', href), `DELETE ${href}`);
  }
}

async function collectionExists(services: TestServices, ref: UserRef, url: string): Promise<boolean> {
  const res = await davRequest(services, ref, 'PROPFIND', url, {
    depth: '0',
    body: '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><resourcetype/></prop></propfind>',
  });
  await res.arrayBuffer();
  return res.status === 207;
}

export interface DavSeedResult {
  /** Absolute URL of the collection, with trailing slash. */
  collectionUrl: string;
  items: { url: string; uid: string; etag: string | null }[];
}

async function putItems(
  services: TestServices,
  ref: UserRef,
  collectionUrl: string,
  texts: readonly string[],
  ext: 'ics' | 'vcf',
): Promise<DavSeedResult['items']> {
  const items: DavSeedResult['items'] = [];
  for (const text of texts) {
    const uid = uidOf(text) ?? randomBytes(8).toString('hex');
    const url = new URL(`${encodeURIComponent(uid)}.${ext}`, collectionUrl).href;
    const res = await davRequest(services, ref, 'PUT', url, {
      body: text,
      contentType: ext === 'ics' ? 'text/calendar; charset=utf-8' : 'text/vcard; charset=utf-8',
    });
    await expectOk(res, `PUT ${url}`);
    items.push({ url, uid, etag: res.headers.get('etag') });
  }
  return items;
}

export interface CalendarOptions {
  displayName?: string;
  /** Components the calendar accepts (default VEVENT; use VTODO for a task list). */
  components?: readonly ('VEVENT' | 'VTODO')[];
  color?: string;
}

/** Creates the calendar (MKCALENDAR) if missing and PUTs each iCalendar text as `<UID>.ics`. */
export async function seedCalendar(
  services: TestServices,
  ref: UserRef,
  calendarName: string,
  icsEvents: readonly string[],
  opts: CalendarOptions = {},
): Promise<DavSeedResult> {
  const collectionUrl = new URL(`${encodeURIComponent(calendarName)}/`, principalUrl(services, ref)).href;
  if (!(await collectionExists(services, ref, collectionUrl))) {
    const comps = (opts.components ?? ['VEVENT']).map((c) => `<C:comp name="${c}"/>`).join('');
    const color = opts.color ? `<I:calendar-color>${xmlEscape(opts.color)}</I:calendar-color>` : '';
    const body =
      '<?xml version="1.0" encoding="utf-8"?>' +
      '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:I="http://apple.com/ns/ical/">' +
      `<D:set><D:prop><D:displayname>${xmlEscape(opts.displayName ?? calendarName)}</D:displayname>` +
      `<C:supported-calendar-component-set>${comps}</C:supported-calendar-component-set>${color}</D:prop></D:set></C:mkcalendar>`;
    await expectOk(
      await davRequest(services, ref, 'MKCALENDAR', collectionUrl, { body }),
      `MKCALENDAR ${collectionUrl}`,
    );
  }
  return { collectionUrl, items: await putItems(services, ref, collectionUrl, icsEvents, 'ics') };
}

/**
 * A new address book holding all the vCards, written by one PUT of them all to the collection URL (Radicale's
 * whole-collection upload; it names each item `<UID>.vcf` as a PUT of its own would). Radicale checks a single PUT's
 * UID against every item already in the collection, so n single PUTs cost O(n²): 500 contacts took minutes.
 * Replaces any collection of that name; the display name is set afterwards (PROPPATCH, RFC 4918 §9.2).
 */
async function putWholeAddressBook(
  services: TestServices,
  ref: UserRef,
  collectionUrl: string,
  vcards: readonly string[],
  displayName: string,
): Promise<DavSeedResult['items']> {
  const uids = vcards.map((text) => {
    const uid = uidOf(text);
    if (!uid || !/^[\w.-]+$/.test(uid)) throw new Error(`a whole-collection seed needs plain UIDs, not ${uid}`);
    return uid;
  });
  const body = vcards.map((t) => (t.endsWith('\n') ? t : `${t}\r\n`)).join('');
  await expectOk(
    await davRequest(services, ref, 'PUT', collectionUrl, { body, contentType: 'text/vcard; charset=utf-8' }),
    `PUT ${collectionUrl}`,
  );
  await expectOk(
    await davRequest(services, ref, 'PROPPATCH', collectionUrl, {
      body:
        '<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>' +
        `<D:displayname>${xmlEscape(displayName)}</D:displayname></D:prop></D:set></D:propertyupdate>`,
    }),
    `PROPPATCH ${collectionUrl}`,
  );
  const listing = await davRequest(services, ref, 'PROPFIND', collectionUrl, {
    depth: '1',
    body: '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getetag/></prop></propfind>',
  });
  await expectOk(listing, `PROPFIND ${collectionUrl}`);
  const etags = new Map<string, string>();
  for (const [, response] of (await listing.text()).matchAll(/<(?:\w+:)?response>([\s\S]*?)<\/(?:\w+:)?response>/g)) {
    const href = /<(?:\w+:)?href>([^<]+)<\//.exec(response ?? '')?.[1];
    const etag = /<(?:\w+:)?getetag>([^<]+)<\//.exec(response ?? '')?.[1];
    if (href && etag) etags.set(new URL(href, collectionUrl).href, etag.replace(/&quot;/g, '"'));
  }
  return uids.map((uid) => {
    const url = new URL(`${uid}.vcf`, collectionUrl).href;
    if (!etags.has(url)) throw new Error(`PUT ${collectionUrl}: no item ${url} afterwards`);
    return { url, uid, etag: etags.get(url) ?? null };
  });
}

/**
 * Creates the address book (extended MKCOL, RFC 5689) if missing and PUTs each vCard as `<UID>.vcf`. `wholeCollection`
 * (for hundreds of cards) instead writes a new address book with one PUT (putWholeAddressBook).
 */
export async function seedAddressBook(
  services: TestServices,
  ref: UserRef,
  bookName: string,
  vcards: readonly string[],
  opts: { displayName?: string; wholeCollection?: boolean } = {},
): Promise<DavSeedResult> {
  const collectionUrl = new URL(`${encodeURIComponent(bookName)}/`, principalUrl(services, ref)).href;
  if (opts.wholeCollection) {
    const items = await putWholeAddressBook(services, ref, collectionUrl, vcards, opts.displayName ?? bookName);
    return { collectionUrl, items };
  }
  if (!(await collectionExists(services, ref, collectionUrl))) {
    const body =
      '<?xml version="1.0" encoding="utf-8"?>' +
      '<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:set><D:prop>' +
      '<D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>' +
      `<D:displayname>${xmlEscape(opts.displayName ?? bookName)}</D:displayname></D:prop></D:set></D:mkcol>`;
    await expectOk(await davRequest(services, ref, 'MKCOL', collectionUrl, { body }), `MKCOL ${collectionUrl}`);
  }
  return { collectionUrl, items: await putItems(services, ref, collectionUrl, vcards, 'vcf') };
}

// ---------------------------------------------------------------- SMTP

export interface SmtpResult {
  accepted: string[];
  rejected: string[];
  response: string;
  messageId: string | null;
}

function rawForSend(from: string, recipients: readonly string[], message: Buffer | string | MessageOptions): Buffer {
  if (Buffer.isBuffer(message) || typeof message === 'string') return Buffer.from(message);
  return makeMessage({ from, to: recipients, ...message });
}

async function submit(
  host: string,
  port: number,
  lmtp: boolean,
  from: string,
  to: string | readonly string[],
  message: Buffer | string | MessageOptions,
): Promise<SmtpResult> {
  const recipients = typeof to === 'string' ? [to] : [...to];
  const raw = rawForSend(from, recipients, message);
  const transport = nodemailer.createTransport({ host, port, secure: false, ignoreTLS: true, lmtp });
  try {
    const envelope = { from: addressesOf(from)[0] ?? from, to: recipients.flatMap((r) => addressesOf(r)) };
    const info = await transport.sendMail({ envelope, raw });
    return {
      accepted: info.accepted.map(String),
      rejected: info.rejected.map(String),
      response: info.response,
      messageId: messageIdOf(raw),
    };
  } finally {
    transport.close();
  }
}

/**
 * Submits a message to Postfix (no auth; loopback is trusted), which relays the test
 * domain into Dovecot. `to` is the envelope recipient list; for MessageOptions the
 * headers use `from`/`to` unless `message` sets them.
 */
export async function sendViaSmtp(
  services: TestServices,
  from: string,
  to: string | readonly string[],
  message: Buffer | string | MessageOptions,
): Promise<SmtpResult> {
  if (!services.smtp) throw new Error(`SMTP is not available: ${services.smtpSkipReason ?? 'unknown reason'}`);
  return submit(services.smtp.host, services.smtp.port, false, from, to, message);
}

/** Delivers straight into Dovecot over LMTP (no Postfix; works without root too). */
export async function deliverViaLmtp(
  services: TestServices,
  from: string,
  to: string | readonly string[],
  message: Buffer | string | MessageOptions,
): Promise<SmtpResult> {
  return submit(services.lmtp.host, services.lmtp.port, true, from, to, message);
}
