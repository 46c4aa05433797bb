/**
 * The element tree both codec directions work on. ActiveSync has no attributes and no mixed content, so an element
 * is a namespace, a tag, its children and, for leaves, a string (STR_I) or raw bytes (OPAQUE).
 */
import type { Namespace, TagOf } from './codepages.ts';

export interface WbxmlElement {
  readonly ns: Namespace;
  readonly tag: string;
  readonly children: WbxmlElement[];
  /** Inline string content (STR_I). */
  text?: string;
  /** Binary content (OPAQUE). */
  opaque?: Uint8Array;
  /**
   * A pre-encoded fragment (see `preEncoded` in encoder.ts): this element already encoded standalone, as encodeWbxml
   * returns it (header, then the element from code page 0). The encoder splices these bytes in place of the element,
   * so an answer stored once (the Sync replay record) goes out without being encoded again. The tag, text and
   * children stay for readers and must say what the bytes say: do not change a fragment's tree.
   */
  readonly encoded?: Uint8Array;
}

/** What `el` accepts as content: a value for a leaf, or children (falsy entries are skipped, for optional ones). */
export type ElementContent = string | number | Uint8Array | readonly (WbxmlElement | undefined | null | false)[];

/** Builds an element; the tag is checked against the namespace's code page at compile time. */
export function el<N extends Namespace>(ns: N, tag: TagOf<N>, content?: ElementContent): WbxmlElement {
  const element: WbxmlElement = { ns, tag, children: [] };
  if (content === undefined) return element;
  if (typeof content === 'string') element.text = content;
  else if (typeof content === 'number') element.text = String(content);
  else if (content instanceof Uint8Array) element.opaque = content;
  else for (const c of content) if (c) element.children.push(c);
  return element;
}

/** The first child with this tag, in `ns` (by default the parent's namespace). */
export function child(
  parent: WbxmlElement | undefined,
  tag: string,
  ns: Namespace = parent?.ns ?? 'AirSync',
): WbxmlElement | undefined {
  return parent?.children.find((c) => c.tag === tag && c.ns === ns);
}

/** Every child with this tag, in `ns` (by default the parent's namespace). */
export function children(
  parent: WbxmlElement | undefined,
  tag: string,
  ns: Namespace = parent?.ns ?? 'AirSync',
): WbxmlElement[] {
  return parent ? parent.children.filter((c) => c.tag === tag && c.ns === ns) : [];
}

const utf8 = new TextDecoder('utf-8');

/** The element's content as a string; OPAQUE content is read as UTF-8. Empty when the element has none. */
export function textOf(element: WbxmlElement | undefined): string {
  if (!element) return '';
  if (element.text !== undefined) return element.text;
  if (element.opaque) return utf8.decode(element.opaque);
  return '';
}

/** The element's content as bytes; a string is UTF-8 encoded. */
export function bytesOf(element: WbxmlElement | undefined): Uint8Array {
  if (!element) return new Uint8Array(0);
  if (element.opaque) return element.opaque;
  return new TextEncoder().encode(element.text ?? '');
}

/** The text of the named child, or undefined when there is no such child. */
export function childText(parent: WbxmlElement | undefined, tag: string, ns?: Namespace): string | undefined {
  const c = child(parent, tag, ns);
  return c ? textOf(c) : undefined;
}
