/**
 * The StateStore on one DynamoDB table (the AWS runtime). Compare-and-set is a conditional PutItem on one item, the
 * "head" of a hierarchy or collection; there are no transactions (dynalite, the emulator the tests run on, has none).
 * Keys: src/state/dynamodb/keys.ts; states and replays over the item limit: src/state/dynamodb/chunks.ts.
 *
 * Expiry: `expiresAt`/`until`/`replayExpiresAt` keep the exact epoch ms and decide what reads see; `ttl` (epoch
 * seconds, rounded up so it never precedes the exact expiry) lets DynamoDB delete the item some time later.
 */
import {
  BatchWriteItemCommand,
  ConditionalCheckFailedException,
  CreateTableCommand,
  DeleteItemCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  PutItemCommand,
  QueryCommand,
  ResourceInUseException,
  ResourceNotFoundException,
  UpdateItemCommand,
  UpdateTimeToLiveCommand,
  type AttributeValue,
  type DynamoDBClient,
  type QueryCommandInput,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeRecord, encodeRecord } from '../codec.ts';
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
  type DeviceRecord,
  type DeviceScope,
  type DeviceUpdate,
  type ConversationRule,
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
} from '../types.ts';
import { BATCH_RETRIES, BATCH_RETRY_BASE_MS, BatchedReads } from './batched-reads.ts';
import { blobReference, CHUNK_BYTES, chunkKeysOf, readChunked } from './chunks.ts';
import {
  authFailuresKey,
  knownLoginKey,
  CAPTURE_RECORD_PREFIX,
  capturePartition,
  captureRecordKey,
  captureRuleKey,
  collectionKey,
  CONVERSATION_RULE_PREFIX,
  conversationRuleKey,
  deviceIndexKey,
  deviceKey,
  devicePartition,
  isLive,
  keyOf,
  keyPart,
  leaseKey,
  leasePartition,
  mailFlagKey,
  mailFlagPrefix,
  markerKey,
  plainBytes,
  readNumber,
  readOptionalNumber,
  readString,
  statsKey,
  toKeyItem,
  ttlOf,
  TTL_ATTRIBUTE,
  userPartition,
  type Item,
  type Key,
} from './keys.ts';

/** BatchWriteItem takes at most 25 requests. */
const BATCH_WRITE_LIMIT = 25;

/** How often a read starts over when a head moved on (and its chunks went) between reading the head and the chunks. */
const READ_ATTEMPTS = 3;

export interface DynamoDbStateStoreOptions {
  client: DynamoDBClient;
  /** The table name (DYNAMODB_TABLE). */
  table: string;
}

export class DynamoDbStateStore implements StateStore {
  private readonly client: DynamoDBClient;
  private readonly table: string;
  private readonly reads: BatchedReads;

  constructor(options: DynamoDbStateStoreOptions) {
    this.client = options.client;
    this.table = options.table;
    this.reads = new BatchedReads(options.client, options.table);
  }

  // Devices.

  async getDevice(d: DeviceScope): Promise<DeviceRecord | undefined> {
    const item = await this.getItem(deviceKey(d));
    return item && toDeviceRecord(item);
  }

  async updateDevice(d: DeviceScope, update: DeviceUpdate): Promise<DeviceRecord> {
    // One SET per field, so that concurrent updates of different fields do not undo each other. What a new device
    // needs besides the given fields is set only if absent.
    const now = Date.now();
    const changes = new UpdateBuilder();
    changes.set('deviceId', d.deviceId);
    for (const [field, value] of Object.entries(update) as [string, unknown][]) {
      if (value === undefined || field === 'deviceId' || field === 'firstSeen') continue;
      changes.set(field, value);
    }
    changes.setIfAbsent('firstSeen', update.lastSeen ?? now);
    if (update.lastSeen === undefined) changes.setIfAbsent('lastSeen', now);
    if (update.provisioning === undefined) changes.setIfAbsent('provisioning', 'none');
    if (update.wipe === undefined) changes.setIfAbsent('wipe', 'none');

    const result = await this.client.send(
      new UpdateItemCommand({
        TableName: this.table,
        Key: toKeyItem(deviceKey(d)),
        ...changes.build(),
        ReturnValues: 'ALL_NEW',
      }),
    );
    const record = toDeviceRecord(result.Attributes ?? {});
    // A new device has firstSeen = lastSeen: it goes into the tenant's index (a rare repeat rewrites the same item).
    if (record.firstSeen === record.lastSeen) {
      const index: Item = { ...toKeyItem(deviceIndexKey(d)), user: { S: d.user }, deviceId: { S: d.deviceId } };
      await this.client.send(new PutItemCommand({ TableName: this.table, Item: index }));
    }
    return record;
  }

  async listDevices(u: UserScope): Promise<DeviceRecord[]> {
    const items = await this.queryAll({ pk: userPartition(u), skPrefix: 'DEVICE#' });
    return items.map(toDeviceRecord);
  }

  async deleteDevice(d: DeviceScope): Promise<void> {
    // The device record last: while any of its state is left, the device still shows, so a failed delete is visible
    // and can be repeated.
    const stateKeys = (await this.queryAll({ pk: devicePartition(d), keysOnly: true })).map(keyOf);
    await this.batchDelete(stateKeys);
    await this.client.send(new DeleteItemCommand({ TableName: this.table, Key: toKeyItem(deviceKey(d)) }));
    await this.client.send(new DeleteItemCommand({ TableName: this.table, Key: toKeyItem(deviceIndexKey(d)) }));
  }

  // Per-user settings: one item beside the user's devices.

  async getUserSettings(u: UserScope): Promise<UserSettings | undefined> {
    const data = (await this.getItem({ pk: userPartition(u), sk: 'SETTINGS' }))?.data?.B;
    return data ? decodeRecord<UserSettings>(plainBytes(data)) : undefined;
  }

  async putUserSettings(u: UserScope, settings: UserSettings): Promise<void> {
    const item: Item = {
      pk: { S: userPartition(u) },
      sk: { S: 'SETTINGS' },
      data: { B: await encodeRecord(settings) },
    };
    await this.client.send(new PutItemCommand({ TableName: this.table, Item: item }));
  }

  // Per user and message: flag details, conversation rules; items of the user's partition.

  async getMailFlags(u: UserScope, folder: string): Promise<Record<string, FlagDetails>> {
    const prefix = mailFlagPrefix(folder);
    const items = await this.queryAll({ pk: userPartition(u), skPrefix: prefix });
    return Object.fromEntries(
      items.map((item) => [readString(item, 'uid'), JSON.parse(readString(item, 'data')) as FlagDetails]),
    );
  }

  async putMailFlags(u: UserScope, folder: string, changes: Record<string, FlagDetails | null>): Promise<void> {
    await this.batchWrite(
      Object.entries(changes).map(([uid, details]): WriteRequest => {
        const key = mailFlagKey(u, folder, uid);
        return details === null
          ? { DeleteRequest: { Key: toKeyItem(key) } }
          : { PutRequest: { Item: { ...toKeyItem(key), uid: { S: uid }, data: { S: JSON.stringify(details) } } } };
      }),
    );
  }

  async listConversationRules(u: UserScope): Promise<ConversationRule[]> {
    const now = Date.now();
    const items = await this.queryAll({ pk: userPartition(u), skPrefix: CONVERSATION_RULE_PREFIX });
    return items
      .filter((item) => isLive(readNumber(item, 'until'), now))
      .map((item) => JSON.parse(readString(item, 'data')) as ConversationRule)
      .sort((a, b) => a.conversationId.localeCompare(b.conversationId));
  }

  async putConversationRule(u: UserScope, rule: ConversationRule): Promise<void> {
    const item: Item = {
      ...toKeyItem(conversationRuleKey(u, rule.conversationId)),
      data: { S: JSON.stringify(rule) },
      until: { N: String(rule.until) },
      [TTL_ATTRIBUTE]: { N: String(ttlOf(rule.until)) },
    };
    await this.client.send(new PutItemCommand({ TableName: this.table, Item: item }));
  }

  async deleteConversationRule(u: UserScope, conversationId: string): Promise<void> {
    await this.client.send(
      new DeleteItemCommand({ TableName: this.table, Key: toKeyItem(conversationRuleKey(u, conversationId)) }),
    );
  }

  // Folder hierarchy and collections: a head item each.

  getHierarchy(d: DeviceScope): Promise<KeyedState<HierarchyState> | undefined> {
    return this.readSyncState<HierarchyState>({ pk: devicePartition(d), sk: 'HIERARCHY' });
  }

  commitHierarchy(d: DeviceScope, precondition: Precondition, next: KeyedState<HierarchyState>): Promise<void> {
    return this.commitSyncState({ pk: devicePartition(d), sk: 'HIERARCHY' }, {}, precondition, next);
  }

  getCollection(d: DeviceScope, collectionId: string): Promise<KeyedState<CollectionState> | undefined> {
    return this.readSyncState<CollectionState>(collectionKey(d, collectionId));
  }

  commitCollection(
    d: DeviceScope,
    collectionId: string,
    precondition: Precondition,
    next: KeyedState<CollectionState>,
  ): Promise<void> {
    return this.commitSyncState(
      collectionKey(d, collectionId),
      { collectionId: { S: collectionId } },
      precondition,
      next,
    );
  }

  async listCollections(d: DeviceScope): Promise<string[]> {
    const heads = await this.queryAll({
      pk: devicePartition(d),
      skPrefix: 'COLLECTION#',
      attributes: ['collectionId'],
    });
    return heads.map((head) => readString(head, 'collectionId'));
  }

  async deleteCollection(d: DeviceScope, collectionId: string): Promise<void> {
    const key = collectionKey(d, collectionId);
    const result = await this.client.send(
      new DeleteItemCommand({ TableName: this.table, Key: toKeyItem(key), ReturnValues: 'ALL_OLD' }),
    );
    if (result.Attributes) await this.deleteQuietly(chunkKeysOf(key.pk, result.Attributes));
  }

  private async readSyncState<S>(key: Key): Promise<KeyedState<S> | undefined> {
    for (let attempt = 1; ; attempt++) {
      const head = await this.getItem(key);
      if (!head) return undefined;
      const lastAttempt = attempt >= READ_ATTEMPTS;

      const stateBytes = await readChunked(key.pk, head, 'state', (k) => this.getItem(k));
      if (!stateBytes) {
        // The head was replaced after we read it, and its chunks deleted: read the new one.
        if (lastAttempt) throw new Error(`state ${key.sk}: chunks of the stored state are missing`);
        continue;
      }

      let replay: Replay | undefined;
      const replayExpiresAt = readOptionalNumber(head, 'replayExpiresAt');
      if (head.replayKey?.S !== undefined && replayExpiresAt !== undefined && replayExpiresAt > Date.now()) {
        const response = await readChunked(key.pk, head, 'replay', (k) => this.getItem(k));
        if (response) replay = { syncKey: head.replayKey.S, response, expiresAt: replayExpiresAt };
        // A replay is a convenience (without it the client resyncs), so at the end missing chunks mean no replay.
        else if (!lastAttempt) continue;
      }

      const result: KeyedState<S> = { syncKey: readString(head, 'syncKey'), state: await decodeRecord<S>(stateBytes) };
      if (replay) result.replay = replay;
      return result;
    }
  }

  private async commitSyncState<S>(
    key: Key,
    extra: Item,
    precondition: Precondition,
    next: KeyedState<S>,
  ): Promise<void> {
    const head: Item = { ...toKeyItem(key), ...extra, syncKey: { S: next.syncKey } };
    const chunks: Item[] = [];

    const state = await encodeRecord(next.state);
    let inlineBudget = CHUNK_BYTES;
    if (state.length <= inlineBudget) {
      head.state = { B: state };
      inlineBudget -= state.length;
    } else {
      Object.assign(head, blobReference('state', key.pk, state, chunks));
    }

    // An expired replay would never be read: it is not stored.
    const replay = next.replay && next.replay.expiresAt > Date.now() ? next.replay : undefined;
    if (replay) {
      head.replayKey = { S: replay.syncKey };
      head.replayExpiresAt = { N: String(replay.expiresAt) };
      if (replay.response.length <= inlineBudget) head.replay = { B: replay.response };
      else Object.assign(head, blobReference('replay', key.pk, replay.response, chunks, ttlOf(replay.expiresAt)));
    }

    const chunkKeys = chunks.map(keyOf);
    try {
      await this.batchWrite(chunks.map((item) => ({ PutRequest: { Item: item } })));
    } catch (err) {
      await this.deleteQuietly(chunkKeys);
      throw err;
    }

    let previous: Item | undefined;
    try {
      const result = await this.client.send(
        new PutItemCommand({
          TableName: this.table,
          Item: head,
          ...preconditionExpression(precondition),
          ReturnValues: 'ALL_OLD',
        }),
      );
      previous = result.Attributes;
    } catch (err) {
      await this.deleteQuietly(chunkKeys);
      if (err instanceof ConditionalCheckFailedException) {
        throw new StateConflictError(`${key.sk}: the stored sync key is not the expected one`);
      }
      throw err;
    }
    if (previous) await this.deleteQuietly(chunkKeysOf(key.pk, previous));
  }

  // Caches.

  getPingCache(d: DeviceScope): Promise<PingCache | undefined> {
    return this.readCache<PingCache>({ pk: devicePartition(d), sk: 'CACHE#PING' });
  }

  putPingCache(d: DeviceScope, cache: PingCache): Promise<void> {
    return this.writeCache({ pk: devicePartition(d), sk: 'CACHE#PING' }, cache);
  }

  getSyncRequestCache(d: DeviceScope): Promise<SyncRequestCache | undefined> {
    return this.readCache<SyncRequestCache>({ pk: devicePartition(d), sk: 'CACHE#SYNC' });
  }

  putSyncRequestCache(d: DeviceScope, cache: SyncRequestCache): Promise<void> {
    return this.writeCache({ pk: devicePartition(d), sk: 'CACHE#SYNC' }, cache);
  }

  private async readCache<T>(key: Key): Promise<T | undefined> {
    const item = await this.getItem(key);
    if (!item || !isLive(readNumber(item, 'expiresAt'))) return undefined;
    const data = item.data?.B;
    return data ? decodeRecord<T>(plainBytes(data)) : undefined;
  }

  private async writeCache(key: Key, cache: { expiresAt: number }): Promise<void> {
    const item: Item = {
      ...toKeyItem(key),
      data: { B: await encodeRecord(cache) },
      expiresAt: { N: String(cache.expiresAt) },
      [TTL_ATTRIBUTE]: { N: String(ttlOf(cache.expiresAt)) },
    };
    await this.client.send(new PutItemCommand({ TableName: this.table, Item: item }));
  }

  // Change feed.

  async putFeedEntry(u: UserScope, entry: FeedEntry): Promise<void> {
    const item: Item = {
      pk: { S: userPartition(u) },
      sk: { S: `FEED#${keyPart(entry.folder)}` },
      folder: { S: entry.folder },
      marker: { S: entry.marker },
      changedAt: { N: String(entry.changedAt) },
      expiresAt: { N: String(entry.expiresAt) },
      [TTL_ATTRIBUTE]: { N: String(ttlOf(entry.expiresAt)) },
    };
    await this.client.send(new PutItemCommand({ TableName: this.table, Item: item }));
  }

  async readFeed(u: UserScope): Promise<FeedEntry[]> {
    const now = Date.now();
    const items = await this.queryAll({ pk: userPartition(u), skPrefix: 'FEED#' });
    return items
      .filter((item) => isLive(readNumber(item, 'expiresAt'), now))
      .map((item) => ({
        folder: readString(item, 'folder'),
        marker: readString(item, 'marker'),
        changedAt: readNumber(item, 'changedAt'),
        expiresAt: readNumber(item, 'expiresAt'),
      }));
  }

  // Markers: one item each under the device partition (so deleteDevice removes them), expiring like the caches.

  async claimMarker(d: DeviceScope, name: string, marker: Marker): Promise<Marker | undefined> {
    const key = markerKey(d, name);
    // A live marker that expires between the failed put and the read reads as absent: try again.
    for (let attempt = 0; attempt < 3; attempt++) {
      const stored = await this.putIf(
        markerItem(key, marker),
        'attribute_not_exists(pk) OR #expiresAt <= :now',
        { '#expiresAt': 'expiresAt' },
        { ':now': { N: String(Date.now()) } },
      );
      if (stored) return undefined;
      const item = await this.getItem(key);
      if (item && isLive(readNumber(item, 'expiresAt')))
        return { value: readString(item, 'value'), expiresAt: readNumber(item, 'expiresAt') };
    }
    throw new Error(`marker ${name}: too many concurrent writers`);
  }

  async putMarker(d: DeviceScope, name: string, marker: Marker): Promise<void> {
    await this.client.send(new PutItemCommand({ TableName: this.table, Item: markerItem(markerKey(d, name), marker) }));
  }

  async deleteMarker(d: DeviceScope, name: string): Promise<void> {
    await this.client.send(new DeleteItemCommand({ TableName: this.table, Key: toKeyItem(markerKey(d, name)) }));
  }

  // Watch leases.

  async putLease(lease: WatchLease): Promise<void> {
    // `until` only grows: there is no max() in an update expression, so each case is a conditional write of its own.
    // The common one (a Ping extends a live lease) comes first; a lost race with another writer starts over.
    const key = leaseKey(lease.tenant, lease.user);
    const newUntil: AttributeValue = { N: String(lease.until) };
    for (let attempt = 0; attempt < 5; attempt++) {
      const now: AttributeValue = { N: String(Date.now()) };

      // A live lease that ends earlier: extend it.
      const extend = new UpdateBuilder();
      extend.set('until', lease.until);
      extend.set(TTL_ATTRIBUTE, ttlOf(lease.until));
      if (lease.credential) extend.set('credential', lease.credential);
      if (
        await this.updateIf(key, extend, '#until > :now AND #until < :newUntil', { ':now': now, ':newUntil': newUntil })
      )
        return;

      // None, or an expired one (which reads as absent, credential and all): write a new lease.
      const item: Item = {
        ...toKeyItem(key),
        tenant: { S: lease.tenant },
        user: { S: lease.user },
        until: newUntil,
        [TTL_ATTRIBUTE]: { N: String(ttlOf(lease.until)) },
      };
      if (lease.credential) item.credential = { B: lease.credential };
      if (await this.putIf(item, 'attribute_not_exists(pk) OR #until <= :now', { '#until': 'until' }, { ':now': now }))
        return;

      // A live lease that ends as late or later: keep its end, replace the credential. Without a credential the
      // write only confirms that this case still holds (rewriting `user` with itself).
      const keep = new UpdateBuilder();
      if (lease.credential) keep.set('credential', lease.credential);
      else keep.set('user', lease.user);
      if (
        await this.updateIf(key, keep, '#until > :now AND #until >= :newUntil', { ':now': now, ':newUntil': newUntil })
      )
        return;
    }
    throw new Error(`lease of ${lease.user}: too many concurrent writers`);
  }

  async getLease(u: UserScope): Promise<WatchLease | undefined> {
    const item = await this.getItem(leaseKey(u.tenant, u.user));
    return item && isLive(readNumber(item, 'until')) ? toLease(item) : undefined;
  }

  async listLeases(tenant: string, shard: number, now = Date.now()): Promise<WatchLease[]> {
    const items = await this.queryAll({ pk: leasePartition(tenant, shard) });
    return items.filter((item) => isLive(readNumber(item, 'until'), now)).map(toLease);
  }

  async deleteLease(u: UserScope): Promise<void> {
    await this.client.send(
      new DeleteItemCommand({ TableName: this.table, Key: toKeyItem(leaseKey(u.tenant, u.user)) }),
    );
  }

  // Tenant-wide records.

  async listTenantDevices(tenant: string): Promise<DeviceScope[]> {
    const items = await this.queryAll({ pk: `${keyPart(tenant)}#DEVICES` });
    return items.map((item) => ({ tenant, user: readString(item, 'user'), deviceId: readString(item, 'deviceId') }));
  }

  async getAccessRules(tenant: string): Promise<AccessRules | undefined> {
    const data = (await this.getItem({ pk: `${keyPart(tenant)}#TENANT`, sk: 'ACCESS_RULES' }))?.data?.S;
    return data === undefined ? undefined : (JSON.parse(data) as AccessRules);
  }

  async putAccessRules(tenant: string, rules: AccessRules): Promise<void> {
    const item: Item = {
      pk: { S: `${keyPart(tenant)}#TENANT` },
      sk: { S: 'ACCESS_RULES' },
      data: { S: JSON.stringify(rules) },
    };
    await this.client.send(new PutItemCommand({ TableName: this.table, Item: item }));
  }

  async addCommandStats(tenant: string, stats: CommandStats): Promise<void> {
    const key = statsKey(tenant, stats.minute, stats.command);
    const add = {
      ':requests': { N: String(stats.requests) },
      ':errors': { N: String(stats.errors) },
      ':totalMs': { N: String(Math.round(stats.totalMs)) },
    };
    const ttl = { N: String(ttlOf((stats.minute + COMMAND_STATS_RETENTION_MINUTES) * 60_000)) };
    await this.client.send(
      new UpdateItemCommand({
        TableName: this.table,
        Key: toKeyItem(key),
        UpdateExpression:
          'ADD requests :requests, errors :errors, totalMs :totalMs SET #minute = :minute, command = :command, #ttl = :ttl',
        ExpressionAttributeNames: { '#minute': 'minute', '#ttl': TTL_ATTRIBUTE },
        ExpressionAttributeValues: {
          ...add,
          ':minute': { N: String(stats.minute) },
          ':command': { S: stats.command },
          ':ttl': ttl,
        },
      }),
    );
    // No max() in an update expression: raise maxMs only where it is lower (a failed condition is the common case).
    const maxMs: AttributeValue = { N: String(Math.round(stats.maxMs)) };
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: toKeyItem(key),
          UpdateExpression: 'SET maxMs = :maxMs',
          ConditionExpression: 'attribute_not_exists(maxMs) OR maxMs < :maxMs',
          ExpressionAttributeValues: { ':maxMs': maxMs },
        }),
      );
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    }
  }

  async readCommandStats(tenant: string, sinceMinute: number): Promise<CommandStats[]> {
    const items = await this.queryAll({
      pk: `${keyPart(tenant)}#STATS`,
      skFrom: String(Math.max(0, sinceMinute)).padStart(10, '0'),
    });
    return items
      .map((item) => ({
        minute: readNumber(item, 'minute'),
        command: readString(item, 'command'),
        requests: readOptionalNumber(item, 'requests') ?? 0,
        errors: readOptionalNumber(item, 'errors') ?? 0,
        totalMs: readOptionalNumber(item, 'totalMs') ?? 0,
        maxMs: readOptionalNumber(item, 'maxMs') ?? 0,
      }))
      .filter((s) => s.minute >= sinceMinute)
      .sort((a, b) => a.minute - b.minute || a.command.localeCompare(b.command));
  }

  // Failed logins: one item per tenant and key, counted with ADD while its window lasts, replaced once it has ended.

  async addAuthFailure(tenant: string, key: string, windowMs: number): Promise<AuthFailures> {
    const itemKey = toKeyItem(authFailuresKey(tenant, key));
    for (let attempt = 0; attempt < 3; attempt++) {
      const now = Date.now();
      try {
        const result = await this.client.send(
          new UpdateItemCommand({
            TableName: this.table,
            Key: itemKey,
            UpdateExpression: 'ADD #count :one',
            ConditionExpression: 'attribute_exists(pk) AND resetAt > :now',
            ExpressionAttributeNames: { '#count': 'count' },
            ExpressionAttributeValues: { ':one': { N: '1' }, ':now': { N: String(now) } },
            ReturnValues: 'ALL_NEW',
          }),
        );
        return { count: readNumber(result.Attributes!, 'count'), resetAt: readNumber(result.Attributes!, 'resetAt') };
      } catch (err) {
        if (!(err instanceof ConditionalCheckFailedException)) throw err;
      }
      // No live window: start one, unless a concurrent failure just did (then count into it).
      const resetAt = now + windowMs;
      const item: Item = {
        ...itemKey,
        count: { N: '1' },
        resetAt: { N: String(resetAt) },
        [TTL_ATTRIBUTE]: { N: String(ttlOf(resetAt)) },
      };
      if (
        await this.putIf(
          item,
          'attribute_not_exists(pk) OR #resetAt <= :now',
          { '#resetAt': 'resetAt' },
          { ':now': { N: String(now) } },
        )
      )
        return { count: 1, resetAt };
    }
    throw new Error('failed-login counter: too many concurrent writers');
  }

  async getAuthFailures(tenant: string, key: string): Promise<AuthFailures | undefined> {
    const item = await this.getItem(authFailuresKey(tenant, key));
    if (!item || !isLive(readNumber(item, 'resetAt'))) return undefined;
    return { count: readNumber(item, 'count'), resetAt: readNumber(item, 'resetAt') };
  }

  async clearAuthFailures(tenant: string, key: string): Promise<void> {
    await this.client.send(
      new DeleteItemCommand({ TableName: this.table, Key: toKeyItem(authFailuresKey(tenant, key)) }),
    );
  }

  async refundAuthFailure(tenant: string, key: string): Promise<void> {
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: toKeyItem(authFailuresKey(tenant, key)),
          UpdateExpression: 'ADD #count :minusOne',
          ConditionExpression: 'attribute_exists(pk) AND resetAt > :now AND #count > :zero',
          ExpressionAttributeNames: { '#count': 'count' },
          ExpressionAttributeValues: {
            ':minusOne': { N: '-1' },
            ':now': { N: String(Date.now()) },
            ':zero': { N: '0' },
          },
        }),
      );
    } catch (err) {
      // Nothing live to refund: the window ended, or the key was cleared.
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    }
  }

  // Known sign-ins: one item per tenant and key, replaced on each refresh.

  async putKnownLogin(tenant: string, key: string, until: number): Promise<void> {
    await this.client.send(
      new PutItemCommand({
        TableName: this.table,
        Item: {
          ...toKeyItem(knownLoginKey(tenant, key)),
          until: { N: String(until) },
          [TTL_ATTRIBUTE]: { N: String(ttlOf(until)) },
        },
      }),
    );
  }

  async getKnownLogin(tenant: string, key: string): Promise<number | undefined> {
    const item = await this.getItem(knownLoginKey(tenant, key));
    if (!item) return undefined;
    const until = readNumber(item, 'until');
    return isLive(until) ? until : undefined;
  }

  // Protocol capture: rules in the tenant's CAPTURES partition, records under their device's partition.

  async putCaptureRule(tenant: string, rule: CaptureRule): Promise<void> {
    const item: Item = {
      ...toKeyItem(captureRuleKey(tenant, rule.user, rule.deviceId)),
      data: { S: JSON.stringify(rule) },
      until: { N: String(rule.until) },
      [TTL_ATTRIBUTE]: { N: String(ttlOf(rule.until)) },
    };
    await this.client.send(new PutItemCommand({ TableName: this.table, Item: item }));
  }

  async listCaptureRules(tenant: string): Promise<CaptureRule[]> {
    const now = Date.now();
    const items = await this.queryAll({ pk: capturePartition(tenant) });
    return items
      .filter((item) => isLive(readNumber(item, 'until'), now))
      .map((item) => JSON.parse(readString(item, 'data')) as CaptureRule);
  }

  async deleteCaptureRule(tenant: string, user: string, deviceId: string | undefined): Promise<void> {
    await this.client.send(
      new DeleteItemCommand({ TableName: this.table, Key: toKeyItem(captureRuleKey(tenant, user, deviceId)) }),
    );
  }

  async addCaptureRecord(d: DeviceScope, record: CaptureRecord): Promise<void> {
    const item: Item = {
      ...toKeyItem(captureRecordKey(d, record.at, record.id)),
      id: { S: record.id },
      at: { N: String(record.at) },
      expiresAt: { N: String(record.expiresAt) },
      data: { B: await encodeRecord(record.exchange) },
      [TTL_ATTRIBUTE]: { N: String(ttlOf(record.expiresAt)) },
    };
    await this.client.send(new PutItemCommand({ TableName: this.table, Item: item }));
  }

  async listCaptureRecords(d: DeviceScope): Promise<CaptureRecord[]> {
    const now = Date.now();
    const items = await this.queryAll({ pk: devicePartition(d), skPrefix: CAPTURE_RECORD_PREFIX });
    const live = items.filter((item) => isLive(readNumber(item, 'expiresAt'), now));
    return Promise.all(
      live.map(async (item) => ({
        at: readNumber(item, 'at'),
        id: readString(item, 'id'),
        expiresAt: readNumber(item, 'expiresAt'),
        exchange: await decodeRecord<CapturedExchange>(plainBytes(item.data?.B ?? new Uint8Array())),
      })),
    );
  }

  async deleteCaptureRecords(d: DeviceScope): Promise<void> {
    const keys = (await this.queryAll({ pk: devicePartition(d), skPrefix: CAPTURE_RECORD_PREFIX, keysOnly: true })).map(
      keyOf,
    );
    await this.batchDelete(keys);
  }

  // Table access.

  /** Reads issued in one turn go out together (batched-reads.ts). */
  private getItem(key: Key): Promise<Item | undefined> {
    return this.reads.get(key);
  }

  /** Every item of a partition (optionally those whose sort key starts with `skPrefix`), all pages. */
  private async queryAll(query: {
    pk: string;
    skPrefix?: string;
    skFrom?: string;
    keysOnly?: boolean;
    attributes?: string[];
  }): Promise<Item[]> {
    const names: Record<string, string> = {};
    const projection = query.keysOnly ? ['pk', 'sk'] : query.attributes;
    projection?.forEach((name, i) => {
      names[`#p${i}`] = name;
    });
    const input: QueryCommandInput = {
      TableName: this.table,
      ConsistentRead: true,
      KeyConditionExpression:
        query.skPrefix !== undefined
          ? 'pk = :pk AND begins_with(sk, :prefix)'
          : query.skFrom !== undefined
            ? 'pk = :pk AND sk >= :from'
            : 'pk = :pk',
      ExpressionAttributeValues: {
        ':pk': { S: query.pk },
        ...(query.skPrefix !== undefined
          ? { ':prefix': { S: query.skPrefix } }
          : query.skFrom !== undefined
            ? { ':from': { S: query.skFrom } }
            : {}),
      },
    };
    if (projection) {
      input.ProjectionExpression = Object.keys(names).join(', ');
      input.ExpressionAttributeNames = names;
    }
    const items: Item[] = [];
    do {
      const page = await this.client.send(new QueryCommand(input));
      items.push(...(page.Items ?? []));
      input.ExclusiveStartKey = page.LastEvaluatedKey;
    } while (input.ExclusiveStartKey);
    return items;
  }

  /**
   * An UpdateItem that may not apply: false when its condition does not hold. The condition names attributes as
   * `#name` and brings its own `:values`.
   */
  private async updateIf(key: Key, update: UpdateBuilder, condition: string, values: Item): Promise<boolean> {
    const conditionExpression = condition.replaceAll(/#(\w+)/g, (_, name: string) => update.nameOf(name));
    const built = update.build();
    try {
      await this.client.send(
        new UpdateItemCommand({
          TableName: this.table,
          Key: toKeyItem(key),
          UpdateExpression: built.UpdateExpression,
          ConditionExpression: conditionExpression,
          ExpressionAttributeNames: built.ExpressionAttributeNames,
          ExpressionAttributeValues: { ...built.ExpressionAttributeValues, ...values },
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  /** A PutItem that may not apply: false when its condition does not hold. */
  private async putIf(item: Item, condition: string, names: Record<string, string>, values: Item): Promise<boolean> {
    try {
      await this.client.send(
        new PutItemCommand({
          TableName: this.table,
          Item: item,
          ConditionExpression: condition,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      );
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  /** BatchWriteItem in groups of 25, resending what DynamoDB leaves unprocessed (with backoff). */
  private async batchWrite(requests: WriteRequest[]): Promise<void> {
    for (let start = 0; start < requests.length; start += BATCH_WRITE_LIMIT) {
      let pending = requests.slice(start, start + BATCH_WRITE_LIMIT);
      for (let retry = 0; pending.length > 0; retry++) {
        if (retry > BATCH_RETRIES)
          throw new Error(
            `BatchWriteItem: ${pending.length} requests still unprocessed after ${BATCH_RETRIES} retries`,
          );
        if (retry > 0) await sleep(BATCH_RETRY_BASE_MS * 2 ** retry);
        const result = await this.client.send(new BatchWriteItemCommand({ RequestItems: { [this.table]: pending } }));
        pending = result.UnprocessedItems?.[this.table] ?? [];
      }
    }
  }

  private batchDelete(keys: Key[]): Promise<void> {
    return this.batchWrite(keys.map((key) => ({ DeleteRequest: { Key: toKeyItem(key) } })));
  }

  /**
   * Deletes chunks no head points at any more. Best effort: the commit they belong to has already been decided, and
   * failing it now would only make the client retry a key that moved. What is left behind is unreachable garbage.
   */
  private async deleteQuietly(keys: Key[]): Promise<void> {
    if (keys.length === 0) return;
    try {
      await this.batchDelete(keys);
    } catch {
      // see above
    }
  }
}

/**
 * Creates the state table if it does not exist (PAY_PER_REQUEST, string pk/sk, no indexes), waits until it is
 * active, and turns on TTL on `ttl`. For local runs and tests; production tables come from the deployment template.
 */
export async function createStateTable(client: DynamoDBClient, table: string): Promise<void> {
  try {
    await client.send(
      new CreateTableCommand({
        TableName: table,
        BillingMode: 'PAY_PER_REQUEST',
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
        ],
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
      }),
    );
  } catch (err) {
    if (!(err instanceof ResourceInUseException)) throw err;
  }

  for (let waited = 0; ; waited += 500) {
    try {
      const { Table } = await client.send(new DescribeTableCommand({ TableName: table }));
      if (Table?.TableStatus === 'ACTIVE') break;
    } catch (err) {
      // Right after CreateTable, some endpoints do not list the table yet.
      if (!(err instanceof ResourceNotFoundException)) throw err;
    }
    if (waited >= 120_000) throw new Error(`DynamoDB table ${table} did not become active`);
    await sleep(500);
  }

  try {
    const { TimeToLiveDescription } = await client.send(new DescribeTimeToLiveCommand({ TableName: table }));
    const status = TimeToLiveDescription?.TimeToLiveStatus;
    if (status === 'ENABLED' || status === 'ENABLING') return;
    await client.send(
      new UpdateTimeToLiveCommand({
        TableName: table,
        TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
      }),
    );
  } catch (err) {
    // dynalite has no UpdateTimeToLive (and never expires items; reads check expiry themselves).
    if ((err as { name?: unknown }).name !== 'UnknownOperationException') throw err;
  }
}

// Items.

function markerItem(key: Key, marker: Marker): Item {
  return {
    ...toKeyItem(key),
    value: { S: marker.value },
    expiresAt: { N: String(marker.expiresAt) },
    [TTL_ATTRIBUTE]: { N: String(ttlOf(marker.expiresAt)) },
  };
}

/** A device item is its DeviceRecord plus the key: strings and numbers only. */
function toDeviceRecord(item: Item): DeviceRecord {
  const record: Record<string, string | number> = {};
  for (const [name, value] of Object.entries(item)) {
    if (name === 'pk' || name === 'sk') continue;
    if (value.S !== undefined) record[name] = value.S;
    else if (value.N !== undefined) record[name] = Number(value.N);
  }
  return record as unknown as DeviceRecord;
}

function toLease(item: Item): WatchLease {
  const lease: WatchLease = {
    tenant: readString(item, 'tenant'),
    user: readString(item, 'user'),
    until: readNumber(item, 'until'),
  };
  if (item.credential?.B) lease.credential = plainBytes(item.credential.B);
  return lease;
}

// Conditions and updates.

function preconditionExpression(precondition: Precondition): {
  ConditionExpression?: string;
  ExpressionAttributeValues?: Item;
} {
  if (precondition === 'any') return {};
  if (precondition === 'absent') return { ConditionExpression: 'attribute_not_exists(pk)' };
  return {
    ConditionExpression: 'syncKey = :expected',
    ExpressionAttributeValues: { ':expected': { S: precondition.syncKey } },
  };
}

/** Builds `SET #a = :a, #b = if_not_exists(#b, :b)` with placeholders for every name (many are reserved words). */
class UpdateBuilder {
  private readonly clauses: string[] = [];
  private readonly names: Record<string, string> = {};
  private readonly values: Item = {};

  set(attribute: string, value: unknown): void {
    this.clauses.push(`${this.nameOf(attribute)} = ${this.valueOf(attribute, value)}`);
  }

  setIfAbsent(attribute: string, value: unknown): void {
    const name = this.nameOf(attribute);
    this.clauses.push(`${name} = if_not_exists(${name}, ${this.valueOf(attribute, value)})`);
  }

  /** The placeholder of an attribute name (valid placeholders are word characters; DeviceRecord fields are). */
  nameOf(attribute: string): string {
    const placeholder = `#${attribute.replace(/\W/g, '_')}`;
    this.names[placeholder] = attribute;
    return placeholder;
  }

  private valueOf(attribute: string, value: unknown): string {
    const placeholder = `:${attribute.replace(/\W/g, '_')}`;
    this.values[placeholder] = toAttributeValue(value);
    return placeholder;
  }

  build(): {
    UpdateExpression: string;
    ExpressionAttributeNames: Record<string, string>;
    ExpressionAttributeValues: Item;
  } {
    return {
      UpdateExpression: `SET ${this.clauses.join(', ')}`,
      ExpressionAttributeNames: this.names,
      ExpressionAttributeValues: this.values,
    };
  }
}

function toAttributeValue(value: unknown): AttributeValue {
  if (typeof value === 'string') return { S: value };
  if (typeof value === 'number' && Number.isFinite(value)) return { N: String(value) };
  if (typeof value === 'boolean') return { BOOL: value };
  if (value instanceof Uint8Array) return { B: value };
  throw new TypeError(`cannot store ${typeof value} as a DynamoDB attribute`);
}
