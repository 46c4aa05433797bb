/**
 * Cross-check of our WBXML codec against an independent one, Debian's libwbxml, over the corpus in corpus/:
 * libwbxml's encoding must decode with ours to the same tree, ours must decode with libwbxml to the same tree, and
 * both encoders must produce the same bytes. libwbxml 0.11.8 has no page 25 (Find) and lacks a few 16.1 tokens;
 * those documents (named `*find*` and `*-161-*`) are checked against golden bytes in golden.test.ts instead.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CODE_PAGES, isBinaryTag } from '../../src/wbxml/codepages.ts';
import { decodeWbxml, decodeWbxmlYielding } from '../../src/wbxml/decoder.ts';
import { encodeWbxml } from '../../src/wbxml/encoder.ts';
import type { WbxmlElement } from '../../src/wbxml/tree.ts';
import { fromXml } from '../../src/wbxml/xml.ts';
import {
  comparable,
  LIBWBXML_OPAQUE,
  libwbxmlDecode,
  libwbxmlEncode,
  parseLibwbxmlXml,
  toLibwbxmlXml,
} from './libwbxml.ts';

const CORPUS = join(import.meta.dirname, 'corpus');
const files = readdirSync(CORPUS)
  .filter((f) => f.endsWith('.xml'))
  .sort();
const crossChecked = files.filter((f) => !f.includes('find') && !f.includes('-161-'));
const load = (f: string): WbxmlElement => fromXml(readFileSync(join(CORPUS, f), 'utf8'));

function pagesOf(e: WbxmlElement, into = new Set<string>()): Set<string> {
  into.add(e.ns);
  for (const c of e.children) pagesOf(c, into);
  return into;
}

describe('the corpus', () => {
  it('has at least 40 documents cross-checked with libwbxml, together touching every page 0–24', () => {
    expect(crossChecked.length).toBeGreaterThanOrEqual(40);
    const used = new Set<string>();
    for (const f of crossChecked) pagesOf(load(f), used);
    const pages0to24 = CODE_PAGES.filter((p) => p.page <= 24).map((p) => p.namespace);
    expect(pages0to24.filter((ns) => !used.has(ns))).toEqual([]);
  });
});

describe('binary content', () => {
  it('is OPAQUE for exactly the elements libwbxml treats as binary', () => {
    const ours = CODE_PAGES.flatMap((p) =>
      Object.values(p.tags)
        .filter((t) => isBinaryTag(p.namespace, t))
        .map((t) => `${p.namespace}:${t}`),
    );
    expect(new Set(ours)).toEqual(LIBWBXML_OPAQUE);
  });
});

describe.each(crossChecked)('%s', (file) => {
  const tree = load(file);

  it('libwbxml encodes it to bytes our decoder reads back to the same tree, in one go and in slices', async () => {
    const theirs = libwbxmlEncode(toLibwbxmlXml(tree));
    expect(comparable(decodeWbxml(theirs))).toEqual(comparable(tree));
    // The decoder the server uses for large bodies, here with a turn of the event loop after every 3 bytes or element.
    expect(comparable(await decodeWbxmlYielding(theirs, {}, { bytes: 3, elements: 1 }))).toEqual(comparable(tree));
  });

  it('our encoder writes bytes libwbxml reads back to the same tree', () => {
    const ours = encodeWbxml(tree);
    expect(parseLibwbxmlXml(libwbxmlDecode(ours))).toEqual(comparable(tree));
  });

  it('both encoders write the same bytes', () => {
    expect(Buffer.from(encodeWbxml(tree)).toString('hex')).toBe(
      Buffer.from(libwbxmlEncode(toLibwbxmlXml(tree))).toString('hex'),
    );
  });
});

// libwbxml cannot read these; golden.test.ts pins their bytes, and here they must survive our codec unchanged.
describe.each(files.filter((f) => !crossChecked.includes(f)))('%s (16.1 / Find, beyond libwbxml)', (file) => {
  it('round-trips through our encoder and decoder', () => {
    const tree = load(file);
    expect(comparable(decodeWbxml(encodeWbxml(tree)))).toEqual(comparable(tree));
  });
});
