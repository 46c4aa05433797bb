/**
 * Ping (MS-ASCMD §2.2.1.13): answer when one of the listed folders changes, or when the heartbeat ends. Push
 * without holding a backend connection (DESIGN §5):
 *
 * 1. Check the request: HeartbeatInterval within [PING_MIN_HEARTBEAT, PING_MAX_HEARTBEAT] (Status 5 with the
 *    bound), at most MAX_PING_FOLDERS folders (Status 6 with MaxFolders). An empty Ping, or one without folders or
 *    heartbeat, takes what is missing from the Ping cache; nothing cached → Status 3.
 * 2. Folder ids the device's hierarchy does not know → Status 7.
 * 3. Direct check, on one short backend session: collections with changes left pending (MoreAvailable) → Status 2
 *    at once; then each listed folder the device has synced against the backend (mail: SELECT gives UIDVALIDITY,
 *    HIGHESTMODSEQ, UIDNEXT, compared with the watermark; DAV: sync-collection since the stored token) → Status 2;
 *    a listed folder gone from the backend, or a folder list FolderSync would report changes in → Status 7.
 * 4. Otherwise wait on the change feed (src/push/wait.ts): a change → Status 2 with the folders, a folder-list
 *    change → Status 7, the heartbeat's end or a newer Ping/Sync of the device → Status 1.
 *
 * Folders the device never synced are not reported by the direct check (Exchange reports changes to what the device
 * has); a change to them while the Ping waits is.
 */
import { withBackends } from '../backends/open.ts';
import type { UserBackends } from '../backends/types.ts';
import { FolderNotFoundError } from '../backends/types.ts';
import { encodeImapMarker, hasPendingChanges } from '../push/feed.ts';
import { announceNewRequest, MAX_PING_FOLDERS, waitContextOf, waitForChanges, type WaitTarget } from '../push/wait.ts';
import type { CollectionState, FolderRecord, HierarchyState, PingCache } from '../state/types.ts';
import { child, children, childText, el, type WbxmlElement } from '../wbxml/tree.ts';
import { diffHierarchy } from '../folders/hierarchy.ts';
import { measuredWait } from '../util/metrics.ts';
import { isNotesFolder, itemStoreOf } from '../folders/dav-items.ts';
import { registerCommand } from './registry.ts';
import type { DeviceReadsAhead } from '../state/read-ahead.ts';
import { settle, settledValue } from '../util/settled.ts';
import type { CommandContext, CommandResult } from '../protocol/command.ts';

export const PingStatus = {
  Expired: 1,
  Changes: 2,
  MissingParameters: 3,
  SyntaxError: 4,
  HeartbeatOutOfRange: 5,
  TooManyFolders: 6,
  HierarchyChanged: 7,
  ServerError: 8,
} as const;

/** How long the last Ping's folders and heartbeat are kept for an empty Ping. */
const PING_CACHE_TTL_MS = 30 * 24 * 3_600_000;
/** The cache is rewritten unchanged only when it would expire within this time. */
const PING_CACHE_REFRESH_MS = 7 * 24 * 3_600_000;

function answer(status: number, extra: WbxmlElement[] = []): CommandResult {
  return { kind: 'wbxml', body: el('Ping', 'Ping', [el('Ping', 'Status', String(status)), ...extra]) };
}

function changes(serverIds: string[]): CommandResult {
  return answer(PingStatus.Changes, [
    el(
      'Ping',
      'Folders',
      serverIds.map((id) => el('Ping', 'Folder', id)),
    ),
  ]);
}

export async function ping(context: CommandContext): Promise<CommandResult> {
  // A new Ping ends the device's older one at once when it waits in this process.
  announceNewRequest(context);
  const push = context.config.push;
  const body = context.body;
  if (body && body.tag !== 'Ping') return answer(PingStatus.SyntaxError);

  const heartbeatText = childText(body, 'HeartbeatInterval');
  const listed = children(child(body, 'Folders'), 'Folder').map((f) => ({
    id: childText(f, 'Id'),
    class: childText(f, 'Class') ?? '',
  }));
  if (listed.some((f) => !f.id)) return answer(PingStatus.SyntaxError);
  let heartbeat: number | undefined;
  if (heartbeatText !== undefined) {
    heartbeat = Number(heartbeatText);
    if (!/^\d+$/.test(heartbeatText.trim())) return answer(PingStatus.SyntaxError);
    if (heartbeat < push.minHeartbeat || heartbeat > push.maxHeartbeat) {
      const bound = heartbeat < push.minHeartbeat ? push.minHeartbeat : push.maxHeartbeat;
      return answer(PingStatus.HeartbeatOutOfRange, [el('Ping', 'HeartbeatInterval', String(bound))]);
    }
  }
  if (listed.length > MAX_PING_FOLDERS)
    return answer(PingStatus.TooManyFolders, [el('Ping', 'MaxFolders', String(MAX_PING_FOLDERS))]);

  const cached = await context.state.getPingCache(context.device);
  const folders = listed.length ? (listed as PingCache['folders']) : cached?.folders;
  heartbeat ??= cached?.heartbeatInterval;
  if (heartbeat === undefined || !folders?.length) return answer(PingStatus.MissingParameters);
  // A heartbeat cached under an older, higher cap is held to today's.
  heartbeat = Math.min(Math.max(heartbeat, push.minHeartbeat), push.maxHeartbeat);
  const now = Date.now();
  // Written beside the reads below, not before them: nothing here reads it back; done before any answer (finally).
  const cacheWritten =
    !cached ||
    cached.heartbeatInterval !== heartbeat ||
    !sameFolders(cached.folders, folders) ||
    cached.expiresAt - now < PING_CACHE_REFRESH_MS
      ? settle(
          context.state.putPingCache(context.device, {
            heartbeatInterval: heartbeat,
            folders,
            expiresAt: now + PING_CACHE_TTL_MS,
          }),
        )
      : undefined;
  const written = async (): Promise<void> => {
    if (cacheWritten) settledValue(await cacheWritten);
  };
  try {
    return await pingFolders(context, folders, heartbeat, written);
  } finally {
    await written();
  }
}

/** The folders' check, then the wait; `heartbeat` already capped. */
async function pingFolders(
  context: CommandContext,
  folders: PingCache['folders'],
  heartbeat: number,
  cacheWritten: () => Promise<void>,
): Promise<CommandResult> {
  const push = context.config.push;
  const hierarchy = (await context.state.getHierarchy(context.device))?.state;
  const records: FolderRecord[] = [];
  for (const f of folders) {
    const record = hierarchy?.folders.find((r) => r.serverId === f.id);
    if (!record) return answer(PingStatus.HierarchyChanged);
    if (!records.includes(record)) records.push(record);
  }
  const states = await Promise.all(
    records.map(async (r) => (await context.state.getCollection(context.device, r.serverId))?.state),
  );

  const pending = records.filter((_, i) => hasPendingChanges(states[i]));
  if (pending.length) return changes(pending.map((r) => r.serverId));

  const checked = await withBackends(context, (backends) => directCheck(backends, hierarchy!, records, states));
  if (checked.kind === 'hierarchy') return answer(PingStatus.HierarchyChanged);
  if (checked.changed.length) return changes(checked.changed);

  const targets: WaitTarget[] = records.map((r, i) => ({
    serverId: r.serverId,
    source: r.source,
    state: states[i],
    baseline: checked.baselines.get(r.serverId),
  }));
  // The cache is written before the wait, not after it.
  await cacheWritten();
  // Waiting is no work: the slot goes back to the user's cap (protocol/request-slots.ts); the answer needs none.
  context.slot?.release();
  const outcome = await measuredWait('ping', context.device, () =>
    waitForChanges(waitContextOf(context, push), {
      targets,
      hierarchy,
      endOnHierarchyChange: true,
      seconds: heartbeat,
    }),
  );
  switch (outcome.kind) {
    case 'changed':
      return changes(outcome.serverIds);
    case 'hierarchy':
      return answer(PingStatus.HierarchyChanged);
    default:
      // Expired, superseded by a newer Ping or Sync (Exchange answers the older one with 1), or the client left.
      return answer(PingStatus.Expired);
  }
}

function sameFolders(a: PingCache['folders'], b: PingCache['folders']): boolean {
  return a.length === b.length && a.every((f, i) => f.id === b[i]!.id && f.class === b[i]!.class);
}

type DirectCheck = { kind: 'hierarchy' } | { kind: 'checked'; changed: string[]; baselines: Map<string, string> };

/** The listed folders against the backends, now; and whether the folder list is still the one the device has. */
async function directCheck(
  backends: UserBackends,
  hierarchy: HierarchyState,
  records: FolderRecord[],
  states: (CollectionState | undefined)[],
): Promise<DirectCheck> {
  const changed: string[] = [];
  const baselines = new Map<string, string>();
  for (const [i, record] of records.entries()) {
    const state = states[i];
    const wm = state?.watermark;
    if (record.source.backend === 'imap') {
      // A listed folder gone from the mail server ends the Ping with Status 7 (FolderNotFoundError: `errors` below).
      const status = await backends.mail.status(record.source.ref);
      // The notes folder: its items' state is a sync-token (backends/imap/notes.ts); the STATUS above is its baseline.
      if (isNotesFolder(record) && wm?.kind === 'dav' && backends.notes) {
        const delta = await backends.notes.changesSince(record.source.ref, wm.syncToken);
        if (delta === 'invalid-token' || delta.changed.length || delta.removed.length) changed.push(record.serverId);
      }
      baselines.set(
        record.serverId,
        encodeImapMarker({
          uidValidity: status.uidValidity,
          highestModSeq: status.highestModSeq,
          uidNext: status.uidNext,
          messages: status.messages,
        }),
      );
      if (wm?.kind !== 'imap') continue;
      if (status.uidValidity !== wm.uidValidity) changed.push(record.serverId);
      else if (
        wm.highestModSeq !== '' &&
        status.highestModSeq !== undefined &&
        status.highestModSeq > BigInt(wm.highestModSeq)
      )
        changed.push(record.serverId);
    } else if (wm?.kind === 'dav') {
      const dav = itemStoreOf(backends, record);
      if (!dav) continue;
      const delta = await dav.changesSince(record.source.ref, wm.syncToken);
      if (delta === 'invalid-token' || delta.changed.length || delta.removed.length) changed.push(record.serverId);
    }
  }
  if (changed.length) return { kind: 'checked', changed, baselines };
  // What FolderSync would report: added, renamed, moved or deleted folders. A listing that fails (a DAV server
  // down) says nothing about the hierarchy: the mail check above stands.
  const current = await backends.listFolders().catch(() => undefined);
  if (!current) return { kind: 'checked', changed, baselines };
  const diff = diffHierarchy(hierarchy, current);
  if (diff.added.length || diff.updated.length || diff.deleted.length) return { kind: 'hierarchy' };
  return { kind: 'checked', changed, baselines };
}

/**
 * What a Ping reads, with the device's record: the cached Ping (an empty Ping repeats it), the hierarchy, and the
 * state of each folder the body lists.
 */
function readAhead(body: WbxmlElement | undefined, reads: DeviceReadsAhead): void {
  reads.pingCache();
  reads.hierarchy();
  if (body?.tag !== 'Ping') return;
  const ids = children(child(body, 'Folders'), 'Folder').map((f) => childText(f, 'Id'));
  if (ids.length > MAX_PING_FOLDERS) return;
  for (const id of new Set(ids)) if (id) reads.collection(id);
}

registerCommand({
  name: 'Ping',
  responseRoot: { ns: 'Ping', tag: 'Ping' },
  serverErrorStatus: PingStatus.ServerError,
  errors: [[FolderNotFoundError, PingStatus.HierarchyChanged]],
  readAhead,
  handle: ping,
});
