/**
 * The little XML a WebDAV client needs: a namespace-aware tree of a multistatus answer (saxes), and the
 * per-resource properties in it. Writing requests is plain template text.
 */
import { SaxesParser } from 'saxes';

export const DAV = 'DAV:';
export const CALDAV = 'urn:ietf:params:xml:ns:caldav';
export const CARDDAV = 'urn:ietf:params:xml:ns:carddav';
export const CALENDARSERVER = 'http://calendarserver.org/ns/';

export interface XmlNode {
  ns: string;
  name: string;
  /** Attributes by local name (DAV uses few, e.g. CalDAV's `<comp name="VEVENT"/>`). */
  attributes: Record<string, string>;
  text: string;
  children: XmlNode[];
}

export function parseXml(xml: string): XmlNode {
  const parser = new SaxesParser({ xmlns: true });
  const stack: XmlNode[] = [];
  let root: XmlNode | undefined;
  parser.on('opentag', (tag) => {
    const attributes = Object.fromEntries(Object.values(tag.attributes).map((a) => [a.local, a.value]));
    const node: XmlNode = { ns: tag.uri, name: tag.local, attributes, text: '', children: [] };
    if (stack.length) stack[stack.length - 1]!.children.push(node);
    else root = node;
    stack.push(node);
  });
  parser.on('text', (text) => {
    const top = stack[stack.length - 1];
    if (top) top.text += text;
  });
  parser.on('cdata', (text) => {
    const top = stack[stack.length - 1];
    if (top) top.text += text;
  });
  parser.on('closetag', () => void stack.pop());
  parser.write(xml).close();
  if (!root) throw new Error('empty XML document');
  return root;
}

export function xmlChild(node: XmlNode | undefined, ns: string, name: string): XmlNode | undefined {
  return node?.children.find((c) => c.ns === ns && c.name === name);
}

export function xmlChildren(node: XmlNode | undefined, ns: string, name: string): XmlNode[] {
  return node?.children.filter((c) => c.ns === ns && c.name === name) ?? [];
}

/** One `<response>` of a multistatus: its href, the HTTP status of the resource, and its found (200) properties. */
export interface DavResponse {
  href: string;
  status: number | undefined;
  props: XmlNode[];
}

function statusCode(node: XmlNode | undefined): number | undefined {
  const match = /HTTP\/\d\.\d\s+(\d{3})/.exec(node?.text ?? '');
  return match ? Number(match[1]) : undefined;
}

export function parseMultistatus(xml: string): { responses: DavResponse[]; syncToken: string | undefined } {
  const root = parseXml(xml);
  const responses = xmlChildren(root, DAV, 'response').map((r) => {
    const props = xmlChildren(r, DAV, 'propstat')
      .filter((ps) => (statusCode(xmlChild(ps, DAV, 'status')) ?? 200) === 200)
      .flatMap((ps) => xmlChild(ps, DAV, 'prop')?.children ?? []);
    // hrefs stay as the server wrote them (percent-encoded): they are sent back verbatim.
    return { href: xmlChild(r, DAV, 'href')?.text.trim() ?? '', status: statusCode(xmlChild(r, DAV, 'status')), props };
  });
  return { responses, syncToken: xmlChild(root, DAV, 'sync-token')?.text.trim() };
}

export function prop(response: DavResponse, ns: string, name: string): XmlNode | undefined {
  return response.props.find((p) => p.ns === ns && p.name === name);
}

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
