import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeUidSet, encodeUidSet } from './uidset.ts';

describe('UID sets', () => {
  it('writes runs as ranges of gaps and lengths', () => {
    expect(encodeUidSet([1, 2, 3, 4, 5, 9, 10, 200])).toBe('1:4,4:1,5a');
    expect(encodeUidSet([])).toBe('');
    expect(encodeUidSet([7, 7, 3])).toBe('3,4');
  });

  it('keeps a contiguous 100,000-message folder in a few bytes', () => {
    const uids = Array.from({ length: 100_000 }, (_, i) => i + 1);
    expect(encodeUidSet(uids)).toBe(`1:${(99_999).toString(36)}`);
    expect(decodeUidSet(encodeUidSet(uids))).toEqual(uids);
  });

  it('round-trips any set of UIDs', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 0xffffffff }), { maxLength: 300 }), (uids) => {
        expect(decodeUidSet(encodeUidSet(uids))).toEqual([...uids].sort((a, b) => a - b));
      }),
    );
  });

  it('rejects text that is not a UID set', () => {
    expect(() => decodeUidSet('1,,2')).toThrow(/malformed/);
    expect(() => decodeUidSet('zzzzzzzz')).toThrow(/malformed/);
    expect(() => decodeUidSet('-1')).toThrow(/malformed/);
  });
});
