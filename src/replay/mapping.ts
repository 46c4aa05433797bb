/**
 * What a replay must translate between the captured server and the live one, learnt from the answers as the session
 * goes (pure: the driver, driver.ts, feeds it trees).
 *
 * - Sync and FolderSync keys (MS-ASCMD §2.2.3.166): the captured key of an answer ↔ the live key of the same answer,
 *   per collection; a key no captured answer gave (a corpus session without answers) becomes the collection's latest
 *   live key. Key 0 stays 0.
 * - Policy keys (MS-ASPROV §3.1.5.1): the same, for the Provision answers' PolicyKey.
 * - Folder ids: by type and name, from the captured FolderSync answers (or the session's `folders` hints) and the
 *   live ones; a default folder (Inbox, Calendar… MS-ASCMD §2.2.3.186.3) by its type alone; FolderCreate by its answer.
 * - Item ServerIds: by order, the n-th captured Add of a collection ↔ the n-th live Add of the mapped collection;
 *   client Adds by ClientId; moved items by the MoveItems answer. An id no captured answer gave takes the collection's
 *   next live item not yet taken, so a published request that fetches "an item" fetches one.
 * - Attachment FileReferences: with their items, in order.
 */
import { FolderType } from '../backends/types.ts';
import { child, children, textOf, type WbxmlElement } from '../wbxml/tree.ts';
import type { FolderHint } from './session.ts';

interface AddedItem {
  serverId: string;
  fileReferences: string[];
}

/** Folder types a mailbox has at most one of: matched by type when names differ (Inbox vs Posteingang). */
const DEFAULT_FOLDER_TYPES: ReadonlySet<number> = new Set([
  FolderType.Inbox,
  FolderType.Drafts,
  FolderType.DeletedItems,
  FolderType.SentItems,
  FolderType.Outbox,
  FolderType.Tasks,
  FolderType.Calendar,
  FolderType.Contacts,
  FolderType.Notes,
  FolderType.Journal,
  FolderType.RecipientInfoCache,
]);

const HIERARCHY = '\u0000hierarchy';
const POLICY = '\u0000policy';

export interface RewriteOptions {
  /** Caps HeartbeatInterval (Ping, Sync) at this many seconds, so that a replay does not wait a phone's interval. */
  maxHeartbeat?: number;
}

export class ReplayMap {
  /**
   * Whether an id or key no captured answer gave is guessed (the collection's latest key, its next item). The driver
   * turns it off for a request whose captured answer refused it (Status 3 for a stale key must stay stale).
   */
  guessUnknown = true;
  private readonly keys = new Map<string, string>();
  private readonly latestKey = new Map<string, string>();
  private readonly capturedFolders = new Map<string, FolderHint>();
  private readonly liveFolders = new Map<string, FolderHint>();
  private readonly folderPairs = new Map<string, string>();
  private readonly items = new Map<string, string>();
  private readonly takenItems = new Set<string>();
  private readonly fileReferences = new Map<string, string>();
  private readonly liveFileReferences: string[] = [];
  private readonly takenFileReferences = new Set<string>();
  private readonly capturedAdds = new Map<string, AddedItem[]>();
  private readonly liveAdds = new Map<string, AddedItem[]>();

  constructor(hints: Record<string, FolderHint> = {}) {
    for (const [id, hint] of Object.entries(hints)) this.capturedFolders.set(id, hint);
  }

  // ------------------------------------------------------------------ lookups

  /** A captured Sync key of a collection (or of the hierarchy, `collection` undefined) → the live one. */
  syncKey(captured: string, collection: string | undefined): string {
    return this.key(collection === undefined ? HIERARCHY : collection, captured);
  }

  policyKey(captured: string): string {
    return this.key(POLICY, captured);
  }

  private key(scope: string, captured: string): string {
    if (captured === '0' || captured === '') return captured;
    // A refused request keeps a stale SyncKey; its policy key is still the device's current one.
    const guess = this.guessUnknown || scope === POLICY;
    return this.keys.get(`${scope}\u0000${captured}`) ?? (guess ? this.latestKey.get(scope) : undefined) ?? captured;
  }

  folder(captured: string): string {
    if (captured === '0' || captured === '') return captured;
    const paired = this.folderPairs.get(captured);
    if (paired !== undefined) return paired;
    const info = this.capturedFolders.get(captured);
    if (!info) return captured;
    const name = info.name.trim().toLowerCase();
    const live = [...this.liveFolders];
    const byName = live.find(([, f]) => f.type === info.type && f.name.trim().toLowerCase() === name);
    const byType = DEFAULT_FOLDER_TYPES.has(info.type) ? live.find(([, f]) => f.type === info.type) : undefined;
    // Mail folders a server files under another type (a user folder vs Deleted Items) are still found by name.
    const byNameOnly = live.find(([, f]) => f.name.trim().toLowerCase() === name);
    return (byName ?? byType ?? byNameOnly)?.[0] ?? captured;
  }

  /** A captured item id → the live one; in a known collection, an id no answer gave takes its next live item. */
  item(captured: string, collection?: string): string {
    const known = this.items.get(captured);
    if (known !== undefined) return known;
    if (!this.guessUnknown) return captured;
    // Without a collection around it, an id shaped `<collection>:<n>` (Exchange's and ours) names its collection.
    const owner = collection ?? /^(.+):[^:]+$/.exec(captured)?.[1];
    if (owner === undefined) return captured;
    const next = this.liveAdds.get(this.folder(owner))?.find((a) => !this.takenItems.has(a.serverId));
    if (!next) return captured;
    this.pairItem(captured, next.serverId);
    return next.serverId;
  }

  fileReference(captured: string): string {
    const known = this.fileReferences.get(captured);
    if (known !== undefined || !this.guessUnknown) return known ?? captured;
    const next = this.liveFileReferences.find((r) => !this.takenFileReferences.has(r));
    if (next === undefined) return captured;
    this.fileReferences.set(captured, next);
    this.takenFileReferences.add(next);
    return next;
  }

  private pairItem(captured: string, live: string): void {
    this.items.set(captured, live);
    this.takenItems.add(live);
  }

  // ------------------------------------------------------------------ requests

  /** The captured request with every key and id replaced by the live server's (a copy; the input is kept). */
  rewriteRequest(root: WbxmlElement, options: RewriteOptions = {}): WbxmlElement {
    return this.rewrite(root, undefined, options);
  }

  private rewrite(element: WbxmlElement, collection: string | undefined, options: RewriteOptions): WbxmlElement {
    // The collection the element's children are about: Sync's and GetItemEstimate's Collection, ItemOperations'
    // Fetch, MoveItems' Move, MeetingResponse's Request, SmartReply's Source.
    const own = element.children.find(
      (c) => c.children.length === 0 && (c.tag === 'CollectionId' || c.tag === 'SrcFldId' || c.tag === 'FolderId'),
    );
    const scope = own ? textOf(own) : collection;
    const copy: WbxmlElement = {
      ns: element.ns,
      tag: element.tag,
      children: element.children.map((c) => this.rewrite(c, scope, options)),
    };
    if (element.text !== undefined) copy.text = element.text;
    if (element.opaque !== undefined) copy.opaque = element.opaque;
    if (element.text !== undefined || element.opaque !== undefined) {
      const value = textOf(element);
      const mapped = this.mapValue(element, value, scope, options);
      if (mapped !== value) {
        copy.text = mapped;
        delete copy.opaque;
      }
    }
    return copy;
  }

  private mapValue(e: WbxmlElement, value: string, collection: string | undefined, options: RewriteOptions): string {
    switch (e.tag) {
      case 'SyncKey':
        return this.syncKey(value, e.ns === 'FolderHierarchy' ? undefined : (collection ?? ''));
      case 'PolicyKey':
        return e.ns === 'Provision' ? this.policyKey(value) : value;
      case 'CollectionId':
      case 'SrcFldId':
      case 'DstFldId':
      case 'FolderId':
      case 'ParentId':
        return this.folder(value);
      case 'Id':
        return e.ns === 'Ping' ? this.folder(value) : value;
      case 'ServerId':
        return e.ns === 'FolderHierarchy' ? this.folder(value) : this.item(value, collection);
      case 'SrcMsgId':
      case 'ItemId':
      case 'LongId':
      case 'RequestId':
        return this.item(value, collection);
      case 'FileReference':
        return this.fileReference(value);
      case 'HeartbeatInterval': {
        const max = options.maxHeartbeat;
        return max !== undefined && Number(value) > max ? String(max) : value;
      }
      default:
        return value;
    }
  }

  // ------------------------------------------------------------------ answers

  /**
   * Learns from one exchange: the captured request (as the device sent it), the captured answer (absent in corpus
   * sessions) and the live answer.
   */
  learn(
    command: string,
    request: WbxmlElement | undefined,
    captured: WbxmlElement | undefined,
    live: WbxmlElement | undefined,
  ): void {
    switch (command) {
      case 'Provision':
        this.pairKeys(POLICY, policyKeyOf(captured), policyKeyOf(live));
        break;
      case 'FolderSync':
        this.pairKeys(HIERARCHY, leafText(captured, 'SyncKey'), leafText(live, 'SyncKey'));
        this.readFolderChanges(captured, this.capturedFolders);
        this.readFolderChanges(live, this.liveFolders);
        break;
      case 'FolderCreate':
      case 'FolderUpdate':
      case 'FolderDelete':
        this.learnFolderCommand(command, request, captured, live);
        break;
      case 'Sync':
        this.learnSync(request, captured, live);
        break;
      case 'MoveItems':
        this.pairInOrder(captured, live, 'Response', 'DstMsgId');
        break;
      case 'MeetingResponse':
        this.pairInOrder(captured, live, 'Result', 'CalendarId');
        break;
      case 'Search':
        this.pairInOrder(child(captured, 'Response'), child(live, 'Response'), 'Store', 'LongId');
        break;
      default:
        break;
    }
  }

  private pairKeys(scope: string, captured: string | undefined, live: string | undefined): void {
    if (live === undefined) return;
    this.latestKey.set(scope, live);
    if (captured !== undefined && captured !== '0') this.keys.set(`${scope}\u0000${captured}`, live);
  }

  private readFolderChanges(answer: WbxmlElement | undefined, into: Map<string, FolderHint>): void {
    const changes = child(answer, 'Changes');
    for (const c of changes?.children ?? []) {
      const id = leafText(c, 'ServerId');
      if (id === undefined) continue;
      if (c.tag === 'Delete') into.delete(id);
      else if (c.tag === 'Add' || c.tag === 'Update')
        into.set(id, { type: Number(leafText(c, 'Type') ?? 0), name: leafText(c, 'DisplayName') ?? '' });
    }
  }

  private learnFolderCommand(
    command: string,
    request: WbxmlElement | undefined,
    captured: WbxmlElement | undefined,
    live: WbxmlElement | undefined,
  ): void {
    this.pairKeys(HIERARCHY, leafText(captured, 'SyncKey'), leafText(live, 'SyncKey'));
    const name = leafText(request, 'DisplayName');
    const type = Number(leafText(request, 'Type') ?? FolderType.UserMail);
    if (command === 'FolderCreate') {
      const capturedId = leafText(captured, 'ServerId');
      const liveId = leafText(live, 'ServerId');
      if (liveId !== undefined && name !== undefined) this.liveFolders.set(liveId, { type, name });
      if (capturedId !== undefined && name !== undefined) this.capturedFolders.set(capturedId, { type, name });
      if (capturedId !== undefined && liveId !== undefined) this.folderPairs.set(capturedId, liveId);
      return;
    }
    const capturedId = leafText(request, 'ServerId');
    if (capturedId === undefined) return;
    const liveId = this.folder(capturedId);
    if (command === 'FolderDelete') {
      this.liveFolders.delete(liveId);
      return;
    }
    if (name === undefined) return;
    const rename = (map: Map<string, FolderHint>, id: string): void => {
      const old = map.get(id);
      if (old) map.set(id, { ...old, name });
    };
    rename(this.capturedFolders, capturedId);
    rename(this.liveFolders, liveId);
    this.folderPairs.set(capturedId, liveId);
  }

  private learnSync(
    request: WbxmlElement | undefined,
    captured: WbxmlElement | undefined,
    live: WbxmlElement | undefined,
  ): void {
    const requested = children(child(request, 'Collections'), 'Collection').map((c) => leafText(c, 'CollectionId'));
    const capturedCollections = children(child(captured, 'Collections'), 'Collection');
    const liveCollections = children(child(live, 'Collections'), 'Collection');
    liveCollections.forEach((liveCollection, i) => {
      const liveId = leafText(liveCollection, 'CollectionId');
      // The captured collection this answer is about: the requested one that maps to it (or the same place).
      const capturedId =
        requested.find((id) => id !== undefined && liveId !== undefined && this.folder(id) === liveId) ??
        leafText(capturedCollections[i], 'CollectionId') ??
        requested[i];
      if (capturedId === undefined) return;
      const capturedCollection =
        capturedCollections.find((c) => leafText(c, 'CollectionId') === capturedId) ??
        (capturedCollections.length === liveCollections.length ? capturedCollections[i] : undefined);
      this.pairKeys(capturedId, leafText(capturedCollection, 'SyncKey'), leafText(liveCollection, 'SyncKey'));

      const liveKey = liveId ?? this.folder(capturedId);
      const liveAdds = addsOf(liveCollection);
      for (const a of liveAdds) this.liveFileReferences.push(...a.fileReferences);
      append(this.liveAdds, liveKey, liveAdds);
      append(this.capturedAdds, capturedId, addsOf(capturedCollection));
      this.pairAdds(capturedId, liveKey);

      // The device's own Adds: the same ClientId on both sides.
      const liveClientAdds = new Map(
        children(child(liveCollection, 'Responses'), 'Add').map((a) => [leafText(a, 'ClientId'), a]),
      );
      for (const a of children(child(capturedCollection, 'Responses'), 'Add')) {
        const capturedServerId = leafText(a, 'ServerId');
        const liveServerId = leafText(liveClientAdds.get(leafText(a, 'ClientId')), 'ServerId');
        if (capturedServerId !== undefined && liveServerId !== undefined) this.pairItem(capturedServerId, liveServerId);
      }
    });
  }

  private pairAdds(capturedCollection: string, liveCollection: string): void {
    const captured = this.capturedAdds.get(capturedCollection) ?? [];
    const live = this.liveAdds.get(liveCollection) ?? [];
    for (let i = 0; i < Math.min(captured.length, live.length); i++) {
      const c = captured[i]!;
      const l = live[i]!;
      if (this.items.has(c.serverId) || this.takenItems.has(l.serverId)) continue;
      this.pairItem(c.serverId, l.serverId);
      c.fileReferences.forEach((ref, j) => {
        const liveRef = l.fileReferences[j];
        if (liveRef === undefined) return;
        this.fileReferences.set(ref, liveRef);
        this.takenFileReferences.add(liveRef);
      });
    }
  }

  /** Ids a command's answer gives, one per `entryTag` entry, paired in order. */
  private pairInOrder(
    captured: WbxmlElement | undefined,
    live: WbxmlElement | undefined,
    entryTag: string,
    idTag: string,
  ): void {
    const capturedEntries = (captured?.children ?? []).filter((c) => c.tag === entryTag);
    const liveEntries = (live?.children ?? []).filter((c) => c.tag === entryTag);
    capturedEntries.forEach((entry, i) => {
      const capturedIds = descendantsText(entry, idTag);
      const liveIds = descendantsText(liveEntries[i], idTag);
      capturedIds.forEach((id, j) => {
        const liveId = liveIds[j];
        if (liveId !== undefined) this.pairItem(id, liveId);
      });
    });
  }
}

function append(map: Map<string, AddedItem[]>, key: string, adds: AddedItem[]): void {
  if (adds.length === 0) return;
  const list = map.get(key);
  if (list) list.push(...adds);
  else map.set(key, [...adds]);
}

function addsOf(collection: WbxmlElement | undefined): AddedItem[] {
  return children(child(collection, 'Commands'), 'Add').flatMap((add) => {
    const serverId = leafText(add, 'ServerId');
    if (serverId === undefined) return [];
    return [{ serverId, fileReferences: descendantsText(add, 'FileReference') }];
  });
}

function policyKeyOf(answer: WbxmlElement | undefined): string | undefined {
  return leafText(child(child(answer, 'Policies'), 'Policy'), 'PolicyKey');
}

/** The text of the first child with this tag, in whatever namespace. */
function leafText(parent: WbxmlElement | undefined, tag: string): string | undefined {
  const c = parent?.children.find((e) => e.tag === tag);
  return c ? textOf(c) : undefined;
}

function descendantsText(root: WbxmlElement | undefined, tag: string): string[] {
  if (!root) return [];
  const out: string[] = [];
  const walk = (e: WbxmlElement): void => {
    if (e.tag === tag && e.children.length === 0) out.push(textOf(e));
    for (const c of e.children) walk(c);
  };
  walk(root);
  return out;
}
