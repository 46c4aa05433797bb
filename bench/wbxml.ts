/**
 * WBXML codec throughput: our decoder and encoder against Debian's libwbxml tools on the same documents.
 *
 * Documents: a Sync response with 100 HTML mails, a Sync response with 500 contacts, a GAL search result.
 * libwbxml runs as processes (wbxml2xml, xml2wbxml), so its inputs are scaled up (×SCALE) until one run takes long
 * enough that process start-up, measured separately on a tiny document and subtracted, does not dominate.
 *
 *   npm run bench:wbxml
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeWbxml } from '../src/wbxml/decoder.ts';
import { encodeWbxml } from '../src/wbxml/encoder.ts';
import { el, type WbxmlElement } from '../src/wbxml/tree.ts';
import { toXml } from '../src/wbxml/xml.ts';
import { toLibwbxmlXml } from '../test/wbxml/libwbxml.ts';

const SCALE = 20;

function htmlBody(i: number): string {
  const paragraphs = Array.from(
    { length: 12 },
    (_, p) =>
      `<p style="font-family:Calibri,sans-serif;font-size:11pt">Paragraph ${p} of message ${i}: the quarterly figures ` +
      `are attached; please review the <a href="https://intranet.example.test/reports/${i}/${p}">report</a> ` +
      `before Thursday &amp; send comments to the team. Grüße, Jürgen.</p>`,
  );
  return `<html><head><meta charset="utf-8"></head><body>${paragraphs.join('\n')}</body></html>`;
}

function mail(i: number): WbxmlElement {
  const body = htmlBody(i);
  return el('AirSync', 'Add', [
    el('AirSync', 'ServerId', `5:${1000 + i}`),
    el('AirSync', 'ApplicationData', [
      el('Email', 'To', '"Alice Example" <alice@example.test>, "Bob Example" <bob@example.test>'),
      el('Email', 'Cc', '"Carol Example" <carol@example.test>'),
      el('Email', 'From', `"Sender ${i}" <sender${i}@partner.example>`),
      el('Email', 'Subject', `Quarterly report ${i}: figures and next steps`),
      el('Email', 'DateReceived', '2026-11-20T09:15:00.000Z'),
      el('Email', 'DisplayTo', 'Alice Example; Bob Example'),
      el('Email', 'ThreadTopic', `Quarterly report ${i}`),
      el('Email', 'Importance', 1),
      el('Email', 'Read', i % 3 === 0 ? 1 : 0),
      el('AirSyncBase', 'Body', [
        el('AirSyncBase', 'Type', 2),
        el('AirSyncBase', 'EstimatedDataSize', body.length),
        el('AirSyncBase', 'Truncated', 0),
        el('AirSyncBase', 'Data', body),
        el('AirSyncBase', 'Preview', `Paragraph 0 of message ${i}: the quarterly figures are attached`),
      ]),
      el('AirSyncBase', 'Attachments', [
        el('AirSyncBase', 'Attachment', [
          el('AirSyncBase', 'DisplayName', `report-${i}.pdf`),
          el('AirSyncBase', 'FileReference', `5%3a${1000 + i}%3a0`),
          el('AirSyncBase', 'Method', 1),
          el('AirSyncBase', 'EstimatedDataSize', 48213),
        ]),
      ]),
      el('Email', 'MessageClass', 'IPM.Note'),
      el('Email', 'InternetCPID', 65001),
      el('Email', 'Flag', []),
      el('Email', 'ContentClass', 'urn:content-classes:message'),
      el('AirSyncBase', 'NativeBodyType', 2),
      el('Email2', 'ConversationId', new TextEncoder().encode(`conv-${String(i).padStart(11, '0')}`)),
      el('Email2', 'ConversationIndex', new TextEncoder().encode('CA2CFA8A23')),
      el('Email', 'Categories', []),
    ]),
  ]);
}

function contact(i: number): WbxmlElement {
  return el('AirSync', 'Add', [
    el('AirSync', 'ServerId', `9:${i}`),
    el('AirSync', 'ApplicationData', [
      el('Contacts', 'FileAs', `Lastname${i}, Firstname${i}`),
      el('Contacts', 'FirstName', `Firstname${i}`),
      el('Contacts', 'LastName', `Lastname${i}`),
      el('Contacts', 'CompanyName', 'Example Trading GmbH'),
      el('Contacts', 'JobTitle', 'Account Manager'),
      el('Contacts', 'Email1Address', `"Firstname${i} Lastname${i}" <person${i}@example.test>`),
      el('Contacts', 'MobilePhoneNumber', `+49 151 ${String(1000000 + i)}`),
      el('Contacts', 'BusinessPhoneNumber', `+49 30 ${String(200000 + i)}`),
      el('Contacts', 'BusinessAddressStreet', `Hauptstraße ${i % 200}`),
      el('Contacts', 'BusinessAddressCity', 'Berlin'),
      el('Contacts', 'BusinessAddressPostalCode', '10115'),
      el('Contacts', 'BusinessAddressCountry', 'Germany'),
      el('Contacts', 'Birthday', '1980-05-17T00:00:00.000Z'),
      el('Contacts', 'Categories', [el('Contacts', 'Category', 'Customers')]),
      el('Contacts2', 'NickName', `FL${i}`),
      el('AirSyncBase', 'Body', [
        el('AirSyncBase', 'Type', 1),
        el('AirSyncBase', 'Data', `Met at the trade fair ${2020 + (i % 6)}.`),
      ]),
    ]),
  ]);
}

function syncResponse(collectionId: string, adds: WbxmlElement[]): WbxmlElement {
  return el('AirSync', 'Sync', [
    el('AirSync', 'Collections', [
      el('AirSync', 'Collection', [
        el('AirSync', 'SyncKey', '{a1b2c3d4-0000-4000-8000-000000000001}7'),
        el('AirSync', 'CollectionId', collectionId),
        el('AirSync', 'Status', 1),
        el('AirSync', 'Commands', adds),
        el('AirSync', 'MoreAvailable'),
      ]),
    ]),
  ]);
}

function galResult(n: number): WbxmlElement {
  const results = Array.from({ length: n }, (_, i) =>
    el('Search', 'Result', [
      el('Search', 'Properties', [
        el('Gal', 'DisplayName', `Person ${i} Example`),
        el('Gal', 'Phone', `+49 30 ${200000 + i}`),
        el('Gal', 'Office', `Building ${i % 9}, Room ${100 + i}`),
        el('Gal', 'Title', 'Engineer'),
        el('Gal', 'Company', 'Example Trading GmbH'),
        el('Gal', 'Alias', `person${i}`),
        el('Gal', 'FirstName', 'Person'),
        el('Gal', 'LastName', `${i} Example`),
        el('Gal', 'MobilePhone', `+49 151 ${1000000 + i}`),
        el('Gal', 'EmailAddress', `person${i}@example.test`),
      ]),
    ]),
  );
  return el('Search', 'Search', [
    el('Search', 'Status', 1),
    el('Search', 'Response', [
      el('Search', 'Store', [
        el('Search', 'Status', 1),
        ...results,
        el('Search', 'Range', `0-${n - 1}`),
        el('Search', 'Total', n),
      ]),
    ]),
  ]);
}

interface Doc {
  name: string;
  tree: WbxmlElement;
  /** The same kind of document, SCALE times bigger, for the libwbxml processes. */
  large: WbxmlElement;
}

const documents: Doc[] = [
  {
    name: 'Sync, 100 HTML mails',
    tree: syncResponse('5', range(100).map(mail)),
    large: syncResponse('5', range(100 * SCALE).map(mail)),
  },
  {
    name: 'Sync, 500 contacts',
    tree: syncResponse('9', range(500).map(contact)),
    large: syncResponse('9', range(500 * SCALE).map(contact)),
  },
  { name: 'GAL search, 100 results', tree: galResult(100), large: galResult(100 * SCALE) },
];

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** Runs `fn` repeatedly for at least `ms` milliseconds; returns seconds per call. */
function timePerCall(fn: () => void, ms = 1500): number {
  for (let i = 0; i < 3; i++) fn(); // warm-up
  let calls = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < ms * 1e6) {
    fn();
    calls++;
    elapsed = Number(process.hrtime.bigint() - start);
  }
  return elapsed / 1e9 / calls;
}

/** Best of `runs` wall times of a process, in seconds. */
function processTime(cmd: string, args: string[], runs = 3): number {
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const start = process.hrtime.bigint();
    execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'ignore'], maxBuffer: 1 << 30 });
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
  }
  return best;
}

const mb = (bytes: number, seconds: number): number => bytes / 1e6 / seconds;
const fmt = (n: number): string => n.toFixed(1).padStart(8);

function libwbxmlAvailable(): boolean {
  try {
    execFileSync('wbxml2xml', [], { stdio: 'ignore' });
  } catch (err) {
    return (err as { code?: string }).code !== 'ENOENT';
  }
  return true;
}

export function runWbxmlBench(): void {
  const dir = mkdtempSync(join(tmpdir(), 'wbxml-bench-'));
  const hasLib = libwbxmlAvailable();
  try {
    // Process start-up, measured on a tiny document and subtracted from the libwbxml timings.
    const tiny = el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]);
    writeFileSync(join(dir, 'tiny.wbxml'), encodeWbxml(tiny));
    writeFileSync(join(dir, 'tiny.xml'), toLibwbxmlXml(tiny));
    const startDecode = hasLib
      ? processTime('wbxml2xml', ['-l', 'ACTIVESYNC', '-m', '0', '-o', join(dir, 'o.xml'), join(dir, 'tiny.wbxml')], 10)
      : 0;
    const startEncode = hasLib
      ? processTime('xml2wbxml', ['-a', '-n', '-o', join(dir, 'o.wbxml'), join(dir, 'tiny.xml')], 10)
      : 0;

    console.log(
      `WBXML codec throughput in MB/s of WBXML (higher is better); libwbxml inputs ×${SCALE}, start-up ${(startDecode * 1000).toFixed(1)} ms subtracted`,
    );
    console.log(
      `${'document'.padEnd(26)}${'KB'.padStart(8)}${'decode'.padStart(9)}${'encode'.padStart(9)}${'dec+enc'.padStart(9)}` +
        `${'→XML'.padStart(9)}${'lib dec'.padStart(9)}${'lib enc'.padStart(9)}${'lib d+e'.padStart(9)}${'ratio'.padStart(8)}`,
    );
    for (const doc of documents) {
      const bytes = encodeWbxml(doc.tree);
      const tree = decodeWbxml(bytes);
      const decode = timePerCall(() => decodeWbxml(bytes));
      const encode = timePerCall(() => encodeWbxml(tree));
      const toXmlTime = timePerCall(() => toXml(decodeWbxml(bytes), { indent: '' }));
      const ours = mb(bytes.length, decode + encode);

      let lib = { decode: NaN, encode: NaN, both: NaN };
      if (hasLib) {
        const large = encodeWbxml(doc.large);
        writeFileSync(join(dir, 'large.wbxml'), large);
        writeFileSync(join(dir, 'large.xml'), toLibwbxmlXml(doc.large));
        const d =
          processTime('wbxml2xml', [
            '-l',
            'ACTIVESYNC',
            '-m',
            '0',
            '-o',
            join(dir, 'o.xml'),
            join(dir, 'large.wbxml'),
          ]) - startDecode;
        const e =
          processTime('xml2wbxml', ['-a', '-n', '-o', join(dir, 'o.wbxml'), join(dir, 'large.xml')]) - startEncode;
        lib = { decode: mb(large.length, d), encode: mb(large.length, e), both: mb(large.length, d + e) };
      }
      console.log(
        `${doc.name.padEnd(26)}${fmt(bytes.length / 1024)}${fmt(mb(bytes.length, decode)).padStart(9)}${fmt(mb(bytes.length, encode)).padStart(9)}` +
          `${fmt(ours).padStart(9)}${fmt(mb(bytes.length, toXmlTime)).padStart(9)}${fmt(lib.decode).padStart(9)}${fmt(lib.encode).padStart(9)}` +
          `${fmt(lib.both).padStart(9)}${(ours / lib.both).toFixed(1).padStart(7)}x`,
      );
    }
    console.log('decode = WBXML → tree, encode = tree → WBXML, →XML = WBXML → tree → XML text;');
    console.log(
      'lib dec = wbxml2xml (WBXML → XML text), lib enc = xml2wbxml (XML text → WBXML); ratio = ours dec+enc / lib d+e.',
    );
    if (!hasLib) console.log('libwbxml is not installed (apt-get install libwbxml2-utils): its columns are empty.');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) runWbxmlBench();
