/**
 * The hanging Sync: a Sync with Wait or HeartbeatInterval (MS-ASCMD §2.2.3.195, §2.2.3.83) that has nothing to send
 * waits for a change like a Ping, on the generic wait of src/push/wait.ts (capped at PING_MAX_HEARTBEAT), then syncs
 * again. At the end, or when a newer request of the device comes, it answers with an empty response (HTTP 200
 * without a body: "nothing changed, keep your keys", MS-ASCMD §2.2.1.21). A response with anything in it (items, a
 * new key, a failed collection, MoreAvailable) goes out at once.
 */
import { folderKey } from '../push/feed.ts';
import { measuredWait } from '../util/metrics.ts';
import { answerMarginMs, waitContextOf, waitForChanges, type WaitTarget } from '../push/wait.ts';
import type { CommandContext, CommandResult } from '../protocol/command.ts';
import type { HierarchyState } from '../state/types.ts';
import { child, childText, type WbxmlElement } from '../wbxml/tree.ts';

/** The deadline of a hanging Sync that woke up and synced again: the same request keeps its first deadline. */
const hangingDeadlines = new WeakMap<CommandContext, number>();

export interface HangingSync {
  /** Wait (minutes) or HeartbeatInterval (seconds) as requested, in seconds. */
  seconds: number;
  hierarchy: HierarchyState | undefined;
  /** The collections of the request, with the key the device sent (undefined when taken from the cached request). */
  requested: { collectionId: string; syncKey: string | undefined }[];
  /** The response's Collection elements, in the same order. */
  elements: WbxmlElement[];
  response: CommandResult;
  /** Runs the Sync again (after a change was seen). */
  again: () => Promise<CommandResult>;
}

/** The response, at once when it carries anything; else, after waiting, the Sync again or an empty response. */
export async function waitInSync(context: CommandContext, hang: HangingSync): Promise<CommandResult> {
  if (!nothingToSend(hang.requested, hang.elements)) return hang.response;
  const push = context.config.push;
  const now = Date.now();
  const seconds = Math.min(hang.seconds, push.maxHeartbeat);
  const deadline = hangingDeadlines.get(context) ?? now + seconds * 1000 - answerMarginMs(seconds);
  if (deadline <= now) return { kind: 'empty' };

  const targets: WaitTarget[] = [];
  for (const { collectionId } of hang.requested) {
    const folder = hang.hierarchy?.folders.find((f) => f.serverId === collectionId);
    if (!folder) continue;
    const state = (await context.state.getCollection(context.device, collectionId))?.state;
    targets.push({ serverId: collectionId, source: folder.source, state, baseline: undefined });
  }
  // Without modseqs (no CONDSTORE, DAV) a change is "another marker than now": take the feed's markers as the baseline.
  if (targets.some((t) => t.state?.watermark.kind !== 'imap' || t.state.watermark.highestModSeq === '')) {
    const feed = new Map((await context.state.readFeed(context.device)).map((e) => [e.folder, e.marker]));
    for (const t of targets) t.baseline = feed.get(folderKey(t.source));
  }
  // Waiting is no work: the slot goes back to the user's cap while it lasts (protocol/request-slots.ts).
  context.slot?.release();
  const outcome = await measuredWait('sync', context.device, () =>
    waitForChanges(waitContextOf(context, push), {
      targets,
      hierarchy: hang.hierarchy,
      endOnHierarchyChange: false,
      seconds,
      deadline,
    }),
  );
  if (outcome.kind !== 'changed') return { kind: 'empty' };
  // Syncing again is work: without a free slot the wait ends as if its time was up, and the device's next Sync (it
  // sends one at once) brings the change.
  if (context.slot && !context.slot.retake()) return { kind: 'empty' };
  hangingDeadlines.set(context, deadline);
  return hang.again();
}

/** Every requested collection answered Status 1 under the key the device sent, with no commands, responses or more. */
function nothingToSend(requested: HangingSync['requested'], elements: WbxmlElement[]): boolean {
  if (elements.length !== requested.length || elements.length === 0) return false;
  return elements.every((e, i) => {
    if (childText(e, 'Status') !== '1') return false;
    if (child(e, 'Commands') || child(e, 'Responses') || child(e, 'MoreAvailable')) return false;
    const sent = requested[i]!.syncKey;
    return sent === undefined || (sent !== '0' && childText(e, 'SyncKey') === sent);
  });
}
