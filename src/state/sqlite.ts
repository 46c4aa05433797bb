/**
 * The StateStore on SQLite: one schema, versioned migrations, and the store written against a small synchronous
 * driver so that it runs on two engines:
 * - better-sqlite3, a file under STATE_DIR, for the Node runtime (sqlite-node.ts);
 * - Durable Object storage (`ctx.storage.sql`), one object per tenant+user, on Cloudflare (durable-object.ts).
 *
 * Compare-and-set is a conditional INSERT/UPDATE whose changed-row count decides the winner. Both engines run one
 * statement (and one transaction) at a time per database, so no interleaving can split a read from its write.
 */
import { decodeRecord, encodeRecord } from './codec.ts';
import { leaseShard } from './shard.ts';
import {
  COMMAND_STATS_RETENTION_MINUTES,
  StateConflictError,
  type AccessRules,
  type AuthFailures,
  type CaptureRecord,
  type CaptureRule,
  type CapturedExchange,
  type CollectionState,
  type CommandStats,
  type ConversationRule,
  type DeviceRecord,
  type DeviceScope,
  type DeviceUpdate,
  type FeedEntry,
  type FlagDetails,
  type HierarchyState,
  type KeyedState,
  type Marker,
  type PingCache,
  type Precondition,
  type Replay,
  type StateStore,
  type SyncRequestCache,
  type UserScope,
  type UserSettings,
  type WatchLease,
} from './types.ts';

export type SqlValue = string | number | null | Uint8Array;
export type SqlRow = Record<string, SqlValue>;

/** What the store needs from an SQLite engine. Synchronous, as both engines are. */
export interface SqlDriver {
  query(sql: string, ...params: SqlValue[]): SqlRow[];
  /**
   * Runs a statement; returns how many rows it changed (0 exactly when none; Durable Objects count index entries too).
   */
  run(sql: string, ...params: SqlValue[]): number;
  transaction<T>(fn: () => T): T;
}

/** Schema versions, applied in order, each once. Never edit a released one: add the next. */
export const MIGRATIONS: readonly { version: number; statements: readonly string[] }[] = [
  {
    version: 1,
    statements: [
      `CREATE TABLE devices (
        tenant TEXT NOT NULL, user TEXT NOT NULL, device_id TEXT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (tenant, user, device_id)
      ) WITHOUT ROWID`,
      // kind 'hierarchy' (collection_id '') or 'collection'; replay_* is the previous key's response.
      `CREATE TABLE sync_states (
        tenant TEXT NOT NULL, user TEXT NOT NULL, device_id TEXT NOT NULL,
        kind TEXT NOT NULL, collection_id TEXT NOT NULL,
        sync_key TEXT NOT NULL, state BLOB NOT NULL,
        replay_key TEXT, replay BLOB, replay_expires_at INTEGER,
        PRIMARY KEY (tenant, user, device_id, kind, collection_id)
      )`,
      // kind 'ping' or 'sync-request'.
      `CREATE TABLE caches (
        tenant TEXT NOT NULL, user TEXT NOT NULL, device_id TEXT NOT NULL, kind TEXT NOT NULL,
        value BLOB NOT NULL, expires_at INTEGER NOT NULL,
        PRIMARY KEY (tenant, user, device_id, kind)
      ) WITHOUT ROWID`,
      `CREATE TABLE feed (
        tenant TEXT NOT NULL, user TEXT NOT NULL, folder TEXT NOT NULL,
        marker TEXT NOT NULL, changed_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
        PRIMARY KEY (tenant, user, folder)
      ) WITHOUT ROWID`,
      `CREATE TABLE leases (
        tenant TEXT NOT NULL, user TEXT NOT NULL, shard INTEGER NOT NULL,
        until INTEGER NOT NULL, credential BLOB,
        PRIMARY KEY (tenant, user)
      ) WITHOUT ROWID`,
      `CREATE INDEX leases_by_shard ON leases (tenant, shard, until)`,
    ],
  },
  {
    version: 2,
    statements: [
      // Per-user settings (Settings Oof): one JSON record per user.
      `CREATE TABLE user_settings (
        tenant TEXT NOT NULL, user TEXT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (tenant, user)
      ) WITHOUT ROWID`,
    ],
  },
  {
    version: 3,
    statements: [
      // Tenant-wide records for the admin API. The device index duplicates the devices table's keys because on
      // Durable Objects the devices live in per-user databases and the index in the tenant's.
      `CREATE TABLE device_index (
        tenant TEXT NOT NULL, user TEXT NOT NULL, device_id TEXT NOT NULL,
        PRIMARY KEY (tenant, user, device_id)
      ) WITHOUT ROWID`,
      `INSERT OR IGNORE INTO device_index (tenant, user, device_id) SELECT tenant, user, device_id FROM devices`,
      `CREATE TABLE tenant_records (
        tenant TEXT NOT NULL, kind TEXT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (tenant, kind)
      ) WITHOUT ROWID`,
      `CREATE TABLE command_stats (
        tenant TEXT NOT NULL, minute INTEGER NOT NULL, command TEXT NOT NULL,
        requests INTEGER NOT NULL, errors INTEGER NOT NULL, total_ms INTEGER NOT NULL, max_ms INTEGER NOT NULL,
        PRIMARY KEY (tenant, minute, command)
      ) WITHOUT ROWID`,
    ],
  },
  {
    version: 4,
    statements: [
      // Protocol capture: the rules tenant-wide (device_id '' for all of a user's devices), the records per device.
      `CREATE TABLE capture_rules (
        tenant TEXT NOT NULL, user TEXT NOT NULL, device_id TEXT NOT NULL,
        until INTEGER NOT NULL, record TEXT NOT NULL,
        PRIMARY KEY (tenant, user, device_id)
      ) WITHOUT ROWID`,
      `CREATE TABLE capture_records (
        tenant TEXT NOT NULL, user TEXT NOT NULL, device_id TEXT NOT NULL,
        at INTEGER NOT NULL, id TEXT NOT NULL, expires_at INTEGER NOT NULL, exchange BLOB NOT NULL,
        PRIMARY KEY (tenant, user, device_id, at, id)
      )`,
    ],
  },
  {
    version: 5,
    statements: [
      // Per user and message: mail flag details (folder = UIDVALIDITY:mailbox), conversation rules (MoveAlways).
      `CREATE TABLE mail_flags (
        tenant TEXT NOT NULL, user TEXT NOT NULL, folder TEXT NOT NULL, uid INTEGER NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (tenant, user, folder, uid)
      ) WITHOUT ROWID`,
      `CREATE TABLE conversation_rules (
        tenant TEXT NOT NULL, user TEXT NOT NULL, conversation_id TEXT NOT NULL,
        until INTEGER NOT NULL, record TEXT NOT NULL,
        PRIMARY KEY (tenant, user, conversation_id)
      ) WITHOUT ROWID`,
    ],
  },
];

/** Brings a database to the newest schema. Safe to call on every start. */
export function migrate(db: SqlDriver): void {
  db.run('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)');
  const applied = new Set(db.query('SELECT version FROM schema_migrations').map((r) => Number(r.version)));
  for (const migration of MIGRATIONS) {
    if (applied.has(migration.version)) continue;
    db.transaction(() => {
      for (const statement of migration.statements) db.run(statement);
      db.run('INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)', migration.version, Date.now());
    });
  }
}

type SyncStateKind = 'hierarchy' | 'collection';

export class SqliteStateStore implements StateStore {
  /** The minute command_stats was last pruned of old minutes (by this instance). */
  private statsPrunedAt = 0;
  /** When expired failed-login records were last pruned (by this instance), epoch ms. */
  private authFailuresPrunedAt = 0;
  /** When expired known-login records were last pruned (by this instance), epoch ms. */
  private knownLoginsPrunedAt = 0;
  /** When expired capture records were last pruned (by this instance), epoch ms. */
  private capturesPrunedAt = 0;

  /**
   * `lazyReplays`: a replay's response is read from the row when first asked for (storedReplay). For a store in the
   * caller's process (better-sqlite3); a Durable Object hands every state it reads over RPC, which would read it
   * anyway, in a second query.
   */
  constructor(
    private readonly db: SqlDriver,
    private readonly options: { lazyReplays?: boolean } = {},
  ) {
    migrate(db);
  }

  // Devices.

  async getDevice(d: DeviceScope): Promise<DeviceRecord | undefined> {
    const row = this.db.query(
      'SELECT record FROM devices WHERE tenant = ? AND user = ? AND device_id = ?',
      d.tenant,
      d.user,
      d.deviceId,
    )[0];
    return row ? (JSON.parse(String(row.record)) as DeviceRecord) : undefined;
  }

  async updateDevice(d: DeviceScope, update: DeviceUpdate): Promise<DeviceRecord> {
    return this.db.transaction(() => {
      const row = this.db.query(
        'SELECT record FROM devices WHERE tenant = ? AND user = ? AND device_id = ?',
        d.tenant,
        d.user,
        d.deviceId,
      )[0];
      const lastSeen = update.lastSeen ?? Date.now();
      const current: DeviceRecord = row
        ? (JSON.parse(String(row.record)) as DeviceRecord)
        : {
            deviceId: d.deviceId,
            deviceType: update.deviceType,
            provisioning: 'none',
            wipe: 'none',
            firstSeen: lastSeen,
            lastSeen,
          };
      const next = withoutUndefined({ ...current, ...update, deviceId: d.deviceId, firstSeen: current.firstSeen });
      if (!row) this.indexDevice(d);
      this.db.run(
        `INSERT INTO devices (tenant, user, device_id, record) VALUES (?, ?, ?, ?)
         ON CONFLICT (tenant, user, device_id) DO UPDATE SET record = excluded.record`,
        d.tenant,
        d.user,
        d.deviceId,
        JSON.stringify(next),
      );
      return next;
    });
  }

  async listDevices(u: UserScope): Promise<DeviceRecord[]> {
    return this.db
      .query('SELECT record FROM devices WHERE tenant = ? AND user = ? ORDER BY device_id', u.tenant, u.user)
      .map((r) => JSON.parse(String(r.record)) as DeviceRecord);
  }

  async deleteDevice(d: DeviceScope): Promise<void> {
    this.db.transaction(() => {
      for (const table of ['devices', 'sync_states', 'caches', 'device_index', 'capture_records']) {
        this.db.run(
          `DELETE FROM ${table} WHERE tenant = ? AND user = ? AND device_id = ?`,
          d.tenant,
          d.user,
          d.deviceId,
        );
      }
    });
  }

  /**
   * The tenant-wide device index. updateDevice and deleteDevice keep it in this database; on Durable Objects the
   * tenant's object holds the index, and the store there calls these two on it (durable-object.ts).
   */
  indexDevice(d: DeviceScope): void {
    this.db.run(
      'INSERT OR IGNORE INTO device_index (tenant, user, device_id) VALUES (?, ?, ?)',
      d.tenant,
      d.user,
      d.deviceId,
    );
  }

  unindexDevice(d: DeviceScope): void {
    this.db.run(
      'DELETE FROM device_index WHERE tenant = ? AND user = ? AND device_id = ?',
      d.tenant,
      d.user,
      d.deviceId,
    );
  }

  // Per-user settings.

  async getUserSettings(u: UserScope): Promise<UserSettings | undefined> {
    const row = this.db.query('SELECT record FROM user_settings WHERE tenant = ? AND user = ?', u.tenant, u.user)[0];
    return row ? (JSON.parse(String(row.record)) as UserSettings) : undefined;
  }

  async putUserSettings(u: UserScope, settings: UserSettings): Promise<void> {
    this.db.run(
      `INSERT INTO user_settings (tenant, user, record) VALUES (?, ?, ?)
       ON CONFLICT (tenant, user) DO UPDATE SET record = excluded.record`,
      u.tenant,
      u.user,
      JSON.stringify(settings),
    );
  }

  // Per user and message: mail flag details, conversation rules.

  async getMailFlags(u: UserScope, folder: string): Promise<Record<string, FlagDetails>> {
    const rows = this.db.query(
      'SELECT uid, record FROM mail_flags WHERE tenant = ? AND user = ? AND folder = ?',
      u.tenant,
      u.user,
      folder,
    );
    return Object.fromEntries(rows.map((r) => [String(r.uid), JSON.parse(String(r.record)) as FlagDetails]));
  }

  async putMailFlags(u: UserScope, folder: string, changes: Record<string, FlagDetails | null>): Promise<void> {
    this.db.transaction(() => {
      for (const [uid, details] of Object.entries(changes)) {
        if (details === null) {
          this.db.run(
            'DELETE FROM mail_flags WHERE tenant = ? AND user = ? AND folder = ? AND uid = ?',
            u.tenant,
            u.user,
            folder,
            Number(uid),
          );
        } else {
          this.db.run(
            `INSERT INTO mail_flags (tenant, user, folder, uid, record) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (tenant, user, folder, uid) DO UPDATE SET record = excluded.record`,
            u.tenant,
            u.user,
            folder,
            Number(uid),
            JSON.stringify(details),
          );
        }
      }
    });
  }

  async listConversationRules(u: UserScope): Promise<ConversationRule[]> {
    const now = Date.now();
    this.db.run('DELETE FROM conversation_rules WHERE tenant = ? AND user = ? AND until <= ?', u.tenant, u.user, now);
    return this.db
      .query(
        'SELECT record FROM conversation_rules WHERE tenant = ? AND user = ? ORDER BY conversation_id',
        u.tenant,
        u.user,
      )
      .map((r) => JSON.parse(String(r.record)) as ConversationRule);
  }

  async putConversationRule(u: UserScope, rule: ConversationRule): Promise<void> {
    this.db.run(
      `INSERT INTO conversation_rules (tenant, user, conversation_id, until, record) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (tenant, user, conversation_id) DO UPDATE SET until = excluded.until, record = excluded.record`,
      u.tenant,
      u.user,
      rule.conversationId,
      rule.until,
      JSON.stringify(rule),
    );
  }

  async deleteConversationRule(u: UserScope, conversationId: string): Promise<void> {
    this.db.run(
      'DELETE FROM conversation_rules WHERE tenant = ? AND user = ? AND conversation_id = ?',
      u.tenant,
      u.user,
      conversationId,
    );
  }

  // Hierarchy and collections: one table, two kinds.

  getHierarchy(d: DeviceScope): Promise<KeyedState<HierarchyState> | undefined> {
    return this.readSyncState<HierarchyState>(d, 'hierarchy', '');
  }

  commitHierarchy(d: DeviceScope, precondition: Precondition, next: KeyedState<HierarchyState>): Promise<void> {
    return this.commitSyncState(d, 'hierarchy', '', precondition, next);
  }

  getCollection(d: DeviceScope, collectionId: string): Promise<KeyedState<CollectionState> | undefined> {
    return this.readSyncState<CollectionState>(d, 'collection', collectionId);
  }

  commitCollection(
    d: DeviceScope,
    collectionId: string,
    precondition: Precondition,
    next: KeyedState<CollectionState>,
  ): Promise<void> {
    return this.commitSyncState(d, 'collection', collectionId, precondition, next);
  }

  async listCollections(d: DeviceScope): Promise<string[]> {
    return this.db
      .query(
        `SELECT collection_id FROM sync_states WHERE tenant = ? AND user = ? AND device_id = ? AND kind = 'collection' ORDER BY collection_id`,
        d.tenant,
        d.user,
        d.deviceId,
      )
      .map((r) => String(r.collection_id));
  }

  async deleteCollection(d: DeviceScope, collectionId: string): Promise<void> {
    this.db.run(
      `DELETE FROM sync_states WHERE tenant = ? AND user = ? AND device_id = ? AND kind = 'collection' AND collection_id = ?`,
      d.tenant,
      d.user,
      d.deviceId,
      collectionId,
    );
  }

  private async readSyncState<S>(d: DeviceScope, kind: SyncStateKind, id: string): Promise<KeyedState<S> | undefined> {
    // With lazyReplays, the replay's bytes (a window of up to hundreds of KB) stay in the row until asked for: a Sync
    // that moves the key on never reads them, and reading them took more CPU than the rest of the state.
    const lazy = this.options.lazyReplays === true;
    const row = this.db.query(
      `SELECT sync_key, state, replay_key, ${lazy ? '' : 'replay, '}replay_expires_at FROM sync_states
       WHERE tenant = ? AND user = ? AND device_id = ? AND kind = ? AND collection_id = ?`,
      d.tenant,
      d.user,
      d.deviceId,
      kind,
      id,
    )[0];
    if (!row) return undefined;
    const result: KeyedState<S> = {
      syncKey: String(row.sync_key),
      state: await decodeRecord<S>(row.state as Uint8Array),
    };
    const expiresAt = row.replay_expires_at === null ? 0 : Number(row.replay_expires_at);
    if (row.replay_key !== null && expiresAt > Date.now()) {
      const replayKey = String(row.replay_key);
      result.replay = lazy
        ? this.storedReplay({ d, kind, id, syncKey: result.syncKey, replayKey }, expiresAt)
        : { syncKey: replayKey, response: row.replay as Uint8Array, expiresAt };
    }
    return result;
  }

  /**
   * The replay of a row as read: its response is read on first use, from the row as it was read (same sync key and
   * replay key). Gone by then (another request moved the key on), it is a StateConflictError, as the commit of a
   * state read with it would be.
   */
  private storedReplay(at: StoredReplay, expiresAt: number): Replay {
    let response: Uint8Array | undefined;
    const read = (): Uint8Array => {
      const row = this.db.query(
        `SELECT replay FROM sync_states
         WHERE tenant = ? AND user = ? AND device_id = ? AND kind = ? AND collection_id = ? AND sync_key = ? AND replay_key = ?`,
        at.d.tenant,
        at.d.user,
        at.d.deviceId,
        at.kind,
        at.id,
        at.syncKey,
        at.replayKey,
      )[0];
      if (!row || !(row.replay instanceof Uint8Array))
        throw new StateConflictError(`${at.kind}${at.id ? ` ${at.id}` : ''}: the stored replay was replaced`);
      return row.replay;
    };
    const replay: Replay = {
      syncKey: at.replayKey,
      get response(): Uint8Array {
        response ??= read();
        return response;
      },
      expiresAt,
    };
    storedReplays.set(replay, at);
    return replay;
  }

  private async commitSyncState<S>(
    d: DeviceScope,
    kind: SyncStateKind,
    id: string,
    precondition: Precondition,
    next: KeyedState<S>,
  ): Promise<void> {
    // Encoding is asynchronous (deflate), so it happens before the synchronous compare-and-set.
    const state = await encodeRecord(next.state);
    const replay = next.replay;
    // A state committed with the replay it was read with (bookkeeping: a resend counted, a move noted): the replay
    // stays in the row as it is, neither read nor written again.
    const kept = replay && storedReplays.get(replay);
    if (
      kept &&
      typeof precondition === 'object' &&
      kept.syncKey === precondition.syncKey &&
      kept.kind === kind &&
      kept.id === id &&
      sameDevice(kept.d, d)
    ) {
      const changed = this.db.run(
        `UPDATE sync_states SET sync_key = ?, state = ?, replay_expires_at = ?
         WHERE tenant = ? AND user = ? AND device_id = ? AND kind = ? AND collection_id = ? AND sync_key = ? AND replay_key = ?`,
        next.syncKey,
        state,
        replay.expiresAt,
        d.tenant,
        d.user,
        d.deviceId,
        kind,
        id,
        precondition.syncKey,
        kept.replayKey,
      );
      if (changed === 0)
        throw new StateConflictError(`${kind}${id ? ` ${id}` : ''}: the stored sync key is not the expected one`);
      return;
    }
    const values: SqlValue[] = [
      next.syncKey,
      state,
      replay?.syncKey ?? null,
      replay?.response ?? null,
      replay?.expiresAt ?? null,
    ];
    const where = [d.tenant, d.user, d.deviceId, kind, id];
    let changed: number;
    if (precondition === 'absent' || precondition === 'any') {
      changed = this.db.run(
        `INSERT INTO sync_states (sync_key, state, replay_key, replay, replay_expires_at, tenant, user, device_id, kind, collection_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (tenant, user, device_id, kind, collection_id) DO ${
           precondition === 'absent'
             ? 'NOTHING'
             : 'UPDATE SET sync_key = excluded.sync_key, state = excluded.state, replay_key = excluded.replay_key, replay = excluded.replay, replay_expires_at = excluded.replay_expires_at'
         }`,
        ...values,
        ...where,
      );
    } else {
      changed = this.db.run(
        `UPDATE sync_states SET sync_key = ?, state = ?, replay_key = ?, replay = ?, replay_expires_at = ?
         WHERE tenant = ? AND user = ? AND device_id = ? AND kind = ? AND collection_id = ? AND sync_key = ?`,
        ...values,
        ...where,
        precondition.syncKey,
      );
    }
    if (changed === 0)
      throw new StateConflictError(`${kind}${id ? ` ${id}` : ''}: the stored sync key is not the expected one`);
  }

  // Caches.

  async getPingCache(d: DeviceScope): Promise<PingCache | undefined> {
    return this.readCache<PingCache>(d, 'ping');
  }

  async putPingCache(d: DeviceScope, cache: PingCache): Promise<void> {
    await this.writeCache(d, 'ping', cache);
  }

  async getSyncRequestCache(d: DeviceScope): Promise<SyncRequestCache | undefined> {
    return this.readCache<SyncRequestCache>(d, 'sync-request');
  }

  async putSyncRequestCache(d: DeviceScope, cache: SyncRequestCache): Promise<void> {
    await this.writeCache(d, 'sync-request', cache);
  }

  private async readCache<T>(d: DeviceScope, kind: string): Promise<T | undefined> {
    const row = this.db.query(
      'SELECT value FROM caches WHERE tenant = ? AND user = ? AND device_id = ? AND kind = ? AND expires_at > ?',
      d.tenant,
      d.user,
      d.deviceId,
      kind,
      Date.now(),
    )[0];
    return row ? decodeRecord<T>(row.value as Uint8Array) : undefined;
  }

  private async writeCache(d: DeviceScope, kind: string, cache: { expiresAt: number }): Promise<void> {
    const value = await encodeRecord(cache);
    this.db.run(
      `INSERT INTO caches (tenant, user, device_id, kind, value, expires_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (tenant, user, device_id, kind) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
      d.tenant,
      d.user,
      d.deviceId,
      kind,
      value,
      cache.expiresAt,
    );
  }

  // Change feed.

  async putFeedEntry(u: UserScope, entry: FeedEntry): Promise<void> {
    this.db.run(
      `INSERT INTO feed (tenant, user, folder, marker, changed_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (tenant, user, folder) DO UPDATE SET
         marker = excluded.marker, changed_at = excluded.changed_at, expires_at = excluded.expires_at`,
      u.tenant,
      u.user,
      entry.folder,
      entry.marker,
      entry.changedAt,
      entry.expiresAt,
    );
  }

  async readFeed(u: UserScope): Promise<FeedEntry[]> {
    return this.db
      .query(
        'SELECT folder, marker, changed_at, expires_at FROM feed WHERE tenant = ? AND user = ? AND expires_at > ?',
        u.tenant,
        u.user,
        Date.now(),
      )
      .map((r) => ({
        folder: String(r.folder),
        marker: String(r.marker),
        changedAt: Number(r.changed_at),
        expiresAt: Number(r.expires_at),
      }));
  }

  // Markers: rows of the caches table under kind `marker:<name>` (expiry and device deletion as for the caches).

  async claimMarker(d: DeviceScope, name: string, marker: Marker): Promise<Marker | undefined> {
    const kind = markerKind(name);
    return this.db.transaction(() => {
      const now = Date.now();
      const changed = this.db.run(
        `INSERT INTO caches (tenant, user, device_id, kind, value, expires_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (tenant, user, device_id, kind) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
         WHERE caches.expires_at <= ?`,
        d.tenant,
        d.user,
        d.deviceId,
        kind,
        utf8Bytes(marker.value),
        marker.expiresAt,
        now,
      );
      if (changed > 0) return undefined;
      const row = this.db.query(
        'SELECT value, expires_at FROM caches WHERE tenant = ? AND user = ? AND device_id = ? AND kind = ?',
        d.tenant,
        d.user,
        d.deviceId,
        kind,
      )[0]!;
      return { value: utf8Text(row.value), expiresAt: Number(row.expires_at) };
    });
  }

  async putMarker(d: DeviceScope, name: string, marker: Marker): Promise<void> {
    this.db.run(
      `INSERT INTO caches (tenant, user, device_id, kind, value, expires_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (tenant, user, device_id, kind) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
      d.tenant,
      d.user,
      d.deviceId,
      markerKind(name),
      utf8Bytes(marker.value),
      marker.expiresAt,
    );
  }

  async deleteMarker(d: DeviceScope, name: string): Promise<void> {
    this.db.run(
      'DELETE FROM caches WHERE tenant = ? AND user = ? AND device_id = ? AND kind = ?',
      d.tenant,
      d.user,
      d.deviceId,
      markerKind(name),
    );
  }

  // Watch leases.

  async putLease(lease: WatchLease): Promise<void> {
    const now = Date.now();
    this.db.run(
      // An expired lease is as good as absent: the new one replaces it whole, credential included.
      `INSERT INTO leases (tenant, user, shard, until, credential) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (tenant, user) DO UPDATE SET
         until = CASE WHEN leases.until <= ? THEN excluded.until ELSE max(leases.until, excluded.until) END,
         credential = CASE WHEN leases.until <= ? THEN excluded.credential ELSE coalesce(excluded.credential, leases.credential) END`,
      lease.tenant,
      lease.user,
      leaseShard(lease.user),
      lease.until,
      lease.credential ?? null,
      now,
      now,
    );
  }

  async getLease(u: UserScope): Promise<WatchLease | undefined> {
    const row = this.db.query(
      'SELECT until, credential FROM leases WHERE tenant = ? AND user = ? AND until > ?',
      u.tenant,
      u.user,
      Date.now(),
    )[0];
    return row ? toLease(u.tenant, u.user, row) : undefined;
  }

  async listLeases(tenant: string, shard: number, now = Date.now()): Promise<WatchLease[]> {
    return this.db
      .query(
        'SELECT user, until, credential FROM leases WHERE tenant = ? AND shard = ? AND until > ? ORDER BY user',
        tenant,
        shard,
        now,
      )
      .map((r) => toLease(tenant, String(r.user), r));
  }

  async deleteLease(u: UserScope): Promise<void> {
    this.db.run('DELETE FROM leases WHERE tenant = ? AND user = ?', u.tenant, u.user);
  }

  // Tenant-wide records.

  async listTenantDevices(tenant: string): Promise<DeviceScope[]> {
    return this.db
      .query('SELECT user, device_id FROM device_index WHERE tenant = ? ORDER BY user, device_id', tenant)
      .map((r) => ({ tenant, user: String(r.user), deviceId: String(r.device_id) }));
  }

  async getAccessRules(tenant: string): Promise<AccessRules | undefined> {
    const row = this.db.query(
      `SELECT record FROM tenant_records WHERE tenant = ? AND kind = 'access-rules'`,
      tenant,
    )[0];
    return row ? (JSON.parse(String(row.record)) as AccessRules) : undefined;
  }

  async putAccessRules(tenant: string, rules: AccessRules): Promise<void> {
    this.db.run(
      `INSERT INTO tenant_records (tenant, kind, record) VALUES (?, 'access-rules', ?)
       ON CONFLICT (tenant, kind) DO UPDATE SET record = excluded.record`,
      tenant,
      JSON.stringify(rules),
    );
  }

  async addCommandStats(tenant: string, stats: CommandStats): Promise<void> {
    this.db.run(
      `INSERT INTO command_stats (tenant, minute, command, requests, errors, total_ms, max_ms) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (tenant, minute, command) DO UPDATE SET
         requests = requests + excluded.requests, errors = errors + excluded.errors,
         total_ms = total_ms + excluded.total_ms, max_ms = max(max_ms, excluded.max_ms)`,
      tenant,
      stats.minute,
      stats.command,
      stats.requests,
      stats.errors,
      Math.round(stats.totalMs),
      Math.round(stats.maxMs),
    );
    // Old minutes go once an hour (per process), not on every request.
    if (stats.minute - this.statsPrunedAt >= 60) {
      this.statsPrunedAt = stats.minute;
      this.db.run(
        'DELETE FROM command_stats WHERE tenant = ? AND minute < ?',
        tenant,
        stats.minute - COMMAND_STATS_RETENTION_MINUTES,
      );
    }
  }

  // Failed logins: tenant records of kind `auth-failures:<key>` (no schema change), pruned once a minute.

  async addAuthFailure(tenant: string, key: string, windowMs: number): Promise<AuthFailures> {
    const now = Date.now();
    const next = this.db.transaction(() => {
      const current = this.readAuthFailures(tenant, key, now);
      const record: AuthFailures = current
        ? { count: current.count + 1, resetAt: current.resetAt }
        : { count: 1, resetAt: now + windowMs };
      this.db.run(
        `INSERT INTO tenant_records (tenant, kind, record) VALUES (?, ?, ?)
         ON CONFLICT (tenant, kind) DO UPDATE SET record = excluded.record`,
        tenant,
        AUTH_FAILURES_KIND + key,
        JSON.stringify(record),
      );
      return record;
    });
    if (now - this.authFailuresPrunedAt >= 60_000) {
      this.authFailuresPrunedAt = now;
      this.db.run(
        `DELETE FROM tenant_records WHERE tenant = ? AND substr(kind, 1, ?) = ? AND json_extract(record, '$.resetAt') <= ?`,
        tenant,
        AUTH_FAILURES_KIND.length,
        AUTH_FAILURES_KIND,
        now,
      );
    }
    return next;
  }

  async getAuthFailures(tenant: string, key: string): Promise<AuthFailures | undefined> {
    return this.readAuthFailures(tenant, key, Date.now());
  }

  async clearAuthFailures(tenant: string, key: string): Promise<void> {
    this.db.run('DELETE FROM tenant_records WHERE tenant = ? AND kind = ?', tenant, AUTH_FAILURES_KIND + key);
  }

  async refundAuthFailure(tenant: string, key: string): Promise<void> {
    const now = Date.now();
    this.db.transaction(() => {
      const current = this.readAuthFailures(tenant, key, now);
      if (!current || current.count <= 0) return;
      this.db.run(
        'UPDATE tenant_records SET record = ? WHERE tenant = ? AND kind = ?',
        JSON.stringify({ count: current.count - 1, resetAt: current.resetAt }),
        tenant,
        AUTH_FAILURES_KIND + key,
      );
    });
  }

  // Known sign-ins: tenant records of kind `known-login:<key>`, pruned with the failed-login counters.

  async putKnownLogin(tenant: string, key: string, until: number): Promise<void> {
    this.db.run(
      `INSERT INTO tenant_records (tenant, kind, record) VALUES (?, ?, ?)
       ON CONFLICT (tenant, kind) DO UPDATE SET record = excluded.record`,
      tenant,
      KNOWN_LOGIN_KIND + key,
      JSON.stringify({ until }),
    );
    const now = Date.now();
    if (now - this.knownLoginsPrunedAt >= 3_600_000) {
      this.knownLoginsPrunedAt = now;
      this.db.run(
        `DELETE FROM tenant_records WHERE tenant = ? AND substr(kind, 1, ?) = ? AND json_extract(record, '$.until') <= ?`,
        tenant,
        KNOWN_LOGIN_KIND.length,
        KNOWN_LOGIN_KIND,
        now,
      );
    }
  }

  async getKnownLogin(tenant: string, key: string): Promise<number | undefined> {
    const row = this.db.query(
      'SELECT record FROM tenant_records WHERE tenant = ? AND kind = ?',
      tenant,
      KNOWN_LOGIN_KIND + key,
    )[0];
    const until = row ? (JSON.parse(String(row.record)) as { until: number }).until : undefined;
    return until !== undefined && until > Date.now() ? until : undefined;
  }

  private readAuthFailures(tenant: string, key: string, now: number): AuthFailures | undefined {
    const row = this.db.query(
      'SELECT record FROM tenant_records WHERE tenant = ? AND kind = ?',
      tenant,
      AUTH_FAILURES_KIND + key,
    )[0];
    const record = row ? (JSON.parse(String(row.record)) as AuthFailures) : undefined;
    return record && record.resetAt > now ? record : undefined;
  }

  // Protocol capture.

  async putCaptureRule(tenant: string, rule: CaptureRule): Promise<void> {
    const now = Date.now();
    this.db.run(
      `INSERT INTO capture_rules (tenant, user, device_id, until, record) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (tenant, user, device_id) DO UPDATE SET until = excluded.until, record = excluded.record`,
      tenant,
      rule.user,
      rule.deviceId ?? '',
      rule.until,
      JSON.stringify(rule),
    );
    this.db.run('DELETE FROM capture_rules WHERE tenant = ? AND until <= ?', tenant, now);
  }

  async listCaptureRules(tenant: string): Promise<CaptureRule[]> {
    return this.db
      .query(
        'SELECT record FROM capture_rules WHERE tenant = ? AND until > ? ORDER BY user, device_id',
        tenant,
        Date.now(),
      )
      .map((r) => JSON.parse(String(r.record)) as CaptureRule);
  }

  async deleteCaptureRule(tenant: string, user: string, deviceId: string | undefined): Promise<void> {
    this.db.run(
      'DELETE FROM capture_rules WHERE tenant = ? AND user = ? AND device_id = ?',
      tenant,
      user,
      deviceId ?? '',
    );
  }

  async addCaptureRecord(d: DeviceScope, record: CaptureRecord): Promise<void> {
    const exchange = await encodeRecord(record.exchange);
    const now = Date.now();
    this.db.run(
      `INSERT INTO capture_records (tenant, user, device_id, at, id, expires_at, exchange) VALUES (?, ?, ?, ?, ?, ?, ?)`,
      d.tenant,
      d.user,
      d.deviceId,
      record.at,
      record.id,
      record.expiresAt,
      exchange,
    );
    // Expired records go once a minute (per instance), not on every capture.
    if (now - this.capturesPrunedAt >= 60_000) {
      this.capturesPrunedAt = now;
      this.db.run('DELETE FROM capture_records WHERE expires_at <= ?', now);
    }
  }

  async listCaptureRecords(d: DeviceScope): Promise<CaptureRecord[]> {
    const rows = this.db.query(
      `SELECT at, id, expires_at, exchange FROM capture_records
       WHERE tenant = ? AND user = ? AND device_id = ? AND expires_at > ? ORDER BY at, id`,
      d.tenant,
      d.user,
      d.deviceId,
      Date.now(),
    );
    return Promise.all(
      rows.map(async (r) => ({
        at: Number(r.at),
        id: String(r.id),
        expiresAt: Number(r.expires_at),
        exchange: await decodeRecord<CapturedExchange>(r.exchange as Uint8Array),
      })),
    );
  }

  async deleteCaptureRecords(d: DeviceScope): Promise<void> {
    this.db.run(
      'DELETE FROM capture_records WHERE tenant = ? AND user = ? AND device_id = ?',
      d.tenant,
      d.user,
      d.deviceId,
    );
  }

  async readCommandStats(tenant: string, sinceMinute: number): Promise<CommandStats[]> {
    return this.db
      .query(
        'SELECT minute, command, requests, errors, total_ms, max_ms FROM command_stats WHERE tenant = ? AND minute >= ? ORDER BY minute, command',
        tenant,
        sinceMinute,
      )
      .map((r) => ({
        minute: Number(r.minute),
        command: String(r.command),
        requests: Number(r.requests),
        errors: Number(r.errors),
        totalMs: Number(r.total_ms),
        maxMs: Number(r.max_ms),
      }));
  }
}

/** The tenant_records kind prefix of failed-login counters. */
const AUTH_FAILURES_KIND = 'auth-failures:';
/** The tenant_records kind prefix of known sign-ins (a user and address that logged in). */
const KNOWN_LOGIN_KIND = 'known-login:';

/**
 * Markers share the caches table with the Ping and Sync caches ('ping', 'sync-request'); the prefix keeps them apart.
 */
function markerKind(name: string): string {
  return `marker:${name}`;
}

function utf8Bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function utf8Text(value: SqlValue | undefined): string {
  return value instanceof Uint8Array ? new TextDecoder().decode(value) : String(value ?? '');
}

function toLease(tenant: string, user: string, row: SqlRow): WatchLease {
  const lease: WatchLease = { tenant, user, until: Number(row.until) };
  if (row.credential !== null && row.credential !== undefined) lease.credential = row.credential as Uint8Array;
  return lease;
}

/** Where a replay read by readSyncState lives: the row as it was read. */
interface StoredReplay {
  d: DeviceScope;
  kind: SyncStateKind;
  id: string;
  syncKey: string;
  replayKey: string;
}

/** Replays as read from a row, with their row (for reading their response late, and keeping it on commit). */
const storedReplays = new WeakMap<Replay, StoredReplay>();

function sameDevice(a: DeviceScope, b: DeviceScope): boolean {
  return a.tenant === b.tenant && a.user === b.user && a.deviceId === b.deviceId;
}

function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
