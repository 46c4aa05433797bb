/**
 * The yielding WBXML decoder (src/wbxml/decoder.ts decodeWbxmlYielding) inside workerd, which has no Node event loop:
 * the pause between slices (src/util/yield.ts) must still let the isolate's other ready work run, and the tree must
 * be the one decodeWbxml builds.
 */
import { describe, expect, it } from 'vitest';
import { decodeWbxml, decodeWbxmlYielding } from '../../src/wbxml/decoder.ts';
import { emptyTagsSync } from '../wbxml/bodies.ts';

describe('decodeWbxmlYielding in workerd', () => {
  it('lets a timer queued before a large decode run before the decode ends, and builds the same tree', async () => {
    const body = emptyTagsSync(49_999);
    let ranMeanwhile = false;
    setTimeout(() => (ranMeanwhile = true), 0);
    const root = await decodeWbxmlYielding(body, { maxElements: 50_000 });
    expect(ranMeanwhile).toBe(true);
    expect(root).toEqual(decodeWbxml(body, { maxElements: 50_000 }));
  });

  it('fails an over-budget body with the error decodeWbxml gives', async () => {
    const body = emptyTagsSync(60_000);
    await expect(decodeWbxmlYielding(body, { maxElements: 50_000 })).rejects.toMatchObject({
      code: 'too-large',
      offset: 5 + 49_999,
    });
    expect(() => decodeWbxml(body, { maxElements: 50_000 })).toThrow('more than 50000 elements');
  });
});
