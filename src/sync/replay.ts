/**
 * The replay record of a collection: every answer that moves a collection to a new SyncKey is stored with it, under
 * the key the device sent. A device that lost our answer sends that key again and gets the same answer, without its
 * commands being applied twice (DESIGN §4).
 *
 * The answer is encoded once: the bytes stored as the replay are spliced into the response (a pre-encoded fragment,
 * src/wbxml/encoder.ts), and a replayed answer goes out as the stored bytes.
 */
import { firstSyncKey, REPLAY_TTL_MS } from '../protocol/synckey.ts';
import {
  StateConflictError,
  type CollectionState,
  type DeviceScope,
  type KeyedState,
  type StateStore,
} from '../state/types.ts';
import { decodeWbxml } from '../wbxml/decoder.ts';
import { preEncoded } from '../wbxml/encoder.ts';
import { child, el, type WbxmlElement } from '../wbxml/tree.ts';
import { onResend } from './loop-detection.ts';
import { SyncStatus } from './status.ts';

type ReplayContext = { state: StateStore; device: DeviceScope };

/** A collection's answer that moves it to `syncKey`. */
export function collectionAnswer(answer: {
  syncKey: string;
  collectionId: string;
  commands: WbxmlElement[];
  responses: WbxmlElement[];
  moreAvailable: boolean;
}): WbxmlElement {
  return el('AirSync', 'Collection', [
    el('AirSync', 'SyncKey', answer.syncKey),
    el('AirSync', 'CollectionId', answer.collectionId),
    el('AirSync', 'Status', String(SyncStatus.Success)),
    answer.commands.length ? el('AirSync', 'Commands', answer.commands) : undefined,
    answer.responses.length ? el('AirSync', 'Responses', answer.responses) : undefined,
    answer.moreAvailable ? el('AirSync', 'MoreAvailable') : undefined,
  ]);
}

/**
 * Moves the collection from key `from` to `next.syncKey` (compare-and-set), storing `answer` as the replay for
 * `replayKey`, the key the device sent. Returns the answer encoded once, to go into the response; undefined when
 * another request of this device moved the collection first, in which case nothing was stored.
 */
export async function commitAnswer(
  context: ReplayContext,
  collectionId: string,
  keys: { from: string; replayKey: string },
  next: { syncKey: string; state: CollectionState },
  answer: WbxmlElement,
  now = Date.now(),
): Promise<WbxmlElement | undefined> {
  const encoded = preEncoded(answer);
  try {
    await context.state.commitCollection(
      context.device,
      collectionId,
      { syncKey: keys.from },
      {
        ...next,
        replay: { syncKey: keys.replayKey, response: encoded.encoded!, expiresAt: now + REPLAY_TTL_MS },
      },
    );
  } catch (err) {
    if (err instanceof StateConflictError) return undefined;
    throw err;
  }
  return encoded;
}

/**
 * The answer to a device that resent `requestKey`, the key before the stored one: the stored answer again, or, in a
 * loop (loop-detection.ts), a smaller one committed under a new key.
 */
export async function answerResent(
  context: ReplayContext,
  collectionId: string,
  stored: KeyedState<CollectionState>,
  requestKey: string,
  now = Date.now(),
): Promise<WbxmlElement> {
  const bytes = stored.replay!.response;
  // Our own answer, read back: the budget for devices' bodies does not apply (a window of large items is bigger).
  const replayed = preEncoded(decodeWbxml(bytes, { maxElements: Number.POSITIVE_INFINITY }), bytes);
  const outcome = onResend(stored.state, collectionId, requestKey, child(replayed, 'Commands')?.children ?? [], now);
  if (outcome.kind === 'replay') {
    if (outcome.state) {
      // Counting the resend is bookkeeping: a request that moved the folder meanwhile wins, the answer stands.
      try {
        await context.state.commitCollection(
          context.device,
          collectionId,
          { syncKey: stored.syncKey },
          { ...stored, state: outcome.state },
        );
      } catch (err) {
        if (!(err instanceof StateConflictError)) throw err;
      }
    }
    return replayed;
  }
  const syncKey = firstSyncKey();
  const smaller = collectionAnswer({
    syncKey,
    collectionId,
    commands: outcome.commands,
    responses: child(replayed, 'Responses')?.children ?? [],
    moreAvailable: outcome.moreAvailable,
  });
  const committed = await commitAnswer(
    context,
    collectionId,
    { from: stored.syncKey, replayKey: requestKey },
    { syncKey, state: outcome.state },
    smaller,
    now,
  );
  // Another request of this device moved the folder first: this one gets the old answer; the next resend decides.
  return committed ?? replayed;
}
