/**
 * The Global Address List: a directory address book (a CardDAV collection, GAL_URL) that every user of the tenant
 * may read, queried with addressbook-query under the user's own login. Search (GAL store) and ResolveRecipients read
 * it; a vCard's FBURL (RFC 6350 §6.9.1) says where the person's free/busy (a calendar) can be read.
 */
import { directoryEntryOf } from '../../items/directory-entry.ts';
import type { Directory, GalEntry } from '../types.ts';
import { CredentialOriginError, DavItemBackend, type DavLogin } from './backend.ts';

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
    .flatMap((item) => directoryEntryOf(item.data) ?? [])
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
