/**
 * The ItemBackend on CalDAV (calendars and task lists) or CardDAV (address books), over fetch, so it runs on every
 * runtime. Discovery follows RFC 4791/6352/5397: the service URL → current-user-principal → calendar-home-set or
 * addressbook-home-set → the collections there. Changes come from sync-collection (RFC 6578); writes are
 * conditional (If-Match / If-None-Match), so a change made meanwhile by another client is a conflict, not lost.
 */
import { FolderType, type BackendFolder, type DavChanges, type DavItem, type DavWriteResult, type ItemBackend } from '../types.ts';
import { toBase64 } from '../../util/base64.ts';
import { CALDAV, CARDDAV, DAV, escapeXml, parseMultistatus, prop, xmlChildren, type DavResponse } from './xml.ts';

export type DavKind = 'caldav' | 'carddav';

export interface DavLogin {
  user: string;
  password: string;
}

/** A calendar that holds both events and tasks is offered twice; the tasks view's ref carries this suffix. */
const TASKS_VIEW = '#VTODO';

export class DavItemBackend implements ItemBackend {
  private home: string | undefined;

  constructor(
    private readonly serviceUrl: string,
    private readonly kind: DavKind,
    private readonly login: DavLogin,
  ) {}

  async listFolders(): Promise<BackendFolder[]> {
    const home = await this.findHome();
    const ms = await this.propfind(home, '1', this.kind === 'caldav' ? '<D:resourcetype/><D:displayname/><C:supported-calendar-component-set/>' : '<D:resourcetype/><D:displayname/>');
    const collections = ms.responses
      .filter((r) => this.absolute(r.href) !== this.absolute(home))
      .sort((a, b) => a.href.localeCompare(b.href));
    const folders: BackendFolder[] = [];
    const firstOf = new Set<string>();
    const add = (r: DavResponse, itemClass: BackendFolder['itemClass'], ref: string, defaultType: number, userType: number): void => {
      const type = firstOf.has(itemClass) ? userType : defaultType;
      firstOf.add(itemClass);
      const name = prop(r, DAV, 'displayname')?.text.trim() || decodeURIComponent(r.href.replace(/\/$/, '').split('/').pop() ?? '');
      folders.push({ backend: this.kind, ref, parentRef: undefined, displayName: name, type, itemClass });
    };
    for (const r of collections) {
      const types = prop(r, DAV, 'resourcetype');
      if (this.kind === 'carddav') {
        if (xmlChildren(types, CARDDAV, 'addressbook').length) add(r, 'Contacts', this.absolute(r.href), FolderType.Contacts, FolderType.UserContacts);
        continue;
      }
      if (!xmlChildren(types, CALDAV, 'calendar').length) continue;
      // A calendar that does not say which components it takes may hold both.
      const declared = componentNames(r);
      const names = new Set(declared.length ? declared : ['VEVENT', 'VTODO']);
      if (names.has('VEVENT')) add(r, 'Calendar', this.absolute(r.href), FolderType.Calendar, FolderType.UserCalendar);
      if (names.has('VTODO')) add(r, 'Tasks', this.absolute(r.href) + TASKS_VIEW, FolderType.Tasks, FolderType.UserTasks);
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
    const [ns, report, dataProp] = this.kind === 'caldav' ? [CALDAV, 'calendar-multiget', 'calendar-data'] : [CARDDAV, 'addressbook-multiget', 'address-data'];
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

  async putItem(folderRef: string, href: string | undefined, data: string, ifMatch?: string): Promise<DavWriteResult> {
    const target = href ?? new URL(`${crypto.randomUUID()}.${this.kind === 'caldav' ? 'ics' : 'vcf'}`, collectionOf(folderRef)).href;
    const res = await this.request('PUT', target, {
      body: data,
      contentType: this.kind === 'caldav' ? 'text/calendar; charset=utf-8' : 'text/vcard; charset=utf-8',
      headers: ifMatch ? { 'If-Match': ifMatch } : href ? {} : { 'If-None-Match': '*' },
    });
    await res.arrayBuffer();
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

  /** The collection holding this kind of items for the user: principal, then its home set. */
  private async findHome(): Promise<string> {
    if (this.home) return this.home;
    const service = await this.propfind(this.serviceUrl, '0', '<D:current-user-principal/>');
    const principalHref = service.responses.map((r) => prop(r, DAV, 'current-user-principal')?.children[0]?.text.trim()).find(Boolean);
    const principal = principalHref ? this.absolute(principalHref) : this.serviceUrl;
    const [ns, homeSet] = this.kind === 'caldav' ? [CALDAV, 'calendar-home-set'] : [CARDDAV, 'addressbook-home-set'];
    const found = await this.propfind(principal, '0', `<H:${homeSet} xmlns:H="${ns}"/>`);
    const homeHref = found.responses.map((r) => prop(r, ns, homeSet)?.children[0]?.text.trim()).find(Boolean);
    this.home = homeHref ? this.absolute(homeHref) : principal;
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

  private request(method: string, url: string, o: { body?: string; depth?: string; contentType?: string; headers?: Record<string, string> }): Promise<Response> {
    const headers: Record<string, string> = {
      Authorization: `Basic ${toBase64(new TextEncoder().encode(`${this.login.user}:${this.login.password}`))}`,
      ...o.headers,
    };
    if (o.depth) headers.Depth = o.depth;
    if (o.body !== undefined) headers['Content-Type'] = o.contentType ?? 'application/xml; charset=utf-8';
    return fetch(url, { method, headers, ...(o.body !== undefined ? { body: o.body } : {}) });
  }

  private absolute(href: string): string {
    return new URL(href, this.serviceUrl).href;
  }
}

function componentNames(r: DavResponse): string[] {
  return xmlChildren(prop(r, CALDAV, 'supported-calendar-component-set'), CALDAV, 'comp').map((c) => (c.attributes.name ?? '').toUpperCase());
}

/** The collection URL of a folder ref (a tasks view of a calendar names the calendar itself). */
export function collectionOf(folderRef: string): string {
  return folderRef.endsWith(TASKS_VIEW) ? folderRef.slice(0, -TASKS_VIEW.length) : folderRef;
}
