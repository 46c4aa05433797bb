import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeUidSet, encodeUidSet, UidSet } from './uidset.ts';

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

describe('UidSet', () => {
  it('behaves as a Set of numbers under any sequence of adds and deletes, and writes the same text form', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 400 }), { maxLength: 120 }),
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 400 })), { maxLength: 200 }),
        (initial, operations) => {
          const set = UidSet.of(initial);
          const model = new Set(initial);
          for (const [add, uid] of operations) {
            if (add) {
              set.add(uid);
              model.add(uid);
            } else {
              expect(set.delete(uid)).toBe(model.delete(uid));
            }
          }
          const sorted = [...model].sort((a, b) => a - b);
          expect([...set]).toEqual(sorted);
          expect(set.size).toBe(model.size);
          expect(set.toString()).toBe(encodeUidSet(sorted));
          expect(set.largest(5)).toEqual(sorted.slice(-5).reverse());
          for (let uid = 1; uid <= 400; uid += 7) expect(set.has(uid)).toBe(model.has(uid));
        },
      ),
    );
  });

  it('reads a 100,000-message folder without listing it', () => {
    const set = UidSet.parse(encodeUidSet(Array.from({ length: 100_000 }, (_, i) => i + 1)));
    expect(set.size).toBe(100_000);
    set.add(100_001);
    set.delete(50_000);
    expect(set.toString()).toBe(`1:${(49_998).toString(36)},2:${(50_000).toString(36)}`);
  });
});
