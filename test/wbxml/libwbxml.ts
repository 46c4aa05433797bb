/**
 * Driving Debian's libwbxml (`xml2wbxml`, `wbxml2xml`, package libwbxml2-utils 0.11.8) as an independent codec,
 * and translating between its XML dialect and ours.
 *
 * Its dialect differs from ours in two ways: namespaces carry a trailing colon (`xmlns="AirSync:"`), and some tags
 * have other names (where the 2022 MS-ASWBXML tables renamed them). OPAQUE content is base64 in
 * both directions, as in ours.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SaxesParser } from 'saxes';
import type { WbxmlElement } from '../../src/wbxml/tree.ts';

/** libwbxml's name → the specification's, per namespace. Written from the two sources, not from our code pages. */
const LIB_TO_SPEC: Record<string, Record<string, string>> = {
  Contacts: {
    AssistantTelephoneNumber: 'AssistantPhoneNumber',
    ...addressFields('Business'),
    ...addressFields('Home'),
    ...addressFields('Other'),
  },
  Email: {
    AttOId: 'AttOid',
    DTStamp: 'DtStamp',
    'Reply-To': 'ReplyTo',
    FlagStatus: 'Status',
    ...recurrence([
      'Type',
      'Until',
      'Occurrences',
      'Interval',
      'DayOfWeek',
      'DayOfMonth',
      'WeekOfMonth',
      'MonthOfYear',
    ]),
  },
  AirNotify: { LifeTime: 'Lifetime' },
  Calendar: {
    TimeZone: 'Timezone',
    Attendee_Email: 'Email',
    Attendee_Name: 'Name',
    Attendee_Status: 'AttendeeStatus',
    Attendee_Type: 'AttendeeType',
    Compressed_RTF: 'CompressedRTF',
    DTStamp: 'DtStamp',
    Exception_Deleted: 'Deleted',
    Exception_StartTime: 'ExceptionStartTime',
    Organizer_Email: 'OrganizerEmail',
    Organizer_Name: 'OrganizerName',
    ...recurrence([
      'Type',
      'Until',
      'Occurrences',
      'Interval',
      'DayOfWeek',
      'DayOfMonth',
      'WeekOfMonth',
      'MonthOfYear',
    ]),
  },
  Tasks: {
    UTCDueDate: 'UtcDueDate',
    UTCStartDate: 'UtcStartDate',
    ...recurrence([
      'Type',
      'Start',
      'Until',
      'Occurrences',
      'Interval',
      'DayOfMonth',
      'DayOfWeek',
      'WeekOfMonth',
      'MonthOfYear',
      'Regenerate',
      'DeadOccur',
    ]),
  },
  Provision: { DeviceEncryptionEnabled: 'RequireStorageCardEncryption' },
  Settings: { ihsManagementInformation: 'RightsManagementInformation', SmtpAddress: 'SMTPAddress' },
  ComposeMail: { MIME: 'Mime', ForwardeeName: 'Name', ForwardeeEmail: 'Email' },
  RightsManagement: { RMOwner: 'Owner', RemoveRightsManagementDistribution: 'RemoveRightsManagementProtection' },
};

function addressFields(kind: string): Record<string, string> {
  const fields = ['City', 'Country', 'PostalCode', 'State', 'Street'];
  return Object.fromEntries(fields.map((f) => [`${kind}${f}`, `${kind}Address${f}`]));
}

function recurrence(names: string[]): Record<string, string> {
  return Object.fromEntries(names.map((n) => [`Recurrence_${n}`, n]));
}

const SPEC_TO_LIB: Record<string, Record<string, string>> = Object.fromEntries(
  Object.entries(LIB_TO_SPEC).map(([ns, names]) => [
    ns,
    Object.fromEntries(Object.entries(names).map(([l, s]) => [s, l])),
  ]),
);

/** The elements libwbxml encodes as OPAQUE (from base64 in its XML input) and writes as base64 when decoding. */
export const LIBWBXML_OPAQUE = new Set([
  'ComposeMail:Mime',
  'AirSyncBase:Content',
  'Email2:ConversationId',
  'Email2:ConversationIndex',
  'Search:ConversationId',
  'ItemOperations:ConversationId',
  'Gal:Data',
  'ResolveRecipients:Data',
]);

const DOCTYPE = '<!DOCTYPE ActiveSync PUBLIC "-//MICROSOFT//DTD ActiveSync//EN" "http://www.microsoft.com/">';

/** Our tree in libwbxml's XML dialect, ready for xml2wbxml. */
export function toLibwbxmlXml(root: WbxmlElement): string {
  const out: string[] = ['<?xml version="1.0"?>', DOCTYPE];
  const write = (e: WbxmlElement, parentNs: string | undefined): void => {
    const name = SPEC_TO_LIB[e.ns]?.[e.tag] ?? e.tag;
    const xmlns = e.ns === parentNs ? '' : ` xmlns="${e.ns}:"`;
    const value = e.opaque
      ? Buffer.from(e.opaque).toString('base64')
      : e.text !== undefined
        ? escapeXmlText(e.text)
        : '';
    if (!value && e.children.length === 0) {
      out.push(`<${name}${xmlns}/>`);
      return;
    }
    out.push(`<${name}${xmlns}>${value}`);
    for (const c of e.children) write(c, e.ns);
    out.push(`</${name}>`);
  };
  write(root, undefined);
  return out.join('');
}

function escapeXmlText(s: string): string {
  return s.replace(/[&<>\r]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&#13;'));
}

/** A comparable form of a document: namespace, spec name, content as a string, children. */
export interface Node {
  ns: string;
  tag: string;
  value: string;
  children: Node[];
}

/** Our tree in comparable form; binary content is shown as libwbxml writes it, in base64. */
export function comparable(e: WbxmlElement): Node {
  const value = e.opaque ? Buffer.from(e.opaque).toString('base64') : (e.text ?? '');
  return { ns: e.ns, tag: e.tag, value, children: e.children.map(comparable) };
}

/** libwbxml's XML output in comparable form, with its names translated to the specification's. */
export function parseLibwbxmlXml(xml: string): Node {
  const parser = new SaxesParser({ xmlns: true });
  const stack: Node[] = [];
  let root: Node | undefined;
  parser.on('opentag', (t) => {
    const ns = t.uri.replace(/:$/, '');
    const node: Node = { ns, tag: LIB_TO_SPEC[ns]?.[t.local] ?? t.local, value: '', children: [] };
    if (stack.length) stack[stack.length - 1]!.children.push(node);
    else root = node;
    stack.push(node);
  });
  parser.on('text', (text) => {
    const top = stack[stack.length - 1];
    if (top && top.children.length === 0) top.value += text;
  });
  parser.on('closetag', () => {
    const node = stack.pop()!;
    if (node.children.length > 0) node.value = '';
  });
  parser.write(xml).close();
  if (!root) throw new Error('libwbxml produced no root element');
  return root;
}

const workDir = mkdtempSync(join(tmpdir(), 'libwbxml-'));

/** xml2wbxml -a -n: anonymous public id, no string table, which is the ActiveSync form. */
export function libwbxmlEncode(xml: string): Uint8Array {
  const input = join(workDir, 'in.xml');
  const output = join(workDir, 'out.wbxml');
  writeFileSync(input, xml);
  rmSync(output, { force: true });
  execFileSync('xml2wbxml', ['-a', '-n', '-o', output, input], { stdio: 'pipe' });
  return new Uint8Array(readFileSync(output));
}

/** wbxml2xml in compact mode (no indentation, so text comes back exactly). */
export function libwbxmlDecode(bytes: Uint8Array): string {
  const input = join(workDir, 'in.wbxml');
  writeFileSync(input, bytes);
  const xml = execFileSync('wbxml2xml', ['-l', 'ACTIVESYNC', '-m', '0', '-o', '-', input], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return Buffer.from(xml).toString('utf8');
}
