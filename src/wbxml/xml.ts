/**
 * A readable XML form of the element tree, for logs, the CLI and test corpora, and the way back.
 *
 * The root carries its page as default namespace (`<Sync xmlns="AirSync" xmlns:airsyncbase="AirSyncBase">`), as
 * in the specifications' examples. Binary elements (codepages `binary`) hold base64. Content XML cannot carry as
 * text (bytes that are not UTF-8, control characters) is written as base64 after an `<!--opaque base64-->` or
 * `<!--text base64-->` marker, so that every tree survives the trip through XML.
 */
import { SaxesParser } from 'saxes';
import { isBinaryTag, pageByNamespace, tagCode, type Namespace } from './codepages.ts';
import type { WbxmlElement } from './tree.ts';
import { fromBase64, toBase64 } from '../util/base64.ts';

export interface XmlRenderOptions {
  /** Indentation per level; '' renders everything on one line. Default two spaces. */
  indent?: string;
  /** Replace passwords with `***` (for logs). */
  redact?: boolean;
  /** Cut values longer than this many characters (for logs). */
  maxValueLength?: number;
  /** Start with the `<?xml …?>` declaration. Default true. */
  declaration?: boolean;
  /**
   * Cut the values of these tags (bodies, attachments) to `maxLength` characters as rendered, followed by a
   * `<!--cut: N chars-->` note; unlike maxValueLength the XML still parses (base64 is cut to whole groups).
   */
  cut?: { tags: ReadonlySet<string>; maxLength: number };
}

const OPAQUE_MARK = 'opaque base64';
const TEXT_MARK = 'text base64';
const SECRET_TAGS = new Set(['Password']);

// ignoreBOM spelled out: the Workers types require it (false is the default: a BOM is dropped).
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

export function toXml(root: WbxmlElement, options: XmlRenderOptions = {}): string {
  const indent = options.indent ?? '  ';
  const newline = indent ? '\n' : '';
  const used = new Set<Namespace>();
  collectNamespaces(root, used);
  used.delete(root.ns);
  const declarations = [`xmlns="${root.ns}"`, ...[...used].sort().map((ns) => `xmlns:${prefixOf(ns)}="${ns}"`)];

  const out: string[] = [];
  if (options.declaration ?? true) out.push(`<?xml version="1.0" encoding="utf-8"?>${newline}`);
  const write = (element: WbxmlElement, depth: number, attrs: string): void => {
    const name = element.ns === root.ns ? element.tag : `${prefixOf(element.ns)}:${element.tag}`;
    const pad = indent.repeat(depth);
    const value = renderValue(element, options);
    if (value === undefined && element.children.length === 0) {
      out.push(`${pad}<${name}${attrs}/>${newline}`);
      return;
    }
    if (element.children.length === 0) {
      out.push(`${pad}<${name}${attrs}>${value}</${name}>${newline}`);
      return;
    }
    out.push(`${pad}<${name}${attrs}>${value ?? ''}${newline}`);
    for (const c of element.children) write(c, depth + 1, '');
    out.push(`${pad}</${name}>${newline}`);
  };
  write(root, 0, ` ${declarations.join(' ')}`);
  return out.join('');
}

function collectNamespaces(element: WbxmlElement, into: Set<Namespace>): void {
  into.add(element.ns);
  for (const c of element.children) collectNamespaces(c, into);
}

function prefixOf(ns: Namespace): string {
  return pageByNamespace(ns)!.prefix;
}

function renderValue(element: WbxmlElement, options: XmlRenderOptions): string | undefined {
  if (element.text === undefined && element.opaque === undefined) return undefined;
  if (options.redact && SECRET_TAGS.has(element.tag)) return '***';
  // A mark (opaque or text as base64) and the value after it; the value alone is what a cut shortens.
  let mark = '';
  let rendered: string;
  let base64 = true;
  if (element.opaque?.length === 0) {
    mark = `<!--${OPAQUE_MARK}-->`; // empty bytes are content (OPAQUE of length 0); an empty element has none
    rendered = '';
  } else if (isBinaryTag(element.ns, element.tag)) {
    rendered = toBase64(element.opaque ?? new TextEncoder().encode(element.text ?? ''));
  } else if (element.opaque !== undefined) {
    const text = utf8OrUndefined(element.opaque);
    if (text !== undefined && xmlSafe(text)) {
      rendered = escapeText(text);
      base64 = false;
    } else {
      mark = `<!--${OPAQUE_MARK}-->`;
      rendered = toBase64(element.opaque);
    }
  } else {
    const text = element.text!;
    if (xmlSafe(text)) {
      rendered = escapeText(text);
      base64 = false;
    } else {
      mark = `<!--${TEXT_MARK}-->`;
      rendered = toBase64(new TextEncoder().encode(text));
    }
  }
  const cut = options.cut;
  if (cut?.tags.has(element.tag) && rendered.length > cut.maxLength) {
    const kept = base64
      ? rendered.slice(0, cut.maxLength - (cut.maxLength % 4))
      : rendered.slice(0, cut.maxLength).replace(/&[^;]*$|[\uD800-\uDBFF]$/, '');
    return `${mark}${kept}<!--cut: ${rendered.length} chars-->`;
  }
  rendered = mark + rendered;
  const max = options.maxValueLength;
  if (max !== undefined && rendered.length > max) {
    // Cut on a character boundary that cannot split an entity reference.
    const cut = rendered.slice(0, max).replace(/&[^;]*$/, '');
    rendered = `${cut}…(${rendered.length} chars)`;
  }
  return rendered;
}

function utf8OrUndefined(bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** XML 1.0 forbids most control characters, even as character references. */
function xmlSafe(text: string): boolean {
  // eslint-disable-next-line no-control-regex
  return !/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(
    text,
  );
}

/** CR is written as a reference: XML parsers turn a literal CRLF into LF, and MIME needs its CRLFs. */
function escapeText(text: string): string {
  return text.replace(/[&<>\r]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : '&#13;'));
}

export class XmlParseError extends Error {
  override readonly name = 'XmlParseError';
}

/**
 * Parses the XML form back into a tree. Namespaces are page names; libwbxml's spelling with a trailing colon
 * (`xmlns="AirSync:"`) is accepted too. Whitespace between elements is ignored; a leaf keeps its text exactly.
 */
export function fromXml(xml: string): WbxmlElement {
  const parser = new SaxesParser({ xmlns: true });
  const stack: { element: WbxmlElement; text: string; mark?: string }[] = [];
  let root: WbxmlElement | undefined;

  parser.on('opentag', (node) => {
    const ns = namespaceOf(node.uri);
    if (!ns) throw new XmlParseError(`element <${node.name}> is in no ActiveSync namespace (${node.uri || 'none'})`);
    if (!tagCode(ns, node.local)) throw new XmlParseError(`no tag ${node.local} in namespace ${ns}`);
    for (const attr of Object.values(node.attributes)) {
      if (attr.prefix !== 'xmlns' && attr.name !== 'xmlns')
        throw new XmlParseError(`attribute ${attr.name}: ActiveSync has none`);
    }
    const element: WbxmlElement = { ns, tag: node.local, children: [] };
    const parent = stack[stack.length - 1];
    if (parent) parent.element.children.push(element);
    else root = element;
    stack.push({ element, text: '' });
  });
  parser.on('text', (text) => {
    const top = stack[stack.length - 1];
    if (top) top.text += text;
  });
  parser.on('cdata', (text) => {
    const top = stack[stack.length - 1];
    if (top) top.text += text;
  });
  parser.on('comment', (comment) => {
    const top = stack[stack.length - 1];
    const mark = comment.trim();
    if (top && (mark === OPAQUE_MARK || mark === TEXT_MARK)) top.mark = mark;
  });
  parser.on('closetag', () => {
    const { element, text, mark } = stack.pop()!;
    if (element.children.length > 0) {
      if (text.trim() !== '') throw new XmlParseError(`<${element.tag}> mixes text and elements`);
      return;
    }
    if (mark === OPAQUE_MARK) element.opaque = base64Content(text, element.tag);
    else if (text === '') return;
    else if (mark === TEXT_MARK) element.text = new TextDecoder().decode(base64Content(text, element.tag));
    else if (isBinaryTag(element.ns, element.tag)) element.opaque = base64Content(text, element.tag);
    else element.text = text;
  });

  try {
    parser.write(xml).close();
  } catch (err) {
    if (err instanceof XmlParseError) throw err;
    throw new XmlParseError(err instanceof Error ? err.message : String(err));
  }
  if (!root) throw new XmlParseError('no root element');
  return root;
}

function namespaceOf(uri: string): Namespace | undefined {
  const name = uri.endsWith(':') ? uri.slice(0, -1) : uri;
  return pageByNamespace(name)?.namespace;
}

function base64Content(text: string, tag: string): Uint8Array {
  const bytes = fromBase64(text);
  if (!bytes) throw new XmlParseError(`<${tag}> should hold base64`);
  return bytes;
}
