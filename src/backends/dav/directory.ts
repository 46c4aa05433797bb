/**
 * The Global Address List: a directory address book (a CardDAV collection, GAL_URL) that every user of the tenant
 * may read, queried with addressbook-query under the user's own login. Search (GAL store) and ResolveRecipients read
 * it; a vCard's FBURL (RFC 6350 §6.9.1) says where the person's free/busy (a calendar) can be read.
 */
import ICAL from 'ical.js';
import { certificatesOfVcard } from '../../items/vcard-certificates.ts';
import type { Directory, GalEntry } from '../types.ts';
import { CredentialOriginError, DavItemBackend, type DavLogin } from './backend.ts';

function texts(card: ICAL.Component, name: string): string[] {
  return card.getAllProperties(name).flatMap((p) => {
    const value = p.getFirstValue();
    const text = Array.isArray(value) ? value.join(' ') : String(value ?? '');
    return text.trim() ? [text.trim()] : [];
  });
}

function phoneOf(card: ICAL.Component, types: string[]): string | undefined {
  for (const p of card.getAllProperties('tel')) {
    const type = p.getParameter('type');
    const list = (Array.isArray(type) ? type : [type]).map((t) => String(t ?? '').toLowerCase());
    if (types.some((t) => list.includes(t)))
      return (
        String(p.getFirstValue() ?? '')
          .replace(/^tel:/i, '')
          .trim() || undefined
      );
  }
  return undefined;
}

/** One directory vCard as a GAL entry; undefined when it has no email address (it cannot be a recipient). */
export function galEntryOf(vcard: string): GalEntry | undefined {
  let card: ICAL.Component;
  try {
    const parsed = ICAL.parse(vcard) as unknown[];
    card = new ICAL.Component((Array.isArray(parsed[0]) ? parsed[0] : parsed) as unknown[]);
  } catch {
    return undefined;
  }
  const emails = texts(card, 'email').map((e) => e.replace(/^mailto:/i, '').toLowerCase());
  if (emails.length === 0) return undefined;
  const n = card.getFirstPropertyValue('n');
  const [last, first] = Array.isArray(n) ? n.map((v) => (Array.isArray(v) ? v.join(' ') : String(v ?? '')).trim()) : [];
  const org = card.getFirstPropertyValue('org');
  const company = Array.isArray(org)
    ? String(org[0] ?? '').trim()
    : typeof org === 'string'
      ? org.split(';')[0]!.trim()
      : undefined;
  const entry: GalEntry = {
    displayName: texts(card, 'fn')[0] ?? ([first, last].filter(Boolean).join(' ') || emails[0]!),
    emails,
  };
  const set = <K extends keyof GalEntry>(key: K, value: GalEntry[K] | undefined): void => {
    if (value !== undefined && value !== '') entry[key] = value;
  };
  set('firstName', first);
  set('lastName', last);
  set('company', company);
  set('title', texts(card, 'title')[0]);
  set('office', texts(card, 'x-office')[0] ?? texts(card, 'role')[0]);
  set('alias', texts(card, 'nickname')[0] ?? emails[0]!.split('@')[0]);
  set('phone', phoneOf(card, ['work', 'voice']));
  set('homePhone', phoneOf(card, ['home']));
  set('mobilePhone', phoneOf(card, ['cell', 'mobile']));
  set('freeBusyUrl', texts(card, 'fburl')[0]);
  const certificates = certificatesOfVcard(card);
  if (certificates.length) entry.certificates = certificates;
  return entry;
}

/** Where the directory may send the user's login: the tenant's DAV origins (config.ts davCredentialOrigins). */
export interface DirectoryOptions {
  credentialOrigins: readonly string[];
  timeoutMs?: number;
}

/** The directory entries matching `text` (name, email or nickname contains it), sorted by display name. */
export async function searchDirectory(
  galUrl: string,
  login: DavLogin,
  text: string,
  options: DirectoryOptions,
): Promise<GalEntry[]> {
  const items = await new DavItemBackend(
    galUrl,
    'carddav',
    login,
    options.timeoutMs,
    {},
    options.credentialOrigins,
  ).queryAddressBook(galUrl, text);
  return items
    .flatMap((item) => galEntryOf(item.data) ?? [])
    .sort((a, b) => a.displayName.localeCompare(b.displayName) || a.emails[0]!.localeCompare(b.emails[0]!));
}

/**
 * Reads `url` as a calendar under the user's login: the events in [start, end), or 'forbidden'. A directory entry's
 * FBURL is data anyone who can write the directory chose: on an origin the tenant did not configure it is not read
 * at all ('forbidden'), so neither the login nor a request from this server goes there.
 */
export async function busyEvents(
  url: string,
  login: DavLogin,
  start: Date,
  end: Date,
  options: DirectoryOptions,
): Promise<string[] | 'forbidden'> {
  let calendar: DavItemBackend;
  try {
    calendar = new DavItemBackend(url, 'caldav', login, options.timeoutMs, {}, options.credentialOrigins);
  } catch {
    return 'forbidden'; // not a URL
  }
  if (!calendar.mayAuthenticateTo(url)) return 'forbidden';
  const items = await calendar.eventsInRange(url, start, end).catch((err: unknown) => {
    // A redirect to another origin: refused like a calendar that may not be read.
    if (err instanceof CredentialOriginError) return 'forbidden' as const;
    throw err;
  });
  return items === 'forbidden' ? items : items.map((i) => i.data);
}

/** The Directory of the GAL at `galUrl`, read under the user's credentials, whole. */
export function davDirectory(galUrl: string, login: DavLogin, options: DirectoryOptions): Directory {
  return {
    search: (text) => searchDirectory(galUrl, login, text, options),
    busyEvents: (url, start, end) => busyEvents(url, login, start, end, options),
  };
}
