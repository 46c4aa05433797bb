import { describe, expect, it } from 'vitest';
import type { CollectionState } from '../state/types.ts';
import {
  encodeDavMarker,
  encodeImapMarker,
  encodeWaitMarker,
  hasPendingChanges,
  hierarchyMarker,
  markerShowsChange,
  newGeneration,
  parseImapMarker,
  watchedFolderKeys,
} from './feed.ts';

function imapState(
  highestModSeq: string,
  extra: Partial<Extract<CollectionState['watermark'], { kind: 'imap' }>> = {},
): CollectionState {
  return {
    class: 'Email',
    watermark: { kind: 'imap', uidValidity: 9, highestModSeq, uids: '1:4', ...extra },
    options: {},
    pending: [],
    clientIds: {},
  };
}

describe('feed markers', () => {
  it('round-trip IMAP markers, with and without a modseq', () => {
    const m = { uidValidity: 9, highestModSeq: 123456789012345n, uidNext: 5, messages: 4 };
    expect(parseImapMarker(encodeImapMarker(m))).toEqual(m);
    expect(parseImapMarker(encodeImapMarker({ ...m, highestModSeq: undefined }))).toEqual({
      ...m,
      highestModSeq: undefined,
    });
    expect(parseImapMarker('imap1 x 1 2 3')).toBeUndefined();
    expect(parseImapMarker('dav1 abc')).toBeUndefined();
  });

  it('compare modseqs numerically with what the device synced', () => {
    const at = (modseq: bigint, uidValidity = 9): string =>
      encodeImapMarker({ uidValidity, highestModSeq: modseq, uidNext: 5, messages: 4 });
    expect(markerShowsChange(at(10n), imapState('10'), undefined)).toBe(false);
    expect(markerShowsChange(at(9n), imapState('10'), undefined)).toBe(false);
    // 11 > 9 as numbers, not as strings ("11" < "9").
    expect(markerShowsChange(at(11n), imapState('9'), undefined)).toBe(true);
    // A recreated folder.
    expect(markerShowsChange(at(1n, 10), imapState('10'), undefined)).toBe(true);
  });

  it('without a modseq or a synced state, count only a change since the baseline', () => {
    const baseline = encodeImapMarker({ uidValidity: 9, highestModSeq: undefined, uidNext: 5, messages: 4 });
    const newer = encodeImapMarker({ uidValidity: 9, highestModSeq: undefined, uidNext: 6, messages: 5 });
    expect(markerShowsChange(newer, imapState(''), baseline)).toBe(true);
    expect(markerShowsChange(baseline, imapState(''), baseline)).toBe(false);
    expect(markerShowsChange(newer, undefined, baseline)).toBe(true);
    expect(markerShowsChange(newer, undefined, undefined)).toBe(false);
    // DAV: the collection's token against the device's.
    const dav: CollectionState = {
      class: 'Calendar',
      watermark: { kind: 'dav', syncToken: 't1', etags: {} },
      options: {},
      pending: [],
      clientIds: {},
    };
    expect(markerShowsChange(encodeDavMarker('t1'), dav, undefined)).toBe(false);
    expect(markerShowsChange(encodeDavMarker('t2'), dav, undefined)).toBe(true);
  });

  it('see pending changes (MoreAvailable) as changes', () => {
    expect(hasPendingChanges(imapState('1'))).toBe(false);
    expect(hasPendingChanges(imapState('1', { pendingAdds: '7:9' }))).toBe(true);
    expect(hasPendingChanges({ ...imapState('1'), pending: [{ kind: 'delete', serverId: '5:1' }] })).toBe(true);
  });

  it('fingerprint the folder list whatever its order', () => {
    expect(hierarchyMarker(['INBOX', 'Sent', 'A/B'])).toBe(hierarchyMarker(['A/B', 'INBOX', 'Sent']));
    expect(hierarchyMarker(['INBOX', 'Sent'])).not.toBe(hierarchyMarker(['INBOX', 'Sent', 'New']));
    expect(hierarchyMarker(['ab', 'c'])).not.toBe(hierarchyMarker(['a', 'bc']));
  });

  it('order generations by time, and watch the folders of live waits only', () => {
    const a = newGeneration(1_000);
    const b = newGeneration(2_000);
    expect(a < b).toBe(true);
    expect(newGeneration(10_000_000_000_000) > newGeneration(9_999_999_999_999)).toBe(true);
    const now = 1_000_000;
    const feed = [
      {
        folder: 'device:A',
        marker: encodeWaitMarker({ g: a, until: now + 10_000, folders: ['imap:INBOX', 'imap:Work'] }),
      },
      { folder: 'device:B', marker: encodeWaitMarker({ g: b, until: now - 3_600_000, folders: ['imap:Old'] }) },
      { folder: 'imap:INBOX', marker: 'imap1 1 1 1 1' },
    ];
    expect([...watchedFolderKeys(feed, now)].sort()).toEqual(['imap:INBOX', 'imap:Work']);
  });
});
