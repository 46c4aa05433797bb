/**
 * Loop detection's bookkeeping on a stored collection (the end-to-end loop against Dovecot is in
 * test/e2e/devices-admin.test.ts): what goes back to be sent, what is skipped, and the per-UID flags of a server
 * without CONDSTORE, which must stay aligned with the UID set.
 */
import { describe, expect, it } from 'vitest';
import { flagDigitsMap } from './flag-tokens.ts';
import { openSqliteStateStore } from '../state/sqlite-node.ts';
import type { CollectionState } from '../state/types.ts';
import { encodeUidSet, UidSet } from '../state/uidset.ts';
import { encodeWbxml } from '../wbxml/encoder.ts';
import { child, children, childText, el } from '../wbxml/tree.ts';
import { afterSync, loopWindow, subjectOf } from './loop-detection.ts';
import { answerResent } from './replay.ts';

const device = { tenant: 't', user: 'alice', deviceId: 'D1' };

function add(uid: number, subject: string) {
  return el('AirSync', 'Add', [
    el('AirSync', 'ServerId', `5:${uid}`),
    el('AirSync', 'ApplicationData', [el('Email', 'Subject', subject)]),
  ]);
}

async function storeWithAnswer(): Promise<ReturnType<typeof openSqliteStateStore>['store']> {
  const { store } = openSqliteStateStore(':memory:');
  // The device had UIDs 1, 2 (flags 1 and 3); the answer to key A sent 7, 8, 9 (flags 0, 2, 1) and a Delete of 3.
  const state: CollectionState = {
    class: 'Email',
    watermark: {
      kind: 'imap',
      uidValidity: 1,
      highestModSeq: '',
      uids: encodeUidSet([1, 2, 7, 8, 9]),
      pendingAdds: encodeUidSet([4]),
      flagDigits: '13021',
    },
    options: {},
    pending: [],
    clientIds: {},
  };
  const answer = el('AirSync', 'Collection', [
    el('AirSync', 'SyncKey', 'B'),
    el('AirSync', 'CollectionId', '5'),
    el('AirSync', 'Status', '1'),
    el('AirSync', 'Commands', [
      el('AirSync', 'Delete', [el('AirSync', 'ServerId', '5:3')]),
      add(9, 'Nine'),
      add(8, 'Eight'),
      add(7, 'Seven'),
    ]),
    el('AirSync', 'MoreAvailable'),
  ]);
  await store.commitCollection(device, '5', 'absent', {
    syncKey: 'B',
    state,
    replay: { syncKey: 'A', response: encodeWbxml(answer), expiresAt: Date.now() + 60_000 },
  });
  return store;
}

describe('loop detection', () => {
  it('answers the first resend with the stored answer, and shrinks to one item on the second', async () => {
    const store = await storeWithAnswer();
    const context = { state: store, device };
    const first = await answerResent(context, '5', (await store.getCollection(device, '5'))!, 'A');
    expect(childText(first, 'SyncKey')).toBe('B');
    expect(children(child(first, 'Commands'), 'Add')).toHaveLength(3);

    const second = await answerResent(context, '5', (await store.getCollection(device, '5'))!, 'A');
    const key = childText(second, 'SyncKey')!;
    expect(key).not.toBe('B');
    expect(child(second, 'Commands')!.children.map((c) => `${c.tag} ${childText(c, 'ServerId')}`)).toEqual([
      'Delete 5:3',
      'Add 5:9',
    ]);
    expect(child(second, 'MoreAvailable')).toBeDefined();

    const stored = (await store.getCollection(device, '5'))!;
    expect(stored.syncKey).toBe(key);
    expect(stored.replay?.syncKey).toBe('A');
    expect(stored.state.loop).toEqual({ syncKey: 'A', repeats: 0, window: 1 });
    const wm = stored.state.watermark as Extract<CollectionState['watermark'], { kind: 'imap' }>;
    expect([...UidSet.parse(wm.uids)]).toEqual([1, 2, 9]);
    expect([...UidSet.parse(wm.pendingAdds!)]).toEqual([4, 7, 8]);
    // The flags stay with their UIDs.
    expect([...flagDigitsMap(wm.uids, wm.flagDigits!)]).toEqual([
      [1, '1'],
      [2, '3'],
      [9, '1'],
    ]);
    expect(loopWindow(stored.state, 100)).toBe(1);
    expect(afterSync(stored.state, true).loop).toBeDefined();
    expect(afterSync(stored.state, false).loop).toBeUndefined();
  });

  it('skips and records the single item of an answer resent twice more', async () => {
    const store = await storeWithAnswer();
    const context = { state: store, device };
    await answerResent(context, '5', (await store.getCollection(device, '5'))!, 'A');
    await answerResent(context, '5', (await store.getCollection(device, '5'))!, 'A');
    // The shrunk answer (one Add, 5:9) is resent twice more: 5:9 is the broken one.
    await answerResent(context, '5', (await store.getCollection(device, '5'))!, 'A');
    const skipped = await answerResent(context, '5', (await store.getCollection(device, '5'))!, 'A', 1234);
    expect(child(skipped, 'Commands')!.children.map((c) => c.tag)).toEqual(['Delete']);

    const stored = (await store.getCollection(device, '5'))!;
    expect(stored.state.loop).toBeUndefined();
    expect(stored.state.brokenItems).toEqual([
      { serverId: '5:9', subject: 'Nine', reason: expect.stringMatching(/SyncKey A, 3 times/), at: 1234 },
    ]);
    const wm = stored.state.watermark as Extract<CollectionState['watermark'], { kind: 'imap' }>;
    expect([...UidSet.parse(wm.uids)]).toEqual([1, 2]);
    expect([...UidSet.parse(wm.pendingAdds!)]).toEqual([4, 7, 8]);
    expect(wm.flagDigits).toBe('13');
  });

  it('reads the Subject of a raw message, folded or not', () => {
    const raw = (head: string): Uint8Array => new TextEncoder().encode(`${head}\r\n\r\nSubject: not this one\r\n`);
    expect(subjectOf(raw('From: a@b\r\nSubject: Hello\r\n there\r\nTo: c@d'))).toBe('Hello there');
    expect(subjectOf(raw('From: a@b'))).toBeUndefined();
  });
});
