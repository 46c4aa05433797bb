/**
 * Sync (MS-ASCMD §2.2.1.21): read the request (src/sync/request.ts), sync its collections (src/sync/engine.ts),
 * answer with them. Each collection's answer arrives encoded once (the replay record's bytes) and is spliced into
 * the response as it is.
 */
import type { CommandContext, CommandResult } from '../protocol/command.ts';
import { endWaitingRequests } from '../push/wait.ts';
import { syncCollections } from '../sync/engine.ts';
import { waitInSync } from '../sync/hanging.ts';
import { readSyncRequest, readSyncTiming, type SyncRefusal } from '../sync/request.ts';
import { SyncStatus } from '../sync/status.ts';
import { INITIAL_SYNC_KEY } from '../protocol/synckey.ts';
import type { DeviceReadsAhead } from '../state/read-ahead.ts';
import { child, children, childText, el, type WbxmlElement } from '../wbxml/tree.ts';
import { registerCommand } from './registry.ts';

export async function sync(context: CommandContext): Promise<CommandResult> {
  const timing = readSyncTiming(context.body);
  if ('status' in timing) return refused(timing);
  // Any Sync ends this device's waiting Ping or hanging Sync, also one whose collections are then refused.
  await endWaitingRequests(context);
  const request = await readSyncRequest(context, context.body, timing);
  if ('status' in request) return refused(request);

  const { hierarchy, elements } = await syncCollections(context, request);
  const response: CommandResult = {
    kind: 'wbxml',
    body: el('AirSync', 'Sync', [el('AirSync', 'Collections', elements)]),
  };
  if (request.hangSeconds === undefined) return response;
  // With Wait or HeartbeatInterval and nothing to send, the Sync waits for a change, then runs again (hanging.ts).
  const requested = request.collections.map((c) => ({ collectionId: c.collectionId, syncKey: c.syncKey }));
  return waitInSync(context, {
    seconds: request.hangSeconds,
    hierarchy,
    requested,
    elements,
    response,
    again: () => sync(context),
  });
}

/** A request refused as a whole: the top-level Status (MS-ASCMD §2.2.3.177.17), with the Limit for Status 14. */
function refused({ status, limit }: SyncRefusal): CommandResult {
  return {
    kind: 'wbxml',
    body: el('AirSync', 'Sync', [
      el('AirSync', 'Status', String(status)),
      limit !== undefined ? el('AirSync', 'Limit', String(limit)) : undefined,
    ]),
  };
}

/**
 * What a Sync reads, with the device's record: the feed (endWaitingRequests), the cached request (request.ts), the
 * hierarchy and the first collection (engine.ts; later ones wait their turn, since syncing one may write another's).
 */
function readAhead(body: WbxmlElement | undefined, reads: DeviceReadsAhead): void {
  reads.feed();
  reads.syncRequestCache();
  reads.hierarchy();
  const first = children(child(body, 'Collections'), 'Collection')[0];
  const collectionId = childText(first, 'CollectionId');
  const syncKey = childText(first, 'SyncKey');
  if (collectionId && syncKey !== undefined && syncKey !== INITIAL_SYNC_KEY) reads.collection(collectionId);
}

registerCommand({
  name: 'Sync',
  responseRoot: { ns: 'AirSync', tag: 'Sync' },
  serverErrorStatus: SyncStatus.ServerError,
  readAhead,
  handle: sync,
});
