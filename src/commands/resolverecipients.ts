/**
 * ResolveRecipients (MS-ASCMD §2.2.1.15): each To (an address or a name) looked up in the tenant's
 * directory (GAL_URL, gal.ts; Type 1) and in the user's own address books (Type 2, those not in the directory). An
 * exact address match, or a single match, resolves (Status 1); several are suggestions (2), cut to
 * MaxAmbiguousRecipients (3, a partial list); none is 4.
 *
 * Availability (14.0+): StartTime to EndTime (default seven days; at least 30 minutes, at most 42 days, else Status 5)
 * as MergedFreeBusy, from the calendar the directory entry names in FBURL, read under the requester's login. A
 * calendar the requester may not read is Availability Status 163; no FBURL, or a calendar that could not be read,
 * 162. Pictures (14.1) are not kept (Picture Status 173).
 *
 * Certificates (CertificateRetrieval 2 full, 3 mini; §2.2.3.22): those a directory entry or contact publishes in vCard KEY
 * (items/vcard-certificates.ts) that are valid now and for e-mail (smime/recipient-certificates.ts). 2: every one,
 * base64 DER (§2.2.3.19.1); 3: the newest alone as the MiniCertificate (§2.2.3.112, whose format the protocol leaves to
 * the server: ours is that certificate's DER, the smallest thing a device can encrypt to). None: Status 7, count 0.
 * MaxCertificates (§2.2.3.101) caps the certificates of the whole answer: a recipient whose certificates no longer fit
 * gets none, Status 8 and the count it has, so no one gets an incomplete set. RecipientCount is 1 (a person; the
 * directory has no distribution lists).
 */
import type { GalEntry, UserBackends } from '../backends/types.ts';
import { directoryEntryOf } from '../items/directory-entry.ts';
import { parseDateTime } from '../items/datetime.ts';
import { mergedFreeBusy } from '../items/freebusy.ts';
import { toBase64 } from '../util/base64.ts';
import { child, children, childText, el, textOf, type WbxmlElement } from '../wbxml/tree.ts';
import { findInGal } from './gal.ts';
import { registerCommand } from './registry.ts';
import type { CommandContext, CommandResult } from '../protocol/command.ts';

export const ResolveRecipientsStatus = { Success: 1, ProtocolError: 5, ServerError: 6 } as const;
export const RecipientStatus = { Resolved: 1, Ambiguous: 2, AmbiguousPartial: 3, NotFound: 4 } as const;
export const AvailabilityStatus = { Success: 1, Transient: 162, NoPermission: 163 } as const;
/** Status of Certificates (MS-ASCMD §2.2.3.177.12). */
export const CertificatesStatus = { Success: 1, NoValidCertificate: 7, LimitReached: 8 } as const;

const MAX_TO = 100;
const DEFAULT_AMBIGUOUS = 19;
const DAY_MS = 86_400_000;
const MAX_AVAILABILITY_DAYS = 42;

function top(status: number, responses: WbxmlElement[] = []): CommandResult {
  return {
    kind: 'wbxml',
    body: el('ResolveRecipients', 'ResolveRecipients', [el('ResolveRecipients', 'Status', status), ...responses]),
  };
}

interface Options {
  certificates: 'none' | 'full' | 'mini';
  /** MaxCertificates: what the whole answer may still carry (counted down as recipients get theirs). */
  certificateBudget: { left: number };
  maxAmbiguous: number;
  availability: { start: Date; end: Date } | undefined;
  picture: boolean;
}

function readOptions(options: WbxmlElement | undefined, version: string): Options | undefined {
  const retrieval = childText(options, 'CertificateRetrieval');
  if (retrieval !== undefined && !['1', '2', '3'].includes(retrieval.trim())) return undefined;
  const maxCertText = childText(options, 'MaxCertificates');
  const maxCertificates = maxCertText === undefined ? Number.POSITIVE_INFINITY : Number(maxCertText);
  if (
    maxCertText !== undefined &&
    (!Number.isInteger(maxCertificates) || maxCertificates < 0 || maxCertificates > 9999)
  )
    return undefined;
  const maxText = childText(options, 'MaxAmbiguousRecipients');
  const max = maxText === undefined ? DEFAULT_AMBIGUOUS : Number(maxText);
  if (!Number.isInteger(max) || max < 0 || max > 9999) return undefined;
  const availability = child(options, 'Availability');
  let window: Options['availability'];
  if (availability && Number.parseFloat(version) >= 14) {
    const start = parseDateTime(childText(availability, 'StartTime'));
    const endText = childText(availability, 'EndTime');
    const end =
      endText === undefined ? (start ? new Date(start.getTime() + 7 * DAY_MS) : undefined) : parseDateTime(endText);
    if (!start || !end) return undefined;
    const span = end.getTime() - start.getTime();
    if (span < 30 * 60_000 || span > MAX_AVAILABILITY_DAYS * DAY_MS) return undefined;
    window = { start, end };
  }
  return {
    certificates: retrieval?.trim() === '2' ? 'full' : retrieval?.trim() === '3' ? 'mini' : 'none',
    certificateBudget: { left: maxCertificates },
    maxAmbiguous: max,
    availability: window,
    picture: child(options, 'Picture') !== undefined,
  };
}

async function availabilityOf(
  context: CommandContext,
  entry: GalEntry,
  window: { start: Date; end: Date },
): Promise<WbxmlElement> {
  const status = (s: number): WbxmlElement =>
    el('ResolveRecipients', 'Availability', [el('ResolveRecipients', 'Status', s)]);
  const directory = context.backends.directory(context.user);
  if (!entry.freeBusyUrl || !directory) return status(AvailabilityStatus.Transient);
  try {
    const events = await directory.busyEvents(entry.freeBusyUrl, window.start, window.end);
    if (events === 'forbidden') return status(AvailabilityStatus.NoPermission);
    return el('ResolveRecipients', 'Availability', [
      el('ResolveRecipients', 'Status', AvailabilityStatus.Success),
      el('ResolveRecipients', 'MergedFreeBusy', mergedFreeBusy(events, window.start, window.end)),
    ]);
  } catch {
    return status(AvailabilityStatus.Transient);
  }
}

/** The Certificates element of one recipient (§2.2.3.23.1), counted against MaxCertificates. */
async function certificatesOf(entry: GalEntry, options: Options): Promise<WbxmlElement> {
  // Loaded only when a device asks for certificates: the X.509 code stays out of other requests.
  const { emailCertificates } = await import('../smime/recipient-certificates.ts');
  const usable = emailCertificates(entry.certificates ?? []);
  const returned = options.certificates === 'mini' ? usable.slice(0, 1) : usable;
  const status = (s: number, count: number, certs: WbxmlElement[] = []): WbxmlElement =>
    el('ResolveRecipients', 'Certificates', [
      el('ResolveRecipients', 'Status', s),
      el('ResolveRecipients', 'CertificateCount', count),
      el('ResolveRecipients', 'RecipientCount', 1),
      ...certs,
    ]);
  if (usable.length === 0) return status(CertificatesStatus.NoValidCertificate, 0);
  if (returned.length > options.certificateBudget.left) return status(CertificatesStatus.LimitReached, usable.length);
  options.certificateBudget.left -= returned.length;
  return status(
    CertificatesStatus.Success,
    usable.length,
    returned.map((der) =>
      el('ResolveRecipients', options.certificates === 'mini' ? 'MiniCertificate' : 'Certificate', toBase64(der)),
    ),
  );
}

/** A match: from the directory (Type 1) or from the user's own contacts (Type 2), MS-ASCMD §2.2.3.186.5. */
interface Match {
  entry: GalEntry;
  type: 1 | 2;
}

/**
 * The user's own address books (CardDAV), searched as the directory is (addressbook-query on name, email, nickname);
 * opened at the request's first lookup, once, and closed at its end. Without CARDDAV_URL there are none.
 */
class ContactLookup {
  private opened: Promise<UserBackends> | undefined;
  private books: Promise<string[]> | undefined;

  constructor(private readonly context: CommandContext) {}

  async find(text: string): Promise<GalEntry[]> {
    if (!this.context.config.carddavUrl || !text) return [];
    this.opened ??= this.context.backends.open(this.context.user);
    const contacts = (await this.opened).contacts;
    if (!contacts) return [];
    this.books ??= contacts
      .listFolders()
      .then((folders) => folders.filter((f) => f.itemClass === 'Contacts').map((f) => f.ref));
    const found: GalEntry[] = [];
    for (const book of await this.books)
      for (const item of await contacts.queryAddressBook(book, text)) {
        const entry = directoryEntryOf(item.data);
        if (entry) found.push(entry);
      }
    return found;
  }

  async close(): Promise<void> {
    if (this.opened) await (await this.opened.catch(() => undefined))?.close();
  }
}

async function recipient(context: CommandContext, match: Match, options: Options, v: number): Promise<WbxmlElement> {
  const { entry } = match;
  return el('ResolveRecipients', 'Recipient', [
    el('ResolveRecipients', 'Type', match.type),
    el('ResolveRecipients', 'DisplayName', entry.displayName),
    el('ResolveRecipients', 'EmailAddress', entry.emails[0]!),
    options.availability ? await availabilityOf(context, entry, options.availability) : undefined,
    options.certificates === 'none' ? undefined : await certificatesOf(entry, options),
    options.picture && v >= 141
      ? el('ResolveRecipients', 'Picture', [el('ResolveRecipients', 'Status', 173)])
      : undefined,
  ]);
}

/**
 * The directory's entries matching `query`, then the user's contacts that are not in it (by address): a contact
 * search that fails leaves the directory's answer, and says so in the log line.
 */
async function findMatches(context: CommandContext, query: string, contacts: ContactLookup): Promise<Match[]> {
  const gal: Match[] = (await findInGal(context, query)).map((entry) => ({ entry, type: 1 }));
  const known = new Set(gal.flatMap((m) => m.entry.emails));
  let own: GalEntry[] = [];
  try {
    own = await contacts.find(query);
  } catch (err) {
    context.note?.({ contactsUnavailable: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
  }
  const mine: Match[] = own
    .filter((e) => !e.emails.some((a) => known.has(a)))
    .sort((a, b) => a.displayName.localeCompare(b.displayName))
    .map((entry) => ({ entry, type: 2 }));
  return [...gal, ...mine];
}

async function resolveOne(
  context: CommandContext,
  to: string,
  options: Options,
  contacts: ContactLookup,
): Promise<WbxmlElement> {
  const v = Math.round(Number.parseFloat(context.request.version) * 10);
  const query = to.replace(/^.*<([^>]+)>.*$/, '$1').trim();
  const found = await findMatches(context, query, contacts);
  const exact = found.filter((m) => m.entry.emails.includes(query.toLowerCase()));
  const matches = exact.length ? exact : found;
  const status =
    matches.length === 0
      ? RecipientStatus.NotFound
      : matches.length === 1
        ? RecipientStatus.Resolved
        : matches.length > options.maxAmbiguous
          ? RecipientStatus.AmbiguousPartial
          : RecipientStatus.Ambiguous;
  const listed = status === RecipientStatus.Resolved ? matches : matches.slice(0, options.maxAmbiguous);
  const recipients: WbxmlElement[] = [];
  for (const match of listed) recipients.push(await recipient(context, match, options, v));
  return el('ResolveRecipients', 'Response', [
    el('ResolveRecipients', 'To', to),
    el('ResolveRecipients', 'Status', status),
    el('ResolveRecipients', 'RecipientCount', recipients.length),
    ...recipients,
  ]);
}

export async function resolveRecipients(context: CommandContext): Promise<CommandResult> {
  const body = context.body;
  if (body?.ns !== 'ResolveRecipients' || body.tag !== 'ResolveRecipients')
    return top(ResolveRecipientsStatus.ProtocolError);
  const tos = children(body, 'To').map((t) => textOf(t).trim());
  const options = readOptions(child(body, 'Options'), context.request.version);
  if (tos.length === 0 || tos.length > MAX_TO || tos.some((t) => !t) || !options)
    return top(ResolveRecipientsStatus.ProtocolError);
  const responses: WbxmlElement[] = [];
  const contacts = new ContactLookup(context);
  try {
    for (const to of tos) responses.push(await resolveOne(context, to, options, contacts));
  } catch {
    return top(ResolveRecipientsStatus.ServerError);
  } finally {
    await contacts.close();
  }
  return top(ResolveRecipientsStatus.Success, responses);
}

registerCommand({
  name: 'ResolveRecipients',
  responseRoot: { ns: 'ResolveRecipients', tag: 'ResolveRecipients' },
  serverErrorStatus: ResolveRecipientsStatus.ServerError,
  handle: resolveRecipients,
});
