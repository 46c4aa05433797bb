/**
 * The StateStore: everything the protocol remembers between requests (DESIGN §4). Handlers are stateless; what a
 * device knows (its folders, its sync keys, what it has been sent) is here, and nowhere else.
 *
 * Three implementations keep one contract (test/state/contract.ts): SQLite through better-sqlite3 (Node, the embedded
 * default), SQLite inside Durable Objects (Cloudflare), and a single DynamoDB table (AWS).
 *
 * Rules every implementation keeps:
 * - every key is scoped by tenant and user; two tenants with the same user and device ids never meet;
 * - a sync key moves only by compare-and-set together with its new state (`commitHierarchy`, `commitCollection`):
 *   of two concurrent commits from the same key exactly one wins, the other throws StateConflictError;
 * - records with `expiresAt` (epoch ms) read as absent once it has passed, whether or not they are deleted yet.
 */

/** Whose state: a tenant's user (the canonical login, as the mail backend knows it). */
export interface UserScope {
  tenant: string;
  user: string;
}

/** One device of one user. */
export interface DeviceScope extends UserScope {
  deviceId: string;
}

export type ProvisioningStatus = 'none' | 'pending' | 'provisioned';

/** Remote wipe, as an admin asks for it and the device acknowledges it (MS-ASPROV). */
export type WipeStatus = 'none' | 'requested' | 'pending' | 'acknowledged';

/**
 * What a wipe erases: the whole device (RemoteWipe), or only this account's data on it (AccountOnlyRemoteWipe, 16.1).
 */
export type WipeKind = 'full' | 'account';

/** A device as the server knows it (Settings DeviceInformation, Provision, the request line). */
export interface DeviceRecord {
  deviceId: string;
  deviceType: string;
  userAgent?: string;
  model?: string;
  imei?: string;
  friendlyName?: string;
  os?: string;
  osLanguage?: string;
  phoneNumber?: string;
  mobileOperator?: string;
  protocolVersion?: string;
  /** The policy key the device holds (decimal uint32), and how far provisioning got. */
  policyKey?: string;
  provisioning: ProvisioningStatus;
  /** A fingerprint of the policy the device acknowledged with its key: another current policy means PolicyRefresh. */
  policyHash?: string;
  wipe: WipeStatus;
  /** Which wipe was requested; absent means a full wipe. */
  wipeKind?: WipeKind;
  wipeRequestedAt?: number;
  /** When the device answered the wipe directive, and with which Status (1 wiped, 2 failed). */
  wipeAcknowledgedAt?: number;
  wipeAckStatus?: number;
  /** Epoch ms. */
  firstSeen: number;
  lastSeen: number;
  /** An admin's decision for this device, which beats the tenant's access rules ('none': the rules decide). */
  accessOverride?: 'allow' | 'block' | 'none';
  /** The access state found at the device's last request, and why (a rule, the default, the admin). */
  accessState?: DeviceAccessState;
  accessReason?: string;
}

/** Whether a device may sync (Exchange's Allow/Block/Quarantine). */
export type DeviceAccessState = 'allowed' | 'blocked' | 'quarantined';

/** One device access rule of a tenant: every condition given must hold (patterns are regular expressions). */
export interface AccessRule {
  id: string;
  action: 'allow' | 'block' | 'quarantine';
  deviceType?: string;
  model?: string;
  userAgent?: string;
  /** A login, matched case-insensitively as a whole. */
  user?: string;
}

/** A tenant's device access rules: the first rule that matches decides, else `defaultAccess`. */
export interface AccessRules {
  defaultAccess: 'allow' | 'block' | 'quarantine';
  rules: AccessRule[];
  updatedAt: number;
}

/** Requests of one command in one minute of one tenant (the admin API's counters). */
export interface CommandStats {
  /** Epoch minutes (epoch ms / 60,000, rounded down). */
  minute: number;
  command: string;
  requests: number;
  errors: number;
  /** Sum and maximum of the request durations, ms. */
  totalMs: number;
  maxMs: number;
}

/** Failed logins under one key (a user, or a client address) in the current window (src/protocol/throttle.ts). */
export interface AuthFailures {
  count: number;
  /** Epoch ms: when the window ends; the record reads as absent from then on. */
  resetAt: number;
}

/** An item the server stopped sending because it broke the sync (src/sync/loop-detection.ts), for admins. */
export interface BrokenItem {
  serverId: string;
  subject?: string;
  reason: string;
  /** Epoch ms. */
  at: number;
}

/** The fields a caller may set; `firstSeen` is set by the store when the device is created. */
export type DeviceUpdate = Partial<Omit<DeviceRecord, 'deviceId' | 'firstSeen'>> & { deviceType: string };

/** The response sent for the previous sync key, kept so that a client that lost it gets the same answer again. */
export interface Replay {
  /** The key the client sent when this response was produced (the key before the current one). */
  syncKey: string;
  /** The response fragment, as the command encoded it. */
  response: Uint8Array;
  expiresAt: number;
}

/** Out of Office as the user set it from a device (Settings Oof Set), for one user. */
export interface OofSettings {
  /** OofState as requested: 0 off, 1 on, 2 on between startTime and endTime. */
  state: number;
  /** As the device sent them (MS-ASDTYPE dateTime). */
  startTime?: string;
  endTime?: string;
  messages: OofMessage[];
  /** Whether the mail system actually sends these replies (a vacation script is in place). */
  applied: boolean;
}

export interface OofMessage {
  audience: 'internal' | 'externalKnown' | 'externalUnknown';
  enabled: boolean;
  replyMessage: string;
  /** `Text` or `HTML`, as the reply was written. */
  bodyType: string;
}

/** Settings of a user rather than of one device (Settings Oof). */
export interface UserSettings {
  oof?: OofSettings;
  updatedAt: number;
}

/** A sync key and the state it stands for. */
export interface KeyedState<S> {
  syncKey: string;
  state: S;
  replay?: Replay;
}

/**
 * What must be stored for a commit to win: exactly this key, nothing at all (the first sync of a collection), or
 * anything (a client restarting from SyncKey 0, which discards what was there).
 */
export type Precondition = { syncKey: string } | 'absent' | 'any';

/** Where a folder lives in the backends. */
export interface BackendFolderRef {
  backend: 'imap' | 'caldav' | 'carddav';
  /** IMAP mailbox path, or DAV collection URL. */
  ref: string;
}

/** One folder as the device knows it (FolderSync). */
export interface FolderRecord {
  serverId: string;
  parentId: string;
  displayName: string;
  /** The ActiveSync folder type (1–19). */
  type: number;
  source: BackendFolderRef;
  /** What identifies the folder across renames by other clients (IMAP: its UIDVALIDITY), when the backend has it. */
  identity?: string;
}

export interface HierarchyState {
  folders: FolderRecord[];
  /** The next folder ServerId to hand out; ids are never reused, so no stale collection state can match one. */
  nextServerId?: number;
}

/**
 * What the device has of a folder, to compute the next changes. UID sets are UidSet strings (src/state/uidset.ts),
 * kept as ranges so that a 100,000-message folder stays small.
 */
export type Watermark =
  | { kind: 'none' }
  | {
      kind: 'imap';
      uidValidity: number;
      /** HIGHESTMODSEQ the device is up to date with; '' when the server has no CONDSTORE. */
      highestModSeq: string;
      /** The UIDs the device has (UidSet). */
      uids: string;
      /** UIDs found but not yet sent, because the window was full (UidSet; newest are sent first). */
      pendingAdds?: string;
      /** The start of the FilterType window when last checked (epoch ms): items older than a new start age out. */
      windowStart?: number;
      /**
       * Of `pendingAdds`, those older than the window that ConversationMode brings in (UidSet): they are sent with
       * their preview but no body (MS-ASCMD §2.2.3.36.2).
       */
      conversationAdds?: string;
      /**
       * Without CONDSTORE: the flags the device has, one token per UID of `uids`, in UID order (sync-email.ts
       * flagDigit).
       */
      flagDigits?: string;
      /**
       * UIDNEXT and the message count seen together with `highestModSeq`: with them, changes that are only new
       * arrivals are found without a query that makes the server look at every message (MailBackend.changesSince).
       */
      uidNext?: number;
      messages?: number;
    }
  | {
      kind: 'dav';
      syncToken: string;
      etags: Record<string, string>;
      /** Calendars with a FilterType window: when each item's last occurrence ends (epoch ms), to age it out. */
      ends?: Record<string, number>;
    };

/** Options the client set for a collection (Sync Options), kept because later requests may omit them. */
export interface SyncOptions {
  filterType?: number;
  /** AirSyncBase BodyPreference entries: type, truncation size, all-or-none, preview size. */
  bodyPreferences?: { type: number; truncationSize?: number; allOrNone?: boolean; preview?: number }[];
  /** AirSyncBase BodyPartPreference entries (14.1): the conversation-trimmed HTML part. */
  bodyPartPreferences?: { type: number; truncationSize?: number; allOrNone?: boolean; preview?: number }[];
  mimeSupport?: number;
  mimeTruncation?: number;
  conflict?: number;
  windowSize?: number;
  /**
   * Sync's ConversationMode (MS-ASCMD §2.2.3.36.2), kept with the options although the device sends it in Collection:
   * the FilterType window also takes the older messages of its conversations (sync/email.ts).
   */
  conversationMode?: boolean;
  /** Options for the other class in a folder that holds two (SMS in the Inbox, 14.0+). */
  perClass?: Record<string, Omit<SyncOptions, 'perClass'>>;
}

/**
 * A draft as the device that edits it knows it. Each save is a new IMAP message (a new UID); the device keeps the
 * ServerId it was first given, so `uid` says where the draft is now, and `parts` which attachment numbers the device
 * holds FileReferences for (`parts[i]` names the current MIME's attachment i; new ones get `nextPart` on).
 */
export interface DraftRecord {
  uid: number;
  parts: number[];
  nextPart: number;
}

/** The key of a mail folder's records in the per-user store: its UIDVALIDITY and mailbox path. */
export function mailFolderKey(mailbox: string, uidValidity: number | string): string {
  return `${uidValidity}:${mailbox}`;
}

/** A mail flag as a device set it (MS-ASEMAIL §2.2.2.34): its Status (1 complete, 2 active) and its fields in order. */
export interface FlagDetails {
  status: '1' | '2';
  /** [namespace, tag, text] of each child of the device's Flag. */
  fields: ['Email' | 'Tasks', string, string][];
}

/**
 * A conversation a device asked to keep moving (ItemOperations Move with MoveAlways, MS-ASCMD §2.2.3.118): every
 * message of it that arrives later in a mail folder other than Sent Items is moved to `destination` when a device of
 * the user syncs that folder (src/sync/conversation-rules.ts).
 */
export interface ConversationRule {
  /** email2:ConversationId, as lower-case hex. */
  conversationId: string;
  /** The destination folder on the backend (IMAP mailbox path). */
  destination: string;
  /** The device that set it. */
  deviceId: string;
  createdAt: number;
  /** Epoch ms after which the rule is gone. */
  until: number;
}

/** A change found on the backend but not yet sent, because the window was full (MoreAvailable). */
export interface PendingChange {
  kind: 'add' | 'change' | 'delete' | 'softdelete';
  serverId: string;
  /** The backend's id when the ServerId does not contain it (a DAV href). */
  ref?: string;
}

export interface CollectionState {
  /** ActiveSync class: Email, Calendar, Contacts, Tasks, Notes, SMS. */
  class: string;
  watermark: Watermark;
  options: SyncOptions;
  pending: PendingChange[];
  /** ClientId → ServerId of recent client Adds, so that a resent Add is not created twice. */
  clientIds: Record<string, string>;
  /**
   * ServerId → new ServerId of items recently moved out by MoveItems, so that a resent MoveItems gets the same answer.
   */
  movedTo?: Record<string, string>;
  /**
   * The properties the client declared it supports (Supported, with SyncKey 0): absent ones in a Change are deletions.
   */
  supported?: string[];
  /**
   * Flag details by UID, as states written before they moved to the per-user store (StateStore.getMailFlags) kept
   * them; read once and carried over by the next Sync of the collection.
   */
  flags?: Record<string, FlagDetails>;
  /** Drafts this device wrote (16.0 Drafts sync, src/sync/drafts.ts), by the ServerId the device keeps for them. */
  drafts?: Record<string, DraftRecord>;
  /**
   * Loop detection (src/sync/loop-detection.ts): the key the device keeps resending, how often, and the shrunk window.
   */
  loop?: { syncKey: string; repeats: number; window?: number };
  /** Items skipped because they broke the sync, newest last (src/sync/loop-detection.ts). */
  brokenItems?: BrokenItem[];
}

/** The last Ping's folders and heartbeat: an empty Ping repeats them. */
export interface PingCache {
  heartbeatInterval: number;
  folders: { id: string; class: string }[];
  expiresAt: number;
}

/** The last full Sync request, which an empty or partial Sync (12.1+) refers to. */
export interface SyncRequestCache {
  wait?: number;
  heartbeatInterval?: number;
  windowSize?: number;
  collections: {
    collectionId: string;
    syncKey?: string;
    windowSize?: number;
    getChanges?: boolean;
    options?: SyncOptions;
  }[];
  expiresAt: number;
}

/** The newest change the watcher saw in one folder of one account. */
export interface FeedEntry {
  folder: string;
  /** Opaque and comparable by the writer: IMAP HIGHESTMODSEQ, a DAV sync-token, a counter. */
  marker: string;
  changedAt: number;
  expiresAt: number;
}

/** "Devices are pinging this account until `until`": the watcher watches accounts that have one. */
export interface WatchLease {
  tenant: string;
  user: string;
  /** Epoch ms; also the lease's expiry. */
  until: number;
  /** The user's credential, sealed by the tenant vault, when the tenant passes passwords through. */
  credential?: Uint8Array;
}

/**
 * A small record that a one-time action is under way or done, e.g. "the message with ClientId c was sent" (SendMail,
 * SmartReply, SmartForward), so that a resent request does not act twice. Scoped by device, like everything a device
 * sends.
 */
export interface Marker {
  /** Opaque to the store, e.g. 'sending' or 'sent'. */
  value: string;
  /** Epoch ms; the marker reads as absent from then on. */
  expiresAt: number;
}

/**
 * An admin's protocol capture (src/admin/capture.ts): the requests of one user's devices, or of one device, are kept
 * until `until`.
 */
export interface CaptureRule {
  /** The canonical login, lower case (devices/seen.ts deviceScope). */
  user: string;
  /** One device; absent for every device of the user. */
  deviceId?: string;
  /** Epoch ms. */
  startedAt: number;
  /** Epoch ms; the rule reads as absent from then on. */
  until: number;
  /** Message bodies, attachments and other large values are cut to this many characters; 0 leaves only their size. */
  maxBodyBytes: number;
}

/** A request or response body as captured: decoded WBXML as XML, else text or base64, cut to the rule's size. */
export interface CapturedBody {
  contentType: string;
  /** The body's full length. */
  bytes: number;
  /** WBXML as readable XML (src/wbxml/xml.ts), passwords redacted and large values cut. */
  xml?: string;
  /** A body that is not WBXML, as UTF-8 text or base64, both cut to the rule's size. */
  text?: string;
  base64?: string;
  /** The parts of a multipart answer (MS-ASCMD §2.2.1.10 AcceptMultiPart), in order. */
  parts?: CapturedBody[];
  /** Whether anything was cut or left out. */
  cut?: boolean;
}

/** One ActiveSync request and its answer, as a capture keeps it: never a credential, token or cookie. */
export interface CapturedExchange {
  /** Epoch ms when the request arrived; the exchanges of a device are read in this order. */
  time: number;
  ms: number;
  method: string;
  command: string;
  /** The query as the device sent it (plain or base64-packed), without the `?`. */
  query: string;
  request: { headers: Record<string, string>; body?: CapturedBody };
  response: { status: number; headers: Record<string, string>; body?: CapturedBody };
  /** The command's Status, when the answer has one at its root. */
  commandStatus?: number;
  /** The error the log line names, if any. */
  error?: string;
}

/** A captured exchange in the store, under its device. */
export interface CaptureRecord {
  /** Epoch ms (the exchange's time) and a random id: records of one device sort by them. */
  at: number;
  id: string;
  /** Epoch ms; the record reads as absent from then on. */
  expiresAt: number;
  exchange: CapturedExchange;
}

/** How long per-command counters (CommandStats) are kept, in minutes. */
export const COMMAND_STATS_RETENTION_MINUTES = 7 * 24 * 60;

/**
 * The most XML and text one capture record holds (characters, request and response together), so that it fits
 * every store's item limit (DynamoDB: 400 KB) before compression.
 */
export const CAPTURE_RECORD_MAX_CHARS = 300_000;

/** How many lease partitions each tenant has; a watcher instance takes some of them. */
export const LEASE_SHARDS = 16;

/** Thrown by a commit whose precondition did not hold: another request moved the key first. Retryable. */
export class StateConflictError extends Error {
  override readonly name = 'StateConflictError';
}

export interface StateStore {
  // Devices.
  getDevice(device: DeviceScope): Promise<DeviceRecord | undefined>;
  /** Creates the device (firstSeen = lastSeen) or sets the given fields, leaving the others as they are. */
  updateDevice(device: DeviceScope, update: DeviceUpdate): Promise<DeviceRecord>;
  listDevices(user: UserScope): Promise<DeviceRecord[]>;
  /** Removes the device and all its state: hierarchy, collections, caches. */
  deleteDevice(device: DeviceScope): Promise<void>;

  // Per-user settings (Settings Oof).
  getUserSettings(user: UserScope): Promise<UserSettings | undefined>;
  /** Replaces the user's settings record whole. */
  putUserSettings(user: UserScope, settings: UserSettings): Promise<void>;

  /**
   * Mail flag details IMAP cannot hold (src/items/email-flag.ts), per user and message: by folder (`mailFolderKey`:
   * the mailbox and its UIDVALIDITY) and UID, so that every device of the user and every resync sees the same.
   */
  getMailFlags(user: UserScope, folder: string): Promise<Record<string, FlagDetails>>;
  /** Sets (details) or removes (null) the details of messages of one folder, by UID. */
  putMailFlags(user: UserScope, folder: string, changes: Record<string, FlagDetails | null>): Promise<void>;

  /** Conversation rules (MoveAlways), per user; expired ones are not listed. */
  listConversationRules(user: UserScope): Promise<ConversationRule[]>;
  /** Adds or replaces the rule for its conversation. */
  putConversationRule(user: UserScope, rule: ConversationRule): Promise<void>;
  deleteConversationRule(user: UserScope, conversationId: string): Promise<void>;

  // Folder hierarchy (FolderSync).
  getHierarchy(device: DeviceScope): Promise<KeyedState<HierarchyState> | undefined>;
  commitHierarchy(device: DeviceScope, precondition: Precondition, next: KeyedState<HierarchyState>): Promise<void>;

  // Collections (Sync).
  getCollection(device: DeviceScope, collectionId: string): Promise<KeyedState<CollectionState> | undefined>;
  commitCollection(
    device: DeviceScope,
    collectionId: string,
    precondition: Precondition,
    next: KeyedState<CollectionState>,
  ): Promise<void>;
  /** The ids of the collections the device has synced. */
  listCollections(device: DeviceScope): Promise<string[]>;
  deleteCollection(device: DeviceScope, collectionId: string): Promise<void>;

  // Caches of the last Ping and the last full Sync request.
  getPingCache(device: DeviceScope): Promise<PingCache | undefined>;
  putPingCache(device: DeviceScope, cache: PingCache): Promise<void>;
  getSyncRequestCache(device: DeviceScope): Promise<SyncRequestCache | undefined>;
  putSyncRequestCache(device: DeviceScope, cache: SyncRequestCache): Promise<void>;

  // Change feed, written by the watcher, polled by Ping.
  putFeedEntry(user: UserScope, entry: FeedEntry): Promise<void>;
  /** The user's feed entries that have not expired, all folders. */
  readFeed(user: UserScope): Promise<FeedEntry[]>;

  // Markers of one-time actions (SendMail ClientIds).
  /**
   * Stores the marker under `name` unless a live one is there, atomically: undefined when it was stored, else the live
   * marker (left as it was). Of two concurrent claims of one name exactly one gets undefined.
   */
  claimMarker(device: DeviceScope, name: string, marker: Marker): Promise<Marker | undefined>;
  /** Stores or replaces the marker under `name`. */
  putMarker(device: DeviceScope, name: string, marker: Marker): Promise<void>;
  deleteMarker(device: DeviceScope, name: string): Promise<void>;

  // Watch leases.
  /** Creates the lease or extends it (`until` never moves back); the credential is replaced when given. */
  putLease(lease: WatchLease): Promise<void>;
  getLease(user: UserScope): Promise<WatchLease | undefined>;
  /** The unexpired leases of one shard of a tenant (0 ≤ shard < LEASE_SHARDS). */
  listLeases(tenant: string, shard: number, now?: number): Promise<WatchLease[]>;
  deleteLease(user: UserScope): Promise<void>;

  // Tenant-wide records, for the admin API (src/admin/api.ts).
  /** Every device of a tenant, all users: an index written when a device is created and removed with it. */
  listTenantDevices(tenant: string): Promise<DeviceScope[]>;
  getAccessRules(tenant: string): Promise<AccessRules | undefined>;
  putAccessRules(tenant: string, rules: AccessRules): Promise<void>;
  /**
   * Adds to the counters of one command in one minute (requests, errors and totalMs add up, maxMs keeps the larger).
   */
  addCommandStats(tenant: string, stats: CommandStats): Promise<void>;
  /** The counters of the minutes from `sinceMinute` on, all commands. */
  readCommandStats(tenant: string, sinceMinute: number): Promise<CommandStats[]>;

  // Failed logins (src/protocol/throttle.ts), tenant-wide so that every instance of a stateless deployment sees them.
  /**
   * Counts one failure under `key` and returns the live count: the first failure after a window has ended starts a
   * new one of `windowMs`. Atomic: concurrent failures are all counted.
   */
  addAuthFailure(tenant: string, key: string, windowMs: number): Promise<AuthFailures>;
  /** The live record under `key`, if any. */
  getAuthFailures(tenant: string, key: string): Promise<AuthFailures | undefined>;
  clearAuthFailures(tenant: string, key: string): Promise<void>;
  /** Takes back one counted failure under `key` while its window lasts (never below 0): a login that succeeded. */
  refundAuthFailure(tenant: string, key: string): Promise<void>;
  /** Records that `key` (a user name and client address) signed in; the record reads as absent from `until` on. */
  putKnownLogin(tenant: string, key: string, until: number): Promise<void>;
  /** Until when `key` counts as a known sign-in (epoch ms), if it does. */
  getKnownLogin(tenant: string, key: string): Promise<number | undefined>;

  // Protocol capture (src/admin/capture.ts): the rules tenant-wide, the records under their device (deleteDevice
  // removes them).
  /** Stores the rule of its user and device (or all the user's devices), replacing the one there. */
  putCaptureRule(tenant: string, rule: CaptureRule): Promise<void>;
  /** The tenant's rules that have not ended. */
  listCaptureRules(tenant: string): Promise<CaptureRule[]>;
  /** Removes the rule of the user and device (undefined: the rule for all the user's devices). */
  deleteCaptureRule(tenant: string, user: string, deviceId: string | undefined): Promise<void>;
  /** Adds a record; its encoded size stays under CAPTURE_RECORD_MAX_CHARS of XML and text (the capture cuts). */
  addCaptureRecord(device: DeviceScope, record: CaptureRecord): Promise<void>;
  /** The device's records that have not expired, oldest first (by `at`, then `id`). */
  listCaptureRecords(device: DeviceScope): Promise<CaptureRecord[]>;
  deleteCaptureRecords(device: DeviceScope): Promise<void>;
}
