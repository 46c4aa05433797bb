/**
 * The replay record: the answer committed with a new key is encoded once, stored, and spliced into the response; a
 * resent key gets the same bytes again (the end-to-end check against Dovecot is in test/e2e/mail/sync.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { openSqliteStateStore } from '../state/sqlite-node.ts';
import type { CollectionState } from '../state/types.ts';
import { decodeWbxml } from '../wbxml/decoder.ts';
import { encodeWbxml } from '../wbxml/encoder.ts';
import { child, el } from '../wbxml/tree.ts';
import { answerResent, collectionAnswer, commitAnswer } from './replay.ts';

const device = { tenant: 't', user: 'alice', deviceId: 'D1' };
const state: CollectionState = { class: 'Email', watermark: { kind: 'none' }, options: {}, pending: [], clientIds: {} };

const response = (collection: ReturnType<typeof el>) =>
  encodeWbxml(el('AirSync', 'Sync', [el('AirSync', 'Collections', [collection])]));

describe('the replay record', () => {
  it('stores the bytes the response carries, and answers a resent key with them again', async () => {
    const { store } = openSqliteStateStore(':memory:');
    await store.commitCollection(device, '5', 'absent', { syncKey: 'A', state });
    const context = { state: store, device };
    const answer = collectionAnswer({
      syncKey: 'B',
      collectionId: '5',
      commands: [el('AirSync', 'Delete', [el('AirSync', 'ServerId', '5:3')])],
      responses: [el('AirSync', 'Change', [el('AirSync', 'ServerId', '5:4'), el('AirSync', 'Status', 1)])],
      moreAvailable: true,
    });
    const committed = (await commitAnswer(
      context,
      '5',
      { from: 'A', replayKey: 'A' },
      { syncKey: 'B', state },
      answer,
    ))!;
    const stored = (await store.getCollection(device, '5'))!;
    expect(stored.syncKey).toBe('B');
    expect(stored.replay?.syncKey).toBe('A');
    expect(committed.encoded).toEqual(stored.replay!.response);

    const first = response(committed);
    expect(child(child(decodeWbxml(first), 'Collections'), 'Collection')).toEqual(decodeWbxml(encodeWbxml(answer)));
    // No items in the answer: no loop to detect, the stored answer as it is.
    const replayed = await answerResent(context, '5', stored, 'A');
    expect(response(replayed)).toEqual(first);
  });

  it('commits nothing and says so when another request moved the collection first', async () => {
    const { store } = openSqliteStateStore(':memory:');
    await store.commitCollection(device, '5', 'absent', { syncKey: 'C', state });
    const answer = collectionAnswer({
      syncKey: 'B',
      collectionId: '5',
      commands: [],
      responses: [],
      moreAvailable: false,
    });
    expect(
      await commitAnswer({ state: store, device }, '5', { from: 'A', replayKey: 'A' }, { syncKey: 'B', state }, answer),
    ).toBeUndefined();
    expect((await store.getCollection(device, '5'))!.syncKey).toBe('C');
  });
});
