/**
 * The corpus of real-client sessions in test/fixtures/clients (issue 16, item 3), checked without a server: every
 * session file has the shape the replay tool reads and cites where it comes from; every request line is one our
 * request parser accepts, names the session's device and says the protocol version the session claims; every request
 * body encodes with our WBXML codec and reads back the same in Debian's libwbxml (an independent codec); each
 * collection starts from SyncKey 0 before a later key is used; every folder a request names has a hint; and the
 * corpus covers the clients and protocol versions, and the quirks of the protocol notes, that the issue names.
 * The replay of every session against the real stack is a separate test.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { parseActiveSyncRequest } from '../../src/protocol/request.ts';
import { decodeWbxml } from '../../src/wbxml/decoder.ts';
import { encodeWbxml } from '../../src/wbxml/encoder.ts';
import type { WbxmlElement } from '../../src/wbxml/tree.ts';
import { fromXml } from '../../src/wbxml/xml.ts';
import { comparable, libwbxmlDecode, parseLibwbxmlXml } from './libwbxml.ts';

const ROOT = join(import.meta.dirname, '../fixtures/clients');

const bodySchema = z.object({
  contentType: z.string().min(1),
  bytes: z.number().int().nonnegative(),
  xml: z.string().optional(),
  text: z.string().optional(),
});
const sessionSchema = z.object({
  format: z.literal('activesync-edge-capture'),
  version: z.literal(1),
  tenant: z.string().optional(),
  user: z.string().min(1),
  deviceId: z.string().min(1),
  exportedAt: z.string().optional(),
  client: z.string().min(1),
  protocolVersion: z.enum(['12.0', '12.1', '14.0', '14.1', '16.0', '16.1']),
  sources: z
    .array(
      z.object({
        title: z.string().min(1),
        url: z.string().url().optional(),
        section: z.string().optional(),
        note: z.string().optional(),
      }),
    )
    .min(1),
  folders: z
    .record(z.string(), z.object({ type: z.number().int().min(1).max(19), name: z.string().min(1) }))
    .optional(),
  requests: z
    .array(
      z.object({
        time: z.string().datetime().optional(),
        ms: z.number().nonnegative().optional(),
        method: z.enum(['POST', 'OPTIONS']),
        command: z.string(),
        query: z.string(),
        path: z.string().startsWith('/').optional(),
        request: z.object({ headers: z.record(z.string(), z.string()), body: bodySchema.optional() }),
        response: z.object({ status: z.number().int(), headers: z.record(z.string(), z.string()) }).optional(),
        commandStatus: z.number().int().optional(),
        expect: z
          .object({
            httpStatus: z.number().int().optional(),
            status: z.number().int().optional(),
            headers: z.record(z.string(), z.string()).optional(),
          })
          .optional(),
        anonymous: z.boolean().optional(),
      }),
    )
    .min(1),
});
type Session = z.infer<typeof sessionSchema>;
type Exchange = Session['requests'][number];

function jsonFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? jsonFiles(join(dir, e.name)) : e.name.endsWith('.json') ? [join(dir, e.name)] : [],
  );
}

const files = jsonFiles(ROOT).sort();
const sessions = files.map((f) => ({ name: relative(ROOT, f), raw: JSON.parse(readFileSync(f, 'utf8')) as unknown }));
const parsed = sessions.map(({ name, raw }) => ({ name, session: sessionSchema.parse(raw) }));

/** The client families of the issue, by folder, with the protocol versions each speaks in the corpus. */
const COVERAGE: Record<string, string[]> = {
  'ms-as-spec': ['12.1', '14.0', '14.1', '16.0', '16.1'],
  ios: ['14.0', '14.1', '16.0', '16.1'],
  'android-gmail': ['12.0', '14.0', '14.1', '16.1'],
  'android-samsung': ['14.1', '16.1'],
  nine: ['14.1', '16.1'],
  outlook: ['14.0', '16.1'],
  'windows-mail': ['14.0', '16.1'],
  tbsync: ['14.0', '14.1', '16.1'],
  // Not a phone: the probe providers run against a deployment (its first OPTIONS carries no credentials).
  'connectivity-analyzer': ['14.0'],
};

const isActiveSync = (r: Exchange): boolean => r.method === 'POST' && r.command !== 'Autodiscover';
const wbxmlOf = (r: Exchange): WbxmlElement | undefined =>
  r.request.body?.xml !== undefined ? fromXml(r.request.body.xml) : undefined;
const childrenNamed = (e: WbxmlElement, tag: string): WbxmlElement[] => e.children.filter((c) => c.tag === tag);
const textOf = (e: WbxmlElement, tag: string): string | undefined => childrenNamed(e, tag)[0]?.text;
function walk(e: WbxmlElement, visit: (e: WbxmlElement) => void): void {
  visit(e);
  for (const c of e.children) walk(c, visit);
}
function requestLine(r: Exchange) {
  return parseActiveSyncRequest(
    new URL(`https://mail.example.test/Microsoft-Server-ActiveSync?${r.query}`),
    new Headers(r.request.headers),
  );
}
/** Elements libwbxml 0.11.8 does not know (page 25, 16.1 tokens): checked through our codec only (golden.test.ts). */
function beyondLibwbxml(tree: WbxmlElement): boolean {
  let beyond = false;
  walk(tree, (e) => {
    if (e.ns === 'Find' || ['AccountOnlyRemoteWipe', 'ProposedStartTime', 'ProposedEndTime'].includes(e.tag))
      beyond = true;
  });
  return beyond;
}

describe('the client corpus', () => {
  it('holds at least 25 sessions, none named like the replay tool’s own fixtures', () => {
    expect(files.length).toBeGreaterThanOrEqual(25);
    expect(
      files.filter((f) => relative(ROOT, f).split('/').pop()!.startsWith('replay-') && !f.includes('/ms-as-spec/')),
    ).toEqual([]);
  });

  it('covers every client family at the protocol versions it speaks', () => {
    const seen = new Map<string, Set<string>>();
    for (const { name, session } of parsed) {
      const family = name.split('/')[0]!;
      if (!seen.has(family)) seen.set(family, new Set());
      seen.get(family)!.add(session.protocolVersion);
    }
    for (const [family, versions] of Object.entries(COVERAGE)) {
      expect([...(seen.get(family) ?? [])].sort(), family).toEqual(expect.arrayContaining(versions));
    }
  });

  it('covers the quirks of the protocol notes', () => {
    const all = parsed.flatMap(({ name, session }) => session.requests.map((r) => ({ name, r, tree: wbxmlOf(r) })));
    const syncCollections = all.flatMap(({ name, tree }) => {
      if (tree?.tag !== 'Sync') return [];
      const cols: { name: string; col: WbxmlElement }[] = [];
      walk(tree, (e) => {
        if (e.tag === 'Collection') cols.push({ name, col: e });
      });
      return cols;
    });
    // SyncKey 0 with no Options, then the same collection's next Sync brings FilterType in Options (Android).
    const firstFilterAfterBareZero = parsed.some(({ session }) => {
      const bare = new Set<string>();
      for (const r of session.requests) {
        const tree = wbxmlOf(r);
        if (tree?.tag !== 'Sync') continue;
        for (const col of tree.children.flatMap((c) => childrenNamed(c, 'Collection'))) {
          const id = textOf(col, 'CollectionId')!;
          const options = childrenNamed(col, 'Options');
          if (textOf(col, 'SyncKey') === '0' && options.length === 0) bare.add(id);
          else if (bare.has(id) && options.some((o) => textOf(o, 'FilterType') !== undefined)) return true;
        }
      }
      return false;
    });
    expect(firstFilterAfterBareZero, 'SyncKey 0 without Options, then FilterType').toBe(true);
    // Two Options blocks, the first with Class SMS, the second the Email block with Conflict and RightsManagementSupport.
    expect(
      syncCollections.some(({ col }) => {
        const [sms, email] = childrenNamed(col, 'Options');
        return (
          textOf(sms ?? col, 'Class') === 'SMS' &&
          email !== undefined &&
          textOf(email, 'Class') === 'Email' &&
          textOf(email, 'Conflict') !== undefined &&
          email.children.some((c) => c.tag === 'RightsManagementSupport')
        );
      }),
      'two Options blocks (SMS, then Email)',
    ).toBe(true);
    // Windows Mail: base64 query, Content-Type application/vnd.ms-sync, AcceptMultiPart.
    const windows = all.filter(({ name }) => name.startsWith('windows-mail/'));
    expect(windows.some(({ r }) => isActiveSync(r) && requestLine(r).queryForm === 'base64')).toBe(true);
    expect(windows.some(({ r }) => r.request.headers['content-type'] === 'application/vnd.ms-sync')).toBe(true);
    expect(windows.some(({ r }) => isActiveSync(r) && requestLine(r).params.acceptMultiPart === true)).toBe(true);
    // 12.x: HTTP 449 before Provision; 14.x: Status 142.
    expect(all.some(({ r }) => r.expect?.httpStatus === 449)).toBe(true);
    expect(all.some(({ r }) => r.expect?.status === 142)).toBe(true);
    // iOS at 16.1: DeviceInformation inside Provision; the capitalised Autodiscover path.
    expect(
      all.some(
        ({ name, tree }) =>
          name.startsWith('ios/') &&
          tree?.tag === 'Provision' &&
          tree.children.some((c) => c.tag === 'DeviceInformation'),
      ),
    ).toBe(true);
    expect(all.some(({ name, r }) => name.startsWith('ios/') && r.path === '/Autodiscover/Autodiscover.xml')).toBe(
      true,
    );
    // The Remote Connectivity Analyzer: OPTIONS without credentials, answered 401 with the Basic challenge.
    expect(
      all.some(
        ({ r }) =>
          r.method === 'OPTIONS' &&
          r.anonymous === true &&
          r.expect?.httpStatus === 401 &&
          r.expect.headers?.['www-authenticate'] === 'Basic',
      ),
    ).toBe(true);
    // TbSync: its User-Agent and DeviceType.
    expect(
      all.some(
        ({ name, r }) => name.startsWith('tbsync/') && r.request.headers['user-agent'] === 'Thunderbird ActiveSync',
      ),
    ).toBe(true);
  });
});

describe.each(parsed)('$name', ({ name, session }) => {
  it('has the session shape and cites where it comes from', () => {
    expect(name.split('/')).toHaveLength(2);
    expect(Object.keys(COVERAGE)).toContain(name.split('/')[0]);
    for (const s of session.sources) expect(s.url ?? s.section, s.title).toBeTruthy();
    // At least one public, citable source; project notes may add to it, never replace it.
    expect(session.sources.filter((s) => s.url?.startsWith('https://')).length).toBeGreaterThanOrEqual(1);
    const times = session.requests.map((r) => Date.parse(r.time ?? ''));
    expect([...times].sort((a, b) => a - b)).toEqual(times);
  });

  it('carries no credential', () => {
    for (const r of session.requests) {
      for (const header of Object.keys(r.request.headers)) {
        expect(header).toBe(header.toLowerCase());
        expect(header).not.toMatch(/authorization|cookie|token/);
      }
    }
  });

  it('has request lines our parser accepts, naming the session’s device at its protocol version', () => {
    for (const r of session.requests.filter(isActiveSync)) {
      const line = requestLine(r);
      expect(line.command, r.query).toBe(r.command);
      expect(line.deviceId.toLowerCase(), r.query).toBe(session.deviceId.toLowerCase());
      expect(line.version, r.query).toBe(session.protocolVersion);
      if (line.queryForm === 'plain') {
        expect(r.request.headers['ms-asprotocolversion']).toBe(session.protocolVersion);
        expect(line.user, r.query).toBe(session.user);
      } else {
        // MS-ASHTTP §2.2.1.1.2.6: the version travels in the query, not in the header.
        expect(r.request.headers['ms-asprotocolversion']).toBeUndefined();
      }
    }
  });

  it('has bodies that encode with our codec, decode back the same, and read the same in libwbxml', () => {
    for (const r of session.requests) {
      const body = r.request.body;
      if (!body) continue;
      expect(r.request.headers['content-type']).toBe(body.contentType);
      if (body.xml === undefined) {
        expect(body.text, `${r.command} has a body`).toBeDefined();
        expect(Buffer.byteLength(body.text!)).toBe(body.bytes);
        continue;
      }
      const tree = fromXml(body.xml);
      expect(tree.tag === r.command || (r.command === 'GetItemEstimate' && tree.tag === 'GetItemEstimate')).toBe(true);
      const bytes = encodeWbxml(tree);
      expect(bytes.length, `${r.command}: bytes`).toBe(body.bytes);
      expect(comparable(decodeWbxml(bytes))).toEqual(comparable(tree));
      if (!beyondLibwbxml(tree)) expect(parseLibwbxmlXml(libwbxmlDecode(bytes))).toEqual(comparable(tree));
    }
  });

  it('starts every collection and the hierarchy from key 0, and names only folders it has hints for', () => {
    const started = new Set<string>();
    const folderIds = new Set<string>();
    for (const r of session.requests) {
      const tree = wbxmlOf(r);
      if (!tree) continue;
      if (tree.tag === 'FolderSync') {
        const key = textOf(tree, 'SyncKey');
        if (key !== '0') expect(started.has('hierarchy'), 'FolderSync before FolderSync 0').toBe(true);
        started.add('hierarchy');
      }
      walk(tree, (e) => {
        if (e.tag === 'Collection' && e.ns === 'AirSync') {
          const id = textOf(e, 'CollectionId')!;
          const key = textOf(e, 'SyncKey');
          if (key !== '0') expect(started.has(id), `collection ${id} continues before SyncKey 0`).toBe(true);
          started.add(id);
        }
        if (['CollectionId', 'SrcFldId', 'DstFldId', 'Id'].includes(e.tag) && e.text !== undefined)
          folderIds.add(e.text);
      });
      if (
        tree.tag !== 'FolderSync' &&
        tree.tag !== 'Provision' &&
        tree.tag !== 'Settings' &&
        tree.tag !== 'Search' &&
        tree.tag !== 'SendMail'
      )
        expect(started.has('hierarchy'), `${r.command} before FolderSync`).toBe(true);
    }
    for (const id of folderIds) expect(session.folders?.[id], `folder ${id}`).toBeDefined();
  });
});
