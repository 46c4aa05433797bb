/**
 * The SQLite StateStore inside Durable Objects (Cloudflare). Each object owns one SQLite database
 * (`ctx.storage.sql`) and runs the same SqliteStateStore as the Node runtime, on a driver over that API.
 *
 * Which object holds what:
 * - one object per tenant+user: the user's devices, sync states, caches, change feed and captured requests;
 * - one object per tenant: the tenant's watch leases, since `listLeases(tenant, shard)` must see every user at once,
 *   and the tenant-wide records of the admin API: the device index, access rules, command counters, capture rules.
 * An object runs its SQL one statement at a time, so the compare-and-set commits of sqlite.ts stay atomic here.
 *
 * The Worker reaches the objects over Workers RPC through `durableObjectStateStore(env.STATE)`; the calls a request
 * issues together to one object travel as one RPC (`invokeAll`).
 * Workers-only (imports `cloudflare:workers`); nothing in here may need Node.
 */
import { DurableObject } from 'cloudflare:workers';
import { nextMacrotask } from '../util/yield.ts';
import { SqliteStateStore, type SqlDriver, type SqlRow } from './sqlite.ts';
import {
  StateConflictError,
  type AccessRules,
  type CaptureRecord,
  type CaptureRule,
  type CollectionState,
  type CommandStats,
  type DeviceScope,
  type DeviceUpdate,
  type FeedEntry,
  type HierarchyState,
  type KeyedState,
  type Marker,
  type PingCache,
  type Precondition,
  type StateStore,
  type SyncRequestCache,
  type UserScope,
  type UserSettings,
  type ConversationRule,
  type FlagDetails,
  type WatchLease,
} from './types.ts';

type StoreMethod = keyof StateStore;
/** The device index is kept in the tenant's object by these two, which are not StateStore methods (sqlite.ts). */
type IndexMethod = 'indexDevice' | 'unindexDevice';
type ObjectMethod = StoreMethod | IndexMethod;

/**
 * The methods an object answers over RPC. Listing them keeps `invoke` from reaching the store's internals by name;
 * `satisfies` makes the compiler insist that the list follows the StateStore interface.
 */
const STORE_METHODS = new Set(
  Object.keys({
    getDevice: 0,
    updateDevice: 0,
    listDevices: 0,
    deleteDevice: 0,
    getUserSettings: 0,
    putUserSettings: 0,
    getMailFlags: 0,
    putMailFlags: 0,
    listConversationRules: 0,
    putConversationRule: 0,
    deleteConversationRule: 0,
    getHierarchy: 0,
    commitHierarchy: 0,
    getCollection: 0,
    commitCollection: 0,
    listCollections: 0,
    deleteCollection: 0,
    getPingCache: 0,
    putPingCache: 0,
    getSyncRequestCache: 0,
    putSyncRequestCache: 0,
    putFeedEntry: 0,
    readFeed: 0,
    claimMarker: 0,
    putMarker: 0,
    deleteMarker: 0,
    putLease: 0,
    getLease: 0,
    listLeases: 0,
    deleteLease: 0,
    listTenantDevices: 0,
    getAccessRules: 0,
    putAccessRules: 0,
    addCommandStats: 0,
    readCommandStats: 0,
    addAuthFailure: 0,
    getAuthFailures: 0,
    clearAuthFailures: 0,
    refundAuthFailure: 0,
    putKnownLogin: 0,
    getKnownLogin: 0,
    putCaptureRule: 0,
    listCaptureRules: 0,
    deleteCaptureRule: 0,
    addCaptureRecord: 0,
    listCaptureRecords: 0,
    deleteCaptureRecords: 0,
    indexDevice: 0,
    unindexDevice: 0,
  } satisfies Record<ObjectMethod, 0>),
);

/** A store call's outcome over RPC. Error subclasses arrive as plain Errors, so a commit conflict travels as data. */
export type StoreCallResult = { ok: true; value: unknown } | { ok: false; conflict: string };

/** One call of a batch (StateObject.invokeAll), and its outcome: any failure travels as data, each call's own. */
export type StoreCall = [method: ObjectMethod, args: unknown[]];
export type BatchedCallResult = StoreCallResult | { ok: false; error: string };

/** A Durable Object holding the state of one user, or the watch leases of one tenant. */
export class StateObject extends DurableObject {
  private readonly store: SqliteStateStore;

  constructor(ctx: DurableObjectState, env: Cloudflare.Env) {
    super(ctx, env);
    // Migrations are synchronous, and the object takes no request before its constructor has returned.
    this.store = new SqliteStateStore(durableObjectSqlDriver(ctx.storage));
  }

  async invoke(method: ObjectMethod, args: unknown[]): Promise<StoreCallResult> {
    if (!STORE_METHODS.has(method)) throw new TypeError(`not a StateStore method: ${String(method)}`);
    const fn = this.store[method] as (...args: unknown[]) => unknown;
    try {
      return { ok: true, value: await fn.apply(this.store, args) };
    } catch (err) {
      if (err instanceof StateConflictError) return { ok: false, conflict: err.message };
      throw err;
    }
  }

  /** The calls one request issued together, in one RPC: run in the order given, each with its own outcome. */
  async invokeAll(calls: StoreCall[]): Promise<BatchedCallResult[]> {
    const results: BatchedCallResult[] = [];
    for (const [method, args] of calls) {
      try {
        results.push(await this.invoke(method, args));
      } catch (err) {
        results.push({ ok: false, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
      }
    }
    return results;
  }
}

/** The SqlDriver over Durable Object storage. Blobs come back as ArrayBuffers; the store speaks Uint8Array. */
function durableObjectSqlDriver(storage: DurableObjectStorage): SqlDriver {
  return {
    query(sql, ...params) {
      return storage.sql
        .exec(sql, ...params)
        .toArray()
        .map(fromSqlite);
    },
    run(sql, ...params) {
      const cursor = storage.sql.exec(sql, ...params);
      // rowsWritten counts index entries too (an INSERT into leases writes 2), but it is zero exactly when the
      // statement changed nothing, which is all the compare-and-set needs.
      return cursor.rowsWritten;
    },
    transaction(fn) {
      return storage.transactionSync(fn);
    },
  };
}

function fromSqlite(row: Record<string, SqlStorageValue>): SqlRow {
  const out: SqlRow = {};
  for (const [k, v] of Object.entries(row)) out[k] = v instanceof ArrayBuffer ? new Uint8Array(v) : v;
  return out;
}

/** The StateStore for a Worker: each call goes to the object that holds what it touches. */
export function durableObjectStateStore(namespace: DurableObjectNamespace<StateObject>): StateStore {
  return new DurableObjectStateStore(namespace);
}

type Result<M extends StoreMethod> = Promise<Awaited<ReturnType<StateStore[M]>>>;

/** A call waiting for its object's batch (DurableObjectStateStore.call). */
interface QueuedCall {
  call: StoreCall;
  resolve(result: BatchedCallResult): void;
  reject(err: unknown): void;
}

class DurableObjectStateStore implements StateStore {
  /** The calls of this turn, per object: sent as one RPC (invokeAll) when there are several. */
  private queued = new Map<string, QueuedCall[]>();

  constructor(private readonly namespace: DurableObjectNamespace<StateObject>) {}

  getDevice(d: DeviceScope) {
    return this.onUser(d, 'getDevice', d);
  }
  async updateDevice(d: DeviceScope, update: DeviceUpdate) {
    const record = await this.onUser(d, 'updateDevice', d, update);
    // A new device has firstSeen = lastSeen; then it goes into the tenant's index. A later update that happens to
    // keep them equal writes the index again, which changes nothing.
    if (record.firstSeen === record.lastSeen) await this.index('indexDevice', d);
    return record;
  }
  listDevices(u: UserScope) {
    return this.onUser(u, 'listDevices', u);
  }
  async deleteDevice(d: DeviceScope) {
    await this.onUser(d, 'deleteDevice', d);
    await this.index('unindexDevice', d);
  }

  getUserSettings(u: UserScope) {
    return this.onUser(u, 'getUserSettings', u);
  }
  putUserSettings(u: UserScope, settings: UserSettings) {
    return this.onUser(u, 'putUserSettings', u, settings);
  }

  getMailFlags(u: UserScope, folder: string) {
    return this.onUser(u, 'getMailFlags', u, folder);
  }
  putMailFlags(u: UserScope, folder: string, changes: Record<string, FlagDetails | null>) {
    return this.onUser(u, 'putMailFlags', u, folder, changes);
  }
  listConversationRules(u: UserScope) {
    return this.onUser(u, 'listConversationRules', u);
  }
  putConversationRule(u: UserScope, rule: ConversationRule) {
    return this.onUser(u, 'putConversationRule', u, rule);
  }
  deleteConversationRule(u: UserScope, conversationId: string) {
    return this.onUser(u, 'deleteConversationRule', u, conversationId);
  }

  getHierarchy(d: DeviceScope) {
    return this.onUser(d, 'getHierarchy', d);
  }
  commitHierarchy(d: DeviceScope, precondition: Precondition, next: KeyedState<HierarchyState>) {
    return this.onUser(d, 'commitHierarchy', d, precondition, next);
  }

  getCollection(d: DeviceScope, collectionId: string) {
    return this.onUser(d, 'getCollection', d, collectionId);
  }
  commitCollection(
    d: DeviceScope,
    collectionId: string,
    precondition: Precondition,
    next: KeyedState<CollectionState>,
  ) {
    return this.onUser(d, 'commitCollection', d, collectionId, precondition, next);
  }
  listCollections(d: DeviceScope) {
    return this.onUser(d, 'listCollections', d);
  }
  deleteCollection(d: DeviceScope, collectionId: string) {
    return this.onUser(d, 'deleteCollection', d, collectionId);
  }

  getPingCache(d: DeviceScope) {
    return this.onUser(d, 'getPingCache', d);
  }
  putPingCache(d: DeviceScope, cache: PingCache) {
    return this.onUser(d, 'putPingCache', d, cache);
  }
  getSyncRequestCache(d: DeviceScope) {
    return this.onUser(d, 'getSyncRequestCache', d);
  }
  putSyncRequestCache(d: DeviceScope, cache: SyncRequestCache) {
    return this.onUser(d, 'putSyncRequestCache', d, cache);
  }

  putFeedEntry(u: UserScope, entry: FeedEntry) {
    return this.onUser(u, 'putFeedEntry', u, entry);
  }
  readFeed(u: UserScope) {
    return this.onUser(u, 'readFeed', u);
  }

  claimMarker(d: DeviceScope, name: string, marker: Marker) {
    return this.onUser(d, 'claimMarker', d, name, marker);
  }
  putMarker(d: DeviceScope, name: string, marker: Marker) {
    return this.onUser(d, 'putMarker', d, name, marker);
  }
  deleteMarker(d: DeviceScope, name: string) {
    return this.onUser(d, 'deleteMarker', d, name);
  }

  putLease(lease: WatchLease) {
    return this.onTenant(lease.tenant, 'putLease', lease);
  }
  getLease(u: UserScope) {
    return this.onTenant(u.tenant, 'getLease', u);
  }
  listLeases(tenant: string, shard: number, now?: number) {
    return this.onTenant(tenant, 'listLeases', tenant, shard, now);
  }
  deleteLease(u: UserScope) {
    return this.onTenant(u.tenant, 'deleteLease', u);
  }

  listTenantDevices(tenant: string) {
    return this.onTenant(tenant, 'listTenantDevices', tenant);
  }
  getAccessRules(tenant: string) {
    return this.onTenant(tenant, 'getAccessRules', tenant);
  }
  putAccessRules(tenant: string, rules: AccessRules) {
    return this.onTenant(tenant, 'putAccessRules', tenant, rules);
  }
  addCommandStats(tenant: string, stats: CommandStats) {
    return this.onTenant(tenant, 'addCommandStats', tenant, stats);
  }
  readCommandStats(tenant: string, sinceMinute: number) {
    return this.onTenant(tenant, 'readCommandStats', tenant, sinceMinute);
  }
  addAuthFailure(tenant: string, key: string, windowMs: number) {
    return this.onTenant(tenant, 'addAuthFailure', tenant, key, windowMs);
  }
  getAuthFailures(tenant: string, key: string) {
    return this.onTenant(tenant, 'getAuthFailures', tenant, key);
  }
  clearAuthFailures(tenant: string, key: string) {
    return this.onTenant(tenant, 'clearAuthFailures', tenant, key);
  }
  refundAuthFailure(tenant: string, key: string) {
    return this.onTenant(tenant, 'refundAuthFailure', tenant, key);
  }
  putKnownLogin(tenant: string, key: string, until: number) {
    return this.onTenant(tenant, 'putKnownLogin', tenant, key, until);
  }
  getKnownLogin(tenant: string, key: string) {
    return this.onTenant(tenant, 'getKnownLogin', tenant, key);
  }

  putCaptureRule(tenant: string, rule: CaptureRule) {
    return this.onTenant(tenant, 'putCaptureRule', tenant, rule);
  }
  listCaptureRules(tenant: string) {
    return this.onTenant(tenant, 'listCaptureRules', tenant);
  }
  deleteCaptureRule(tenant: string, user: string, deviceId: string | undefined) {
    return this.onTenant(tenant, 'deleteCaptureRule', tenant, user, deviceId);
  }
  addCaptureRecord(d: DeviceScope, record: CaptureRecord) {
    return this.onUser(d, 'addCaptureRecord', d, record);
  }
  listCaptureRecords(d: DeviceScope) {
    return this.onUser(d, 'listCaptureRecords', d);
  }
  deleteCaptureRecords(d: DeviceScope) {
    return this.onUser(d, 'deleteCaptureRecords', d);
  }

  private onUser<M extends StoreMethod>(scope: UserScope, method: M, ...args: Parameters<StateStore[M]>): Result<M> {
    return this.invoke(userObjectName(scope), method, args);
  }

  private onTenant<M extends StoreMethod>(tenant: string, method: M, ...args: Parameters<StateStore[M]>): Result<M> {
    return this.invoke(tenantObjectName(tenant), method, args);
  }

  private async invoke<M extends StoreMethod>(objectName: string, method: M, args: unknown[]): Result<M> {
    return (await this.call(objectName, method, args)) as Awaited<ReturnType<StateStore[M]>>;
  }

  /** The tenant's device index (see IndexMethod). */
  private async index(method: IndexMethod, d: DeviceScope): Promise<void> {
    await this.call(tenantObjectName(d.tenant), method, [d]);
  }

  /**
   * The calls a request issues in one turn to one object (a Sync's device, hierarchy, collection, caches and feed,
   * state/read-ahead.ts) go out as one RPC, not one each: one round trip to the object and one request billed. A lone
   * call is a plain `invoke`.
   */
  private async call(objectName: string, method: ObjectMethod, args: unknown[]): Promise<unknown> {
    const result = await new Promise<BatchedCallResult>((resolve, reject) => {
      if (this.queued.size === 0) void nextMacrotask().then(() => this.flush());
      const calls = this.queued.get(objectName) ?? [];
      calls.push({ call: [method, args], resolve, reject });
      this.queued.set(objectName, calls);
    });
    if (result.ok) return result.value;
    if ('conflict' in result) throw new StateConflictError(result.conflict);
    throw new Error(result.error);
  }

  private flush(): void {
    const queued = this.queued;
    this.queued = new Map();
    for (const [objectName, calls] of queued) {
      const stub = this.namespace.get(this.namespace.idFromName(objectName));
      if (calls.length === 1) {
        const [{ call, resolve, reject }] = calls as [QueuedCall];
        // Cast: the RPC stub types drop a field typed `unknown`; the value is what the store's method returned.
        stub.invoke(...call).then((result) => resolve(result as StoreCallResult), reject);
        continue;
      }
      // Cast as for invoke: the stub's types drop the results' `unknown` values.
      (stub.invokeAll(calls.map((c) => c.call)) as unknown as Promise<BatchedCallResult[]>).then(
        (results) => {
          for (const [i, c] of calls.entries()) c.resolve(results[i] as BatchedCallResult);
        },
        (err: unknown) => {
          for (const c of calls) c.reject(err);
        },
      );
    }
  }
}

/** Object names: JSON arrays, so that no tenant or user id, whatever it contains, can spell another's name. */
export function userObjectName(scope: UserScope): string {
  return JSON.stringify(['user', scope.tenant, scope.user]);
}

export function tenantObjectName(tenant: string): string {
  return JSON.stringify(['tenant', tenant]);
}
