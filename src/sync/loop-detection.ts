/**
 * Loop detection for mail Sync, as Z-Push does it: a device that cannot take an item (a message its client chokes
 * on) never acknowledges the response that carried it, and asks for the same SyncKey again and again. A single resend
 * is normal (a lost response) and gets the stored answer; from the second resend on:
 * 1. the window shrinks to one item: the device gets the first item of that answer under a new key, the others go
 *    back to what is still to send, and later Syncs send one item at a time while the loop lasts;
 * 2. when the device then keeps resending a key whose answer held one item, that item is the broken one: it is
 *    skipped (the device gets the answer without it) and recorded with its subject and the reason, for admins
 *    (GET /admin/devices/:user/:deviceId, `activesync-edge admin device`).
 * The loop ends, and the window is the device's again, once the broken item is skipped or the device has caught up
 * with the folder.
 *
 * An item the server cannot convert at all is skipped at once the same way (`convertOrSkip`), instead of failing
 * every Sync of the folder.
 *
 * This module decides; replay.ts answers the resend and stores what was decided.
 */
import { flagDigitsMap } from './flag-tokens.ts';
import type { BrokenItem, CollectionState } from '../state/types.ts';
import { UidSet } from '../state/uidset.ts';
import { child, childText, type WbxmlElement } from '../wbxml/tree.ts';

/** Resends of one key before it counts as a loop (the first resend is a lost response). */
export const LOOP_RESENDS = 2;
/** Broken items kept per folder, newest last. */
export const MAX_BROKEN_ITEMS = 50;

/** What a resent key gets: the stored answer again, or a smaller one under a new key (see above). */
export type ResendOutcome =
  /** The stored answer; `state` (when set) counts the resend and is stored under the current key. */
  | { kind: 'replay'; state?: CollectionState }
  /** The stored answer's removals and at most one of its items; `state` goes with the new key. */
  | { kind: 'smaller'; commands: WbxmlElement[]; state: CollectionState; moreAvailable: boolean };

/**
 * What the device gets that resent `requestKey`, the key before the stored one, given the Commands of the stored
 * answer to it.
 */
export function onResend(
  state: CollectionState,
  collectionId: string,
  requestKey: string,
  commands: WbxmlElement[],
  now: number,
): ResendOutcome {
  const items = commands.filter((c) => c.tag === 'Add' || c.tag === 'Change');
  // Only mail, and only an answer that carried items, can loop on a broken item.
  if (state.watermark.kind !== 'imap' || items.length === 0) return { kind: 'replay' };

  const resends = (state.loop?.syncKey === requestKey ? state.loop.repeats : 0) + 1;
  if (resends < LOOP_RESENDS)
    return { kind: 'replay', state: { ...state, loop: { ...state.loop, syncKey: requestKey, repeats: resends } } };
  const removals = commands.filter((c) => c.tag !== 'Add' && c.tag !== 'Change');
  let next: CollectionState;
  let sent: WbxmlElement[];
  if (items.length > 1) {
    // Shrink: the first item now, the others back to what is still to send, one per Sync from here on.
    sent = [...removals, items[0]!];
    next = { ...putBack(state, collectionId, items.slice(1)), loop: { syncKey: requestKey, repeats: 0, window: 1 } };
  } else {
    // The one item the device cannot take: skip it, and say so.
    const broken = items[0]!;
    const serverId = childText(broken, 'ServerId') ?? '';
    const subject = childText(child(broken, 'ApplicationData'), 'Subject', 'Email');
    sent = removals;
    next = withBrokenItems(forget(state, collectionId, [broken]), [
      {
        serverId,
        ...(subject !== undefined ? { subject } : {}),
        reason: `the device asked again for the changes it had been sent with this item (SyncKey ${requestKey}, ${resends + 1} times)`,
        at: now,
      },
    ]);
    delete next.loop;
  }
  const wm = next.watermark.kind === 'imap' ? next.watermark : undefined;
  const moreAvailable = (wm ? UidSet.parse(wm.pendingAdds ?? '').size : 0) + next.pending.length > 0;
  return { kind: 'smaller', commands: sent, state: next, moreAvailable };
}

/** The window of a normal Sync: one item while a loop is being resolved. */
export function loopWindow(state: CollectionState, windowSize: number): number {
  return state.loop?.window !== undefined ? Math.min(windowSize, state.loop.window) : windowSize;
}

/** The state to store after a normal Sync: the loop is over once the device has caught up. */
export function afterSync(state: CollectionState, moreAvailable: boolean): CollectionState {
  if (!state.loop || moreAvailable) return state;
  const { loop: _over, ...rest } = state;
  return rest;
}

/**
 * Converts one item; an item whose conversion throws is left out (undefined) and added to `broken`, so that one bad
 * message does not fail every Sync of its folder.
 */
export async function convertOrSkip<T>(
  convert: () => Promise<T>,
  item: { serverId: string; subject?: string | undefined },
  broken: BrokenItem[],
  now = Date.now(),
): Promise<T | undefined> {
  try {
    return await convert();
  } catch (err) {
    const reason = `the server could not convert it: ${err instanceof Error ? err.message : String(err)}`;
    broken.push({
      serverId: item.serverId,
      ...(item.subject !== undefined ? { subject: item.subject } : {}),
      reason,
      at: now,
    });
    return undefined;
  }
}

/** The Subject header of a raw message, unfolded, as written (for the broken-item report, when parsing failed). */
export function subjectOf(source: Uint8Array): string | undefined {
  const head = new TextDecoder().decode(source.subarray(0, 64 * 1024)).split(/\r?\n\r?\n/, 1)[0] ?? '';
  const match = /^subject:[ \t]*(.*(?:\r?\n[ \t].*)*)/im.exec(head);
  return match ? match[1]!.replace(/\r?\n[ \t]+/g, ' ').trim() : undefined;
}

/** The state with these broken items added (replacing older records of the same items), at most MAX_BROKEN_ITEMS. */
export function withBrokenItems(state: CollectionState, broken: readonly BrokenItem[]): CollectionState {
  if (broken.length === 0) return state;
  const ids = new Set(broken.map((b) => b.serverId));
  const all = [...(state.brokenItems ?? []).filter((b) => !ids.has(b.serverId)), ...broken];
  return { ...state, brokenItems: all.slice(-MAX_BROKEN_ITEMS) };
}

/** `5:123` → 123. */
function uidOf(item: WbxmlElement, collectionId: string): number | undefined {
  const serverId = childText(item, 'ServerId') ?? '';
  if (!serverId.startsWith(`${collectionId}:`)) return undefined;
  const uid = Number(serverId.slice(collectionId.length + 1));
  return Number.isSafeInteger(uid) && uid > 0 ? uid : undefined;
}

/** Items taken out of an answer go back to what is still to send: Adds to pendingAdds, Changes to pending. */
function putBack(state: CollectionState, collectionId: string, items: WbxmlElement[]): CollectionState {
  return editUids(state, collectionId, items, (uid, tag, uids, pendingAdds, pending) => {
    if (tag === 'Add') {
      uids.delete(uid);
      pendingAdds.add(uid);
    } else if (!pending.some((p) => p.serverId === `${collectionId}:${uid}`)) {
      pending.push({ kind: 'change', serverId: `${collectionId}:${uid}` });
    }
  });
}

/** Items skipped for good: an Add is neither on the device nor still to send (a later change brings it back). */
function forget(state: CollectionState, collectionId: string, items: WbxmlElement[]): CollectionState {
  return editUids(state, collectionId, items, (uid, tag, uids) => {
    if (tag === 'Add') uids.delete(uid);
  });
}

function editUids(
  state: CollectionState,
  collectionId: string,
  items: WbxmlElement[],
  edit: (uid: number, tag: string, uids: UidSet, pendingAdds: UidSet, pending: CollectionState['pending']) => void,
): CollectionState {
  const wm = state.watermark;
  if (wm.kind !== 'imap') return state;
  const uids = UidSet.parse(wm.uids);
  const pendingAdds = UidSet.parse(wm.pendingAdds ?? '');
  const pending = [...state.pending];
  // Without CONDSTORE the flags the device has are kept per UID, in UID order: they follow the UID set.
  const digits = wm.flagDigits !== undefined ? flagDigitsMap(wm.uids, wm.flagDigits) : undefined;
  for (const item of items) {
    const uid = uidOf(item, collectionId);
    if (uid !== undefined) edit(uid, item.tag, uids, pendingAdds, pending);
  }
  const watermark = { ...wm, uids: uids.toString(), pendingAdds: pendingAdds.toString() };
  if (digits) watermark.flagDigits = [...uids].map((uid) => digits.get(uid) ?? '0').join('');
  return { ...state, watermark, pending };
}
