/**
 * GetItemEstimate (MS-ASCMD §2.2.1.9): how many changes a Sync of each collection would bring, without bringing
 * them. One Response per Collection; the SyncKey must be the device's current key for that collection.
 */
import { withBackends } from '../backends/open.ts';
import { FolderNotFoundError } from '../backends/types.ts';
import { INITIAL_SYNC_KEY } from '../protocol/synckey.ts';
import { child, children, childText, el, type WbxmlElement } from '../wbxml/tree.ts';
import { registerCommand } from './registry.ts';
import type { CommandContext, CommandResult } from '../protocol/command.ts';
import { estimateEmailChanges } from '../sync/email.ts';
import { estimateDavChanges } from '../sync/dav.ts';
import { optionsForClass, parseCollectionOptions } from '../protocol/options.ts';
import { emailFilterType } from '../protocol/policy.ts';
import { itemClassOf } from '../folders/hierarchy.ts';
import { isItemFolder, itemStoreOf } from '../folders/dav-items.ts';

export const GetItemEstimateStatus = {
  Success: 1,
  InvalidCollection: 2,
  NotPrimed: 3,
  InvalidSyncKey: 4,
} as const;

function answer(collectionId: string, status: number, estimate?: number): WbxmlElement {
  return el('GetItemEstimate', 'Response', [
    el('GetItemEstimate', 'Status', String(status)),
    el('GetItemEstimate', 'Collection', [
      el('GetItemEstimate', 'CollectionId', collectionId),
      estimate !== undefined ? el('GetItemEstimate', 'Estimate', String(estimate)) : undefined,
    ]),
  ]);
}

export async function getItemEstimate(context: CommandContext): Promise<CommandResult> {
  const requested = children(child(context.body, 'Collections', 'GetItemEstimate'), 'Collection', 'GetItemEstimate');
  if (context.body?.tag !== 'GetItemEstimate' || requested.length === 0) {
    return {
      kind: 'wbxml',
      body: el('GetItemEstimate', 'GetItemEstimate', [
        el('GetItemEstimate', 'Response', [
          el('GetItemEstimate', 'Status', String(GetItemEstimateStatus.InvalidCollection)),
        ]),
      ]),
    };
  }
  const hierarchy = (await context.state.getHierarchy(context.device))?.state;
  const responses = await withBackends(context, async (backends) => {
    const out: WbxmlElement[] = [];
    for (const c of requested) {
      const collectionId = childText(c, 'CollectionId', 'GetItemEstimate') ?? '';
      // 14.0+ sends airsync:SyncKey and airsync:Options; 12.x itemestimate:FilterType.
      const syncKey = childText(c, 'SyncKey', 'AirSync');
      const folder = hierarchy?.folders.find((f) => f.serverId === collectionId);
      const dav = folder ? itemStoreOf(backends, folder) : undefined;
      if (!folder || (isItemFolder(folder) && !dav)) {
        out.push(answer(collectionId, GetItemEstimateStatus.InvalidCollection));
        continue;
      }
      const stored = await context.state.getCollection(context.device, collectionId);
      if (!stored || syncKey === INITIAL_SYNC_KEY) {
        out.push(answer(collectionId, GetItemEstimateStatus.NotPrimed));
        continue;
      }
      if (syncKey !== undefined && syncKey !== stored.syncKey) {
        out.push(answer(collectionId, GetItemEstimateStatus.InvalidSyncKey));
        continue;
      }
      // Of two Options blocks (an SMS one beside it), the one for the folder's class (MS-ASCMD §2.2.3.27.2).
      const given = parseCollectionOptions(children(c, 'Options', 'AirSync'));
      const legacyFilter = childText(c, 'FilterType', 'GetItemEstimate');
      const options = {
        ...stored.state.options,
        ...(given ? optionsForClass(given, itemClassOf(folder.type)) : {}),
        ...(legacyFilter !== undefined ? { filterType: Number(legacyFilter) } : {}),
      };
      try {
        const estimate = dav
          ? await estimateDavChanges(dav, folder.source.ref, stored.state, options)
          : await estimateEmailChanges(backends.mail, folder.source.ref, collectionId, stored.state, {
              ...options,
              // As Sync counts them: no further back than the user's MaxEmailAgeFilter.
              filterType: emailFilterType(context.config.policy, context.user.login, options.filterType),
            });
        out.push(answer(collectionId, GetItemEstimateStatus.Success, estimate));
      } catch (err) {
        // Deleted by another client since the device's FolderSync: an invalid collection for it.
        if (!(err instanceof FolderNotFoundError)) throw err;
        out.push(answer(collectionId, GetItemEstimateStatus.InvalidCollection));
      }
    }
    return out;
  });
  return { kind: 'wbxml', body: el('GetItemEstimate', 'GetItemEstimate', responses) };
}

registerCommand({
  name: 'GetItemEstimate',
  responseRoot: { ns: 'GetItemEstimate', tag: 'GetItemEstimate' },
  // No server-error status of its own: Status 2 tells the device to FolderSync, which is the safe retry.
  handle: getItemEstimate,
});
