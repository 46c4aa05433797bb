/** Categories as IMAP keywords: every name survives the round trip as a valid atom (RFC 3501 §5.1.3 modified UTF-7). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { categoryToKeyword, keywordToCategory } from './category-keywords.ts';

describe('category keywords', () => {
  it('round-trips every category name through an IMAP keyword that is a valid atom', () => {
    const atom = /^[^\s(){%*"\\\]\u0000-\u001f\u007f-\uffff]+$/;
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }), (category) => {
        const keyword = categoryToKeyword(category);
        expect(keyword).toMatch(atom);
        expect(keyword[0]).not.toBe('$');
        expect(keywordToCategory(keyword)).toBe(category);
      }),
    );
    expect(categoryToKeyword('Work')).toBe('Work');
    expect(categoryToKeyword('$money')).toBe('&ACQ-money');
    expect(categoryToKeyword('R&D')).toBe('R&-D');
  });
});
