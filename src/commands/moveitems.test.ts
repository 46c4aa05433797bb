/** How MoveItems edits a collection state: what the device has, Sync's positional flag digits, and what is pending. */
import { describe, expect, it } from 'vitest';
import type { CollectionState } from '../state/types.ts';
import { decodeUidSet, encodeUidSet } from '../state/uidset.ts';
import { afterMoves } from './moveitems.ts';

function state(
  uids: number[],
  extra: { flagDigits?: string; pendingAdds?: number[]; pending?: CollectionState['pending'] } = {},
): CollectionState {
  return {
    class: 'Email',
    watermark: {
      kind: 'imap',
      uidValidity: 7,
      highestModSeq: '42',
      uids: encodeUidSet(uids),
      ...(extra.pendingAdds ? { pendingAdds: encodeUidSet(extra.pendingAdds) } : {}),
      ...(extra.flagDigits !== undefined ? { flagDigits: extra.flagDigits } : {}),
    },
    options: { filterType: 3 },
    pending: extra.pending ?? [],
    clientIds: {},
  };
}

function imap(s: CollectionState): Extract<CollectionState['watermark'], { kind: 'imap' }> {
  if (s.watermark.kind !== 'imap') throw new Error('not an imap watermark');
  return s.watermark;
}

describe('afterMoves', () => {
  it('removes moved-away UIDs and adds moved-in ones, keeping everything else', () => {
    const next = afterMoves(state([1, 2, 3, 10]), '5', new Set([2]), new Map([[11, undefined]]));
    expect(decodeUidSet(imap(next).uids)).toEqual([1, 3, 10, 11]);
    expect(imap(next)).toMatchObject({ uidValidity: 7, highestModSeq: '42' });
    expect(imap(next).flagDigits).toBeUndefined();
    expect(next.options).toEqual({ filterType: 3 });
  });

  it('keeps the flag digits aligned with the UIDs, one per UID in UID order', () => {
    const next = afterMoves(
      state([1, 2, 3, 10], { flagDigits: '1234' }),
      '5',
      new Set([2]),
      new Map([
        [5, 'f'],
        [20, undefined],
      ]),
    );
    expect(decodeUidSet(imap(next).uids)).toEqual([1, 3, 5, 10, 20]);
    expect(imap(next).flagDigits).toBe('13f40');
  });

  it('drops what was still pending for a moved-away item, and only that', () => {
    const before = state([1, 2, 3], {
      pendingAdds: [4, 6],
      pending: [
        { kind: 'change', serverId: '5:2' },
        { kind: 'change', serverId: '5:3' },
        { kind: 'delete', serverId: '9:2' },
      ],
    });
    const next = afterMoves(before, '5', new Set([2, 6]), new Map());
    expect(decodeUidSet(imap(next).pendingAdds!)).toEqual([4]);
    expect(next.pending).toEqual([
      { kind: 'change', serverId: '5:3' },
      { kind: 'delete', serverId: '9:2' },
    ]);
  });
});
