/**
 * The ItemBackend on CalDAV (calendars and task lists) or CardDAV (address books), over fetch, so it runs on every
 * runtime. Discovery follows RFC 4791/6352/5397: the service URL → current-user-principal → calendar-home-set or
 * addressbook-home-set → the collections there. Changes come from sync-collection (RFC 6578); writes are
 * conditional (If-Match / If-None-Match), so a change made meanwhile by another client is a conflict, not lost.
 */
import {
  collectionOf,
  FolderType,
  TASKS_VIEW,
  type BackendFolder,
  type DavChanges,
  type DavItem,
  type DavWriteResult,
  type ItemBackend,
} from '../types.ts';
import { toBase64 } from '../../util/base64.ts';
import {
  CALDAV,
  CALENDARSERVER,
  CARDDAV,
  DAV,
  escapeXml,
  parseMultistatus,
  prop,
  xmlChildren,
  type DavResponse,
} from './xml.ts';
import type { DavDefaults } from '../../config.ts';
import type { UserCredentials } from '../auth.ts';

export type DavKind = 'caldav' | 'carddav';

/**
 * The user's credentials, whole: `Authorization: Bearer` with a Bearer login's token (servers behind the same identity
 * provider accept it), else Basic with the password.
 */
export type DavLogin = UserCredentials;

/**
 * A request that would carry the user's credentials to an origin they are not for: a principal, home set, collection,
 * redirect or directory FBURL on another server than the tenant configured (CALDAV_URL, CARDDAV_URL, GAL_URL,
 * DAV_CREDENTIAL_ORIGINS). Nothing is sent there.
 */
export class CredentialOriginError extends Error {
  override readonly name = 'CredentialOriginError';
}

/** Redirects followed per request, each only within the credential origins. */
const MAX_REDIRECTS = 5;

/** A calendar that holds both events and tasks is offered twice; the tasks view's ref carries this suffix. */

/**
 * A dead property set on the collections a device creates (FolderCreate): they are user folders, listed after the
 * others, so that a new calendar never becomes the default one (the first of its class) in place of an existing one.
 */
const EDGE_NS = 'urn:activesync-edge:';
const USER_FOLDER_PROP = `<E:user-folder xmlns:E="${EDGE_NS}">1</E:user-folder>`;

/**
 * Discovered homes, by service URL and login, for an hour: discovery is two PROPFINDs per backend that every
 * FolderSync would repeat. A home is no secret (every request still authenticates), and a stale one is dropped when
 * listing it fails. Bounded: the oldest entries go first.
 */
const HOME_TTL_MS = 3_600_000;
/** How long one CalDAV/CardDAV request may take (DAV_TIMEOUT_SECONDS). */
export const DEFAULT_DAV_TIMEOUT_MS = 30_000;
const MAX_CACHED_HOMES = 10_000;
const discoveredHomes = new Map<string, { home: string; expiresAt: number }>();

export class DavItemBackend implements ItemBackend {
  private home: string | undefined;

  constructor(
    private readonly serviceUrl: string,
    private readonly kind: DavKind,
    private readonly login: DavLogin,
    /** A request without an answer by then fails (a stalled server must not hold a Sync forever). */
    private readonly timeoutMs = DEFAULT_DAV_TIMEOUT_MS,
    /** The collections to offer as the default folders, by name or display name (DAV_DEFAULT_*). */
    private readonly defaults: DavDefaults = {},
    /**
     * The origins (scheme, host, port) the login may be sent to; by default the service URL's own. A link or redirect
     * elsewhere fails with CredentialOriginError before anything is sent.
     */
    credentialOrigins: readonly string[] = [new URL(serviceUrl).origin],
  ) {
    this.credentialOrigins = new Set(credentialOrigins);
  }

  private readonly credentialOrigins: ReadonlySet<string>;

  /** Whether the login may be sent to `url`. */
  mayAuthenticateTo(url: string): boolean {
    try {
      return this.credentialOrigins.has(new URL(url).origin);
    } catch {
      return false;
    }
  }

  async listFolders(): Promise<BackendFolder[]> {
    let home = await this.findHome();
    let listing: Awaited<ReturnType<typeof this.listHome>>;
    try {
      listing = await this.listHome(home);
    } catch (err) {
      // A cached home that no longer answers: discover again, once.
      if (!this.homeWasCached) throw err;
      this.forgetHome();
      home = await this.findHome();
      listing = await this.listHome(home);
    }
    return listing;
  }

  private async listHome(home: string): Promise<BackendFolder[]> {
    const marker = `<E:user-folder xmlns:E="${EDGE_NS}"/>`;
    const ms = await this.propfind(
      home,
      '1',
      this.kind === 'caldav'
        ? `<D:resourcetype/><D:displayname/><C:supported-calendar-component-set/>${marker}`
        : `<D:resourcetype/><D:displayname/>${marker}`,
    );
    const created = (r: DavResponse): number => (prop(r, EDGE_NS, 'user-folder') ? 1 : 0);
    const collections = ms.responses
      .filter((r) => this.absolute(r.href) !== this.absolute(home))
      .sort((a, b) => created(a) - created(b) || a.href.localeCompare(b.href));
    const folders: BackendFolder[] = [];
    const segmentOf = (r: DavResponse): string => decodeURIComponent(r.href.replace(/\/$/, '').split('/').pop() ?? '');
    const displayNameOf = (r: DavResponse): string => prop(r, DAV, 'displayname')?.text.trim() || segmentOf(r);
    // The configured default of a class when it is there (by URL segment, else display name), else the first listed.
    const preferred = {
      Calendar: this.defaults.calendar,
      Tasks: this.defaults.tasks,
      Contacts: this.defaults.contacts,
    };
    const chosen = new Map<string, DavResponse>();
    for (const [itemClass, wanted] of Object.entries(preferred)) {
      const match = wanted?.toLowerCase();
      const found =
        match &&
        (collections.find((r) => segmentOf(r).toLowerCase() === match) ??
          collections.find((r) => displayNameOf(r).toLowerCase() === match));
      if (found) chosen.set(itemClass, found);
    }
    const add = (
      r: DavResponse,
      itemClass: BackendFolder['itemClass'],
      ref: string,
      defaultType: number,
      userType: number,
    ): void => {
      const isDefault = chosen.has(itemClass) ? chosen.get(itemClass) === r : !chosen.has(`first:${itemClass}`);
      if (!chosen.has(itemClass) && isDefault) chosen.set(`first:${itemClass}`, r);
      folders.push({
        backend: this.kind,
        ref,
        parentRef: undefined,
        displayName: displayNameOf(r),
        type: isDefault ? defaultType : userType,
        itemClass,
      });
    };
    for (const r of collections) {
      const types = prop(r, DAV, 'resourcetype');
      if (this.kind === 'carddav') {
        if (xmlChildren(types, CARDDAV, 'addressbook').length)
          add(r, 'Contacts', this.absolute(r.href), FolderType.Contacts, FolderType.UserContacts);
        continue;
      }
      if (!xmlChildren(types, CALDAV, 'calendar').length) continue;
      // A calendar that does not say which components it takes may hold both.
      const declared = componentNames(r);
      const names = new Set(declared.length ? declared : ['VEVENT', 'VTODO']);
      if (names.has('VEVENT')) add(r, 'Calendar', this.absolute(r.href), FolderType.Calendar, FolderType.UserCalendar);
      if (names.has('VTODO'))
        add(r, 'Tasks', this.absolute(r.href) + TASKS_VIEW, FolderType.Tasks, FolderType.UserTasks);
    }
    return folders;
  }

  async changesSince(folderRef: string, syncToken: string | undefined): Promise<DavChanges | 'invalid-token'> {
    const body =
      `<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:"><D:sync-token>${escapeXml(syncToken ?? '')}</D:sync-token>` +
      '<D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>';
    const res = await this.request('REPORT', collectionOf(folderRef), { body, depth: '1' });
    // RFC 6578 §3.2: a token the server no longer knows is 403/409 with DAV:valid-sync-token.
    if ((res.status === 403 || res.status === 409) && syncToken) return 'invalid-token';
    if (res.status !== 207) throw new Error(`sync-collection on ${collectionOf(folderRef)}: HTTP ${res.status}`);
    const ms = parseMultistatus(await res.text());
    const changed: DavChanges['changed'] = [];
    const removed: string[] = [];
    for (const r of ms.responses) {
      if (r.status === 404) removed.push(this.absolute(r.href));
      else {
        const etag = prop(r, DAV, 'getetag')?.text.trim();
        if (etag) changed.push({ href: this.absolute(r.href), etag });
      }
    }
    return { syncToken: ms.syncToken ?? '', changed, removed };
  }

  /**
   * What the push watcher compares (src/push/feed.ts): the collection's DAV:sync-token (RFC 6578, the same token
   * sync-collection hands out), or `ctag:<CTag>` from a server without sync-collection. One PROPFIND at depth 0.
   */
  async collectionToken(folderRef: string): Promise<string> {
    const url = collectionOf(folderRef);
    const ms = await this.propfind(url, '0', `<D:sync-token/><CS:getctag xmlns:CS="${CALENDARSERVER}"/>`);
    const response = ms.responses[0];
    const token = response && prop(response, DAV, 'sync-token')?.text.trim();
    if (token) return token;
    const ctag = response && prop(response, CALENDARSERVER, 'getctag')?.text.trim();
    if (ctag) return `ctag:${ctag}`;
    throw new Error(`PROPFIND ${url}: neither sync-token nor getctag`);
  }

  async listEtags(folderRef: string): Promise<{ href: string; etag: string }[]> {
    const collection = collectionOf(folderRef);
    const ms = await this.propfind(collection, '1', '<D:getetag/>');
    return ms.responses.flatMap((r) => {
      const etag = prop(r, DAV, 'getetag')?.text.trim();
      const href = this.absolute(r.href);
      // Depth 1 lists the collection itself too.
      return etag && href !== collection ? [{ href, etag }] : [];
    });
  }

  async fetchItems(folderRef: string, hrefs: string[]): Promise<DavItem[]> {
    if (hrefs.length === 0) return [];
    const [ns, report, dataProp] =
      this.kind === 'caldav'
        ? [CALDAV, 'calendar-multiget', 'calendar-data']
        : [CARDDAV, 'addressbook-multiget', 'address-data'];
    const body =
      `<?xml version="1.0" encoding="utf-8"?><R:${report} xmlns:D="DAV:" xmlns:R="${ns}"><D:prop><D:getetag/><R:${dataProp}/></D:prop>` +
      hrefs.map((h) => `<D:href>${escapeXml(new URL(h).pathname)}</D:href>`).join('') +
      `</R:${report}>`;
    const res = await this.request('REPORT', collectionOf(folderRef), { body, depth: '1' });
    if (res.status !== 207) throw new Error(`${report} on ${collectionOf(folderRef)}: HTTP ${res.status}`);
    return parseMultistatus(await res.text()).responses.flatMap((r) => {
      const data = prop(r, ns, dataProp)?.text;
      const etag = prop(r, DAV, 'getetag')?.text.trim();
      return data && etag ? [{ href: this.absolute(r.href), etag, data }] : [];
    });
  }

  async putItem(
    folderRef: string,
    href: string | undefined,
    data: string,
    ifMatch?: string,
    createName?: string,
  ): Promise<DavWriteResult> {
    const target =
      href ??
      new URL(`${createName ?? crypto.randomUUID()}.${this.kind === 'caldav' ? 'ics' : 'vcf'}`, collectionOf(folderRef))
        .href;
    const res = await this.request('PUT', target, {
      body: data,
      contentType: this.kind === 'caldav' ? 'text/calendar; charset=utf-8' : 'text/vcard; charset=utf-8',
      headers: ifMatch ? { 'If-Match': ifMatch } : href ? {} : { 'If-None-Match': '*' },
    });
    await res.arrayBuffer();
    // The named create was done by an earlier attempt (its answer lost, e.g. a timeout): done, not a second item.
    if (res.status === 412 && !href && createName !== undefined)
      return { ok: true, href: target, etag: await this.etagOf(target), existed: true };
    if (res.status === 412) return { ok: false, reason: 'conflict' };
    if (res.status === 404) return { ok: false, reason: 'not-found' };
    if (!res.ok) throw new Error(`PUT ${target}: HTTP ${res.status}`);
    const etag = res.headers.get('etag') ?? (await this.etagOf(target));
    return { ok: true, href: target, etag };
  }

  async deleteItem(href: string, ifMatch?: string): Promise<DavWriteResult> {
    const res = await this.request('DELETE', href, { headers: ifMatch ? { 'If-Match': ifMatch } : {} });
    await res.arrayBuffer();
    if (res.status === 412) return { ok: false, reason: 'conflict' };
    if (res.status === 404) return { ok: false, reason: 'not-found' };
    if (!res.ok) throw new Error(`DELETE ${href}: HTTP ${res.status}`);
    return { ok: true, href, etag: '' };
  }

  async findByUid(folderRef: string, uid: string): Promise<DavItem[]> {
    const component = folderRef.endsWith(TASKS_VIEW) ? 'VTODO' : 'VEVENT';
    const filter =
      `<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="${component}"><C:prop-filter name="UID">` +
      `<C:text-match collation="i;octet">${escapeXml(uid)}</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter></C:filter>`;
    const items = await this.calendarQuery(collectionOf(folderRef), filter);
    if (items === 'forbidden') return [];
    // text-match is a substring match: keep the objects whose UID is this one.
    return items.filter((item) =>
      unfold(item.data)
        .split(/\r?\n/)
        .some((line) => /^UID[;:]/i.test(line) && line.slice(line.indexOf(':') + 1).trim() === uid),
    );
  }

  async eventsInRange(collectionUrl: string, start: Date, end: Date): Promise<DavItem[] | 'forbidden'> {
    const utc = (d: Date): string =>
      d
        .toISOString()
        .replace(/\.\d{3}Z$/, 'Z')
        .replace(/[-:]/g, '');
    const filter =
      '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">' +
      `<C:time-range start="${utc(start)}" end="${utc(end)}"/></C:comp-filter></C:comp-filter></C:filter>`;
    return this.calendarQuery(collectionUrl, filter);
  }

  async queryAddressBook(collectionUrl: string, text: string): Promise<DavItem[]> {
    const match = (name: string): string =>
      `<R:prop-filter name="${name}"><R:text-match collation="i;unicode-casemap" match-type="contains">${escapeXml(text)}</R:text-match></R:prop-filter>`;
    const body =
      `<?xml version="1.0" encoding="utf-8"?><R:addressbook-query xmlns:D="DAV:" xmlns:R="${CARDDAV}"><D:prop><D:getetag/><R:address-data/></D:prop>` +
      `<R:filter test="anyof">${['FN', 'EMAIL', 'NICKNAME'].map(match).join('')}</R:filter></R:addressbook-query>`;
    const res = await this.request('REPORT', collectionUrl, { body, depth: '1' });
    if (res.status !== 207) throw new Error(`addressbook-query on ${collectionUrl}: HTTP ${res.status}`);
    return parseMultistatus(await res.text()).responses.flatMap((r) => {
      const data = prop(r, CARDDAV, 'address-data')?.text;
      const etag = prop(r, DAV, 'getetag')?.text.trim() ?? '';
      return data ? [{ href: this.absolute(r.href), etag, data }] : [];
    });
  }

  async createCollection(
    displayName: string,
    kind: 'Calendar' | 'Tasks' | 'Contacts',
  ): Promise<BackendFolder | 'exists'> {
    const home = await this.findHome();
    const url = new URL(`${crypto.randomUUID()}/`, home).href;
    const name = `<D:displayname>${escapeXml(displayName)}</D:displayname>`;
    const existing = await this.listFolders();
    if (existing.some((f) => f.displayName === displayName && f.itemClass === kind)) return 'exists';
    const component = `<C:supported-calendar-component-set><C:comp name="${kind === 'Tasks' ? 'VTODO' : 'VEVENT'}"/></C:supported-calendar-component-set>`;
    // Extended MKCOL (RFC 5689) for every kind: workerd's fetch refuses the MKCALENDAR method. Servers without it
    // (415 or 501 to a MKCOL with a body) get MKCALENDAR.
    let res =
      kind === 'Contacts'
        ? await this.request('MKCOL', url, {
            body: `<?xml version="1.0" encoding="utf-8"?><D:mkcol xmlns:D="DAV:" xmlns:R="${CARDDAV}"><D:set><D:prop><D:resourcetype><D:collection/><R:addressbook/></D:resourcetype>${name}${USER_FOLDER_PROP}</D:prop></D:set></D:mkcol>`,
          })
        : await this.request('MKCOL', url, {
            body: `<?xml version="1.0" encoding="utf-8"?><D:mkcol xmlns:D="DAV:" xmlns:C="${CALDAV}"><D:set><D:prop><D:resourcetype><D:collection/><C:calendar/></D:resourcetype>${name}${USER_FOLDER_PROP}${component}</D:prop></D:set></D:mkcol>`,
          });
    if (kind !== 'Contacts' && (res.status === 415 || res.status === 501)) {
      await res.arrayBuffer();
      res = await this.request('MKCALENDAR', url, {
        body: `<?xml version="1.0" encoding="utf-8"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="${CALDAV}"><D:set><D:prop>${name}${USER_FOLDER_PROP}${component}</D:prop></D:set></C:mkcalendar>`,
      });
    }
    await res.arrayBuffer();
    if (res.status === 405) return 'exists';
    if (res.status !== 201) throw new Error(`creating ${kind} collection ${url}: HTTP ${res.status}`);
    const created = (await this.listFolders()).find((f) => collectionOf(f.ref) === url);
    if (!created) throw new Error(`the new collection ${url} is not listed`);
    return created;
  }

  async renameCollection(folderRef: string, displayName: string): Promise<'ok' | 'not-found'> {
    const url = collectionOf(folderRef);
    const body = `<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>${escapeXml(displayName)}</D:displayname></D:prop></D:set></D:propertyupdate>`;
    const res = await this.request('PROPPATCH', url, { body });
    await res.arrayBuffer();
    if (res.status === 404) return 'not-found';
    if (res.status !== 207 && !res.ok) throw new Error(`PROPPATCH ${url}: HTTP ${res.status}`);
    return 'ok';
  }

  async deleteCollection(folderRef: string): Promise<'ok' | 'not-found'> {
    const url = collectionOf(folderRef);
    const res = await this.request('DELETE', url, {});
    await res.arrayBuffer();
    if (res.status === 404) return 'not-found';
    if (!res.ok) throw new Error(`DELETE ${url}: HTTP ${res.status}`);
    return 'ok';
  }

  private async calendarQuery(collectionUrl: string, filter: string): Promise<DavItem[] | 'forbidden'> {
    const body = `<?xml version="1.0" encoding="utf-8"?><C:calendar-query xmlns:D="DAV:" xmlns:C="${CALDAV}"><D:prop><D:getetag/><C:calendar-data/></D:prop>${filter}</C:calendar-query>`;
    const res = await this.request('REPORT', collectionUrl, { body, depth: '1' });
    if (res.status === 403 || res.status === 401 || res.status === 404) {
      await res.arrayBuffer();
      return 'forbidden';
    }
    if (res.status !== 207) throw new Error(`calendar-query on ${collectionUrl}: HTTP ${res.status}`);
    return parseMultistatus(await res.text()).responses.flatMap((r) => {
      const data = prop(r, CALDAV, 'calendar-data')?.text;
      const etag = prop(r, DAV, 'getetag')?.text.trim() ?? '';
      return data ? [{ href: this.absolute(r.href), etag, data }] : [];
    });
  }

  private homeWasCached = false;

  private get homeKey(): string {
    return `${this.kind}\u0000${this.serviceUrl}\u0000${this.login.login.toLowerCase()}`;
  }

  private forgetHome(): void {
    discoveredHomes.delete(this.homeKey);
    this.home = undefined;
    this.homeWasCached = false;
  }

  /** The collection holding this kind of items for the user: principal, then its home set. */
  private async findHome(): Promise<string> {
    if (this.home) return this.home;
    const cached = discoveredHomes.get(this.homeKey);
    if (cached && cached.expiresAt > Date.now()) {
      this.homeWasCached = true;
      this.home = cached.home;
      return cached.home;
    }
    const service = await this.propfind(this.serviceUrl, '0', '<D:current-user-principal/>');
    const principalHref = service.responses
      .map((r) => prop(r, DAV, 'current-user-principal')?.children[0]?.text.trim())
      .find(Boolean);
    const principal = principalHref ? this.absolute(principalHref) : this.serviceUrl;
    const [ns, homeSet] = this.kind === 'caldav' ? [CALDAV, 'calendar-home-set'] : [CARDDAV, 'addressbook-home-set'];
    const found = await this.propfind(principal, '0', `<H:${homeSet} xmlns:H="${ns}"/>`);
    const homeHref = found.responses.map((r) => prop(r, ns, homeSet)?.children[0]?.text.trim()).find(Boolean);
    this.home = homeHref ? this.absolute(homeHref) : principal;
    discoveredHomes.delete(this.homeKey);
    discoveredHomes.set(this.homeKey, { home: this.home, expiresAt: Date.now() + HOME_TTL_MS });
    if (discoveredHomes.size > MAX_CACHED_HOMES) discoveredHomes.delete(discoveredHomes.keys().next().value!);
    return this.home;
  }

  private async etagOf(href: string): Promise<string> {
    const ms = await this.propfind(href, '0', '<D:getetag/>');
    return ms.responses.map((r) => prop(r, DAV, 'getetag')?.text.trim()).find(Boolean) ?? '';
  }

  private async propfind(url: string, depth: '0' | '1', props: string): Promise<ReturnType<typeof parseMultistatus>> {
    const body = `<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" xmlns:C="${CALDAV}"><D:prop>${props}</D:prop></D:propfind>`;
    const res = await this.request('PROPFIND', url, { body, depth });
    if (res.status !== 207) throw new Error(`PROPFIND ${url}: HTTP ${res.status}`);
    return parseMultistatus(await res.text());
  }

  /**
   * One request with the user's login, to the credential origins only. Redirects are followed here, not by fetch, so
   * that each hop is checked before the login goes there (a redirect to another origin fails, RFC 9110 §15.4); 301,
   * 302, 307 and 308 repeat the method and body, as DAV clients do.
   */
  private async request(
    method: string,
    url: string,
    o: { body?: string; depth?: string; contentType?: string; headers?: Record<string, string> },
  ): Promise<Response> {
    const headers: Record<string, string> = { Authorization: authorization(this.login), ...o.headers };
    if (o.depth) headers.Depth = o.depth;
    if (o.body !== undefined) headers['Content-Type'] = o.contentType ?? 'application/xml; charset=utf-8';
    const signal = AbortSignal.timeout(this.timeoutMs);
    let target = url;
    for (let hop = 0; ; hop++) {
      if (!this.mayAuthenticateTo(target))
        throw new CredentialOriginError(
          `${method} ${originOf(target)}: not a DAV origin of the tenant (${[...this.credentialOrigins].join(', ')}); the login is not sent there`,
        );
      const init: RequestInit = {
        method,
        headers,
        signal,
        redirect: 'manual',
        ...(o.body !== undefined ? { body: o.body } : {}),
      };
      const res = await fetch(target, init).catch((err: unknown) => {
        // A server may close an idle kept-alive connection just as it is reused (RFC 9112 §9.3.1; workerd then says
        // "Network connection lost"): an idempotent request is sent once more on a new one (RFC 9110 §9.2.2).
        if (signal.aborted || !IDEMPOTENT_METHODS.has(method)) throw err;
        return fetch(target, init);
      });
      const location = res.headers.get('location');
      if (![301, 302, 307, 308].includes(res.status) || !location || hop >= MAX_REDIRECTS) return res;
      await res.arrayBuffer();
      target = new URL(location, target).href;
    }
  }

  private absolute(href: string): string {
    return new URL(href, this.serviceUrl).href;
  }
}

/** Methods a client may repeat after a lost connection (RFC 9110 §9.2.2; PROPFIND and REPORT read only). */
const IDEMPOTENT_METHODS: ReadonlySet<string> = new Set([
  'GET',
  'HEAD',
  'OPTIONS',
  'PROPFIND',
  'REPORT',
  'PUT',
  'DELETE',
]);

/** The Authorization header of a user's credentials: the token of a Bearer login, else Basic with the password. */
function authorization(login: DavLogin): string {
  return login.accessToken !== undefined
    ? `Bearer ${login.accessToken}`
    : `Basic ${toBase64(new TextEncoder().encode(`${login.login}:${login.password}`))}`;
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return 'an invalid URL';
  }
}

function unfold(text: string): string {
  return text.replace(/\r?\n[ \t]/g, '');
}

function componentNames(r: DavResponse): string[] {
  return xmlChildren(prop(r, CALDAV, 'supported-calendar-component-set'), CALDAV, 'comp').map((c) =>
    (c.attributes.name ?? '').toUpperCase(),
  );
}
