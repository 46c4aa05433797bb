/**
 * Property-based round trips over random trees, and fuzzing of the decoder with mutated and random input:
 * whatever the bytes, the decoder returns a tree or throws a WbxmlDecodeError, nothing else.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CODE_PAGES, type Namespace } from './codepages.ts';
import { decodeWbxml, decodeWbxmlYielding, WbxmlDecodeError, type DecodeLimits } from './decoder.ts';
import { encodeWbxml } from './encoder.ts';
import type { WbxmlElement } from './tree.ts';
import { fromXml, toXml } from './xml.ts';
import { emptyTagsSync } from '../../test/wbxml/bodies.ts';

const TAGS: { ns: Namespace; tag: string }[] = CODE_PAGES.flatMap((p) =>
  Object.values(p.tags).map((tag: string) => ({ ns: p.namespace as Namespace, tag })),
);

const tagArb = fc.constantFrom(...TAGS);
const valueArb = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.uint8Array({ maxLength: 40 }),
);

/** A random tree: any tag of any page, leaves with text or bytes. */
const treeArb: fc.Arbitrary<WbxmlElement> = fc.letrec<{ node: WbxmlElement }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.tuple(tagArb, fc.option(valueArb, { nil: undefined })).map(([t, v]) => leaf(t, v)),
    fc.tuple(tagArb, fc.array(tie('node'), { maxLength: 5 })).map(([t, children]) => ({ ...t, children })),
  ),
})).node;

function leaf(t: { ns: Namespace; tag: string }, value: string | Uint8Array | undefined): WbxmlElement {
  const element: WbxmlElement = { ...t, children: [] };
  if (typeof value === 'string') element.text = value;
  else if (value) element.opaque = value;
  return element;
}

/** What the wire can tell apart: '' is no content, and a string holding NUL travels as bytes. */
function wireForm(e: WbxmlElement): unknown {
  let value: unknown;
  if (e.opaque) value = { bytes: Buffer.from(e.opaque).toString('hex') };
  else if (e.text?.includes('\0')) value = { bytes: Buffer.from(e.text).toString('hex') };
  else if (e.text) value = { text: e.text };
  return { ns: e.ns, tag: e.tag, value, children: e.children.map(wireForm) };
}

/** Content as bytes, whether it was text or OPAQUE; '' is no content. */
function contentForm(e: WbxmlElement): unknown {
  const bytes = e.opaque ?? (e.text ? Buffer.from(e.text) : undefined);
  return {
    ns: e.ns,
    tag: e.tag,
    bytes: bytes && Buffer.from(bytes).toString('hex'),
    children: e.children.map(contentForm),
  };
}

describe('WBXML properties', () => {
  it('decode(encode(tree)) keeps every tag, namespace and value', () => {
    fc.assert(
      fc.property(treeArb, (tree) => {
        expect(wireForm(decodeWbxml(encodeWbxml(tree)))).toEqual(wireForm(tree));
      }),
      { numRuns: 3000 },
    );
  });

  it('encode(decode(bytes)) reproduces canonical bytes', () => {
    fc.assert(
      fc.property(treeArb, (tree) => {
        const bytes = encodeWbxml(tree);
        expect(encodeWbxml(decodeWbxml(bytes))).toEqual(bytes);
      }),
      { numRuns: 2000 },
    );
  });

  it('fromXml(toXml(tree)) gives back the same tree', () => {
    fc.assert(
      fc.property(treeArb, (tree) => {
        // XML shows binary elements as base64 and readable bytes as text, so text and bytes may trade places;
        // the content itself must survive.
        expect(contentForm(fromXml(toXml(tree)))).toEqual(contentForm(tree));
      }),
      { numRuns: 2000 },
    );
  });
});

/** Decoding must end in a tree or a WbxmlDecodeError; counts each outcome so the test can show what it covered. */
function decodeSafely(bytes: Uint8Array, outcomes: Map<string, number>): void {
  let key: string;
  try {
    decodeWbxml(bytes, { maxBytes: 4096, maxDepth: 16 });
    key = 'ok';
  } catch (err) {
    if (!(err instanceof WbxmlDecodeError)) throw err;
    key = err.code;
  }
  outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
}

const mutationArb = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({
    kind: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 6 }),
  }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 6 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);
type Mutation = typeof mutationArb extends fc.Arbitrary<infer M> ? M : never;

function mutate(input: Uint8Array, mutations: Mutation[]): Uint8Array {
  let bytes = Array.from(input);
  for (const m of mutations) {
    const at = bytes.length ? m.at % bytes.length : 0;
    switch (m.kind) {
      case 'flip':
        if (bytes.length) bytes[at] = bytes[at]! ^ (1 << m.bit);
        break;
      case 'set':
        if (bytes.length) bytes[at] = m.byte;
        break;
      case 'insert':
        bytes.splice(at, 0, ...m.bytes);
        break;
      case 'delete':
        bytes.splice(at, m.length);
        break;
      case 'truncate':
        bytes = bytes.slice(0, at);
        break;
    }
  }
  return new Uint8Array(bytes);
}

describe('WBXML decoder fuzzing', () => {
  const MUTATED_RUNS = 100_000;

  it(`survives ${MUTATED_RUNS} mutated documents with nothing but decode errors`, () => {
    const outcomes = new Map<string, number>();
    fc.assert(
      fc.property(treeArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (tree, mutations) => {
        decodeSafely(mutate(encodeWbxml(tree), mutations), outcomes);
      }),
      { numRuns: MUTATED_RUNS },
    );
    const total = [...outcomes.values()].reduce((a, b) => a + b, 0);
    expect(total).toBe(MUTATED_RUNS);
    // The mutations must reach deep into the decoder, not just break the header.
    for (const code of ['ok', 'truncated', 'unknown-tag', 'unbalanced-end', 'misplaced-content', 'bad-length']) {
      expect(outcomes.get(code), code).toBeGreaterThan(0);
    }
  }, 120_000);

  it('survives random token streams after a valid header', () => {
    const outcomes = new Map<string, number>();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (body) => {
        decodeSafely(new Uint8Array([0x03, 0x01, 0x6a, 0x00, ...body]), outcomes);
      }),
      { numRuns: 20_000 },
    );
    expect(outcomes.size).toBeGreaterThan(5);
  });
});

/** What a decode ends in: the tree's wire form, or the error's code and offset. */
async function outcomeOf(decode: () => WbxmlElement | Promise<WbxmlElement>): Promise<unknown> {
  try {
    return wireForm(await decode());
  } catch (err) {
    if (!(err instanceof WbxmlDecodeError)) throw err;
    return { code: err.code, offset: err.offset, message: err.message };
  }
}

describe('the yielding decoder (decodeWbxmlYielding)', () => {
  // Slices of a few bytes or elements: every token boundary is a slice boundary somewhere in the runs.
  const slicesArb = fc.record({ bytes: fc.integer({ min: 1, max: 16 }), elements: fc.integer({ min: 1, max: 8 }) });
  const limits: DecodeLimits = { maxBytes: 4096, maxDepth: 16, maxElements: 60 };
  const noWait = (): Promise<void> => Promise.resolve();

  it('gives the tree decodeWbxml gives, in slices as small as one byte or one element', async () => {
    await fc.assert(
      fc.asyncProperty(treeArb, slicesArb, async (tree, slices) => {
        const bytes = encodeWbxml(tree);
        expect(await outcomeOf(() => decodeWbxmlYielding(bytes, {}, { ...slices, pause: noWait }))).toEqual(
          await outcomeOf(() => decodeWbxml(bytes)),
        );
      }),
      { numRuns: 2000 },
    );
  });

  it('fails mutated documents with the error decodeWbxml gives, at the same byte', async () => {
    await fc.assert(
      fc.asyncProperty(
        treeArb,
        fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
        slicesArb,
        async (tree, mutations, slices) => {
          const bytes = mutate(encodeWbxml(tree), mutations);
          expect(await outcomeOf(() => decodeWbxmlYielding(bytes, limits, { ...slices, pause: noWait }))).toEqual(
            await outcomeOf(() => decodeWbxml(bytes, limits)),
          );
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('gives the event loop a turn between slices of a large body, and none for a small one', async () => {
    // A Sync and 49,999 empty Collection elements: a body at the server's default element budget.
    const body = emptyTagsSync(49_999);
    // Work queued before the decode starts (another request's I/O callback) runs before the decode ends.
    let ranMeanwhile = false;
    setImmediate(() => (ranMeanwhile = true));
    const root = await decodeWbxmlYielding(body, { maxElements: 50_000 });
    expect(ranMeanwhile).toBe(true);
    expect(root.children).toHaveLength(49_999);
    // A slice ends at 4096 elements by default.
    let pauses = 0;
    const counted = (): Promise<void> => {
      pauses += 1;
      return Promise.resolve();
    };
    expect(await decodeWbxmlYielding(body, { maxElements: 50_000 }, { pause: counted })).toEqual(root);
    expect(pauses).toBe(Math.floor(50_000 / 4096));
    // A body within one slice is decoded without a pause, as decodeWbxml would.
    pauses = 0;
    expect(await decodeWbxmlYielding(emptyTagsSync(1000), {}, { pause: counted })).toEqual(
      decodeWbxml(emptyTagsSync(1000)),
    );
    expect(pauses).toBe(0);
  });
});
