/**
 * The DynamoDB StateStore against dynalite (started by the vitest globalSetup): the shared contract, and what only
 * this store has to get right: the 400 KB item limit, chunks that do not outlive their head, TTL'd items that stay
 * in the table after they expired, and keys built from ids that contain the separator.
 */
import {
  DeleteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  ScanCommand,
  type AttributeValue,
} from '@aws-sdk/client-dynamodb';
import fc from 'fast-check';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { CHUNK_BYTES } from '../../src/state/dynamodb/chunks.ts';
import { keyPart, TTL_ATTRIBUTE } from '../../src/state/dynamodb/keys.ts';
import { DynamoDbStateStore, createStateTable } from '../../src/state/dynamodb/store.ts';
import { encodeUidSet } from '../../src/state/uidset.ts';
import { StateConflictError, type CollectionState, type DeviceScope, type KeyedState } from '../../src/state/types.ts';
import { stateStoreContract } from './contract.ts';

type Item = Record<string, AttributeValue>;

const { dynamodb } = inject('services');
const client = new DynamoDBClient({
  endpoint: dynamodb.endpoint,
  region: dynamodb.region,
  credentials: dynamodb.credentials,
});
const table = `state-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
await createStateTable(client, table);
const store = new DynamoDbStateStore({ client, table });
afterAll(() => client.destroy());

stateStoreContract('DynamoDB (dynalite)', { open: async () => store });

const HOUR = 3_600_000;
let counter = 0;

function freshDevice(deviceId = 'DEV1'): DeviceScope {
  counter += 1;
  return { tenant: `dyn${Date.now().toString(36)}${counter}`, user: 'alice@example.test', deviceId };
}

/** Every item of a tenant, straight from the table (dynalite scans are cheap). */
async function itemsOf(tenant: string): Promise<Item[]> {
  const items: Item[] = [];
  let start: Item | undefined;
  do {
    const page = await client.send(
      new ScanCommand({
        TableName: table,
        FilterExpression: 'begins_with(pk, :tenant)',
        ExpressionAttributeValues: { ':tenant': { S: `${keyPart(tenant)}#` } },
        ExclusiveStartKey: start,
      }),
    );
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  return items;
}

function chunkItems(items: Item[]): Item[] {
  return items.filter((item) => item.sk?.S?.startsWith('CHUNK#'));
}

/**
 * DynamoDB's item size: attribute names plus values (UTF-8 strings, raw binary; numbers counted as their text, more
 * than they take).
 */
function itemSize(item: Item): number {
  const utf8 = (s: string): number => new TextEncoder().encode(s).length;
  let size = 0;
  for (const [name, value] of Object.entries(item)) {
    size += utf8(name);
    if (value.S !== undefined) size += utf8(value.S);
    else if (value.N !== undefined) size += value.N.length;
    else if (value.B !== undefined) size += value.B.length;
    else throw new Error(`unexpected attribute type in ${name}`);
  }
  return size;
}

/** Bytes that deflate cannot shrink, so a state of this size really is this size stored. */
function randomText(bytes: number): string {
  const random = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i += 65_536) crypto.getRandomValues(random.subarray(i, i + 65_536));
  return Buffer.from(random).toString('base64').slice(0, bytes);
}

function bigContacts(syncKey: string, sizeBytes: number): KeyedState<CollectionState> {
  return {
    syncKey,
    state: {
      class: 'Contacts',
      watermark: { kind: 'dav', syncToken: randomText(sizeBytes), etags: {} },
      options: {},
      pending: [],
      clientIds: {},
    },
  };
}

function smallMail(syncKey: string): KeyedState<CollectionState> {
  return {
    syncKey,
    state: {
      class: 'Email',
      watermark: { kind: 'imap', uidValidity: 1, highestModSeq: '1', uids: encodeUidSet([1, 2, 3]) },
      options: {},
      pending: [],
      clientIds: {},
    },
  };
}

describe('DynamoDB state table', () => {
  it('keeps every item of 100,000-entry states under the 400 KB limit', async () => {
    const d = freshDevice();
    const uids = Array.from({ length: 100_000 }, (_, i) => 2 * i + 1);
    const mail: KeyedState<CollectionState> = {
      syncKey: '1',
      state: {
        class: 'Email',
        watermark: { kind: 'imap', uidValidity: 1, highestModSeq: '9', uids: encodeUidSet(uids) },
        options: {},
        pending: [],
        clientIds: {},
      },
      replay: {
        syncKey: '0',
        response: new Uint8Array(900_000).map((_, i) => (i * 7919) % 251),
        expiresAt: Date.now() + HOUR,
      },
    };
    await store.commitCollection(d, 'mail', 'absent', mail);
    // Random etags barely deflate: several chunks' worth.
    const etags = Object.fromEntries(
      Array.from({ length: 100_000 }, (_, i) => [
        `/dav/alice/contacts/${i.toString(16).padStart(8, '0')}.vcf`,
        `"${randomText(12)}"`,
      ]),
    );
    await store.commitCollection(d, 'book', 'absent', {
      syncKey: '1',
      state: {
        class: 'Contacts',
        watermark: { kind: 'dav', syncToken: 't', etags },
        options: {},
        pending: [],
        clientIds: {},
      },
    });

    const items = await itemsOf(d.tenant);
    expect(chunkItems(items).length).toBeGreaterThanOrEqual(4);
    for (const item of items) expect(itemSize(item), item.sk?.S).toBeLessThan(400 * 1024);
    expect(Math.max(...items.map(itemSize))).toBeGreaterThan(CHUNK_BYTES);
    expect((await store.getCollection(d, 'book'))?.state.watermark).toEqual({ kind: 'dav', syncToken: 't', etags });
  });

  it('deletes the chunks of a replaced state, and those of a commit that lost', async () => {
    const d = freshDevice();
    // Base64 text deflates to about 3/4: 1.5 MB is 3 chunks, 800 KB is 2.
    await store.commitCollection(d, 'c', 'absent', bigContacts('1', 1_500_000));
    const firstChunks = chunkItems(await itemsOf(d.tenant));
    expect(firstChunks).toHaveLength(3);

    await store.commitCollection(d, 'c', { syncKey: '1' }, bigContacts('2', 800_000));
    const secondChunks = chunkItems(await itemsOf(d.tenant));
    expect(secondChunks).toHaveLength(2);
    expect(secondChunks.map((c) => c.sk?.S)).not.toContain(firstChunks[0]?.sk?.S);

    // A commit from a stale key wrote its chunks first; it must take them away again.
    await expect(store.commitCollection(d, 'c', { syncKey: '1' }, bigContacts('2b', 800_000))).rejects.toBeInstanceOf(
      StateConflictError,
    );
    expect(
      chunkItems(await itemsOf(d.tenant))
        .map((c) => c.sk?.S)
        .sort(),
    ).toEqual(secondChunks.map((c) => c.sk?.S).sort());

    // Back to a small state: no chunks at all.
    await store.commitCollection(d, 'c', { syncKey: '2' }, smallMail('3'));
    expect(chunkItems(await itemsOf(d.tenant))).toEqual([]);

    // Deleting a collection and a device takes their chunks along.
    await store.commitCollection(d, 'c', 'any', bigContacts('4', 800_000));
    await store.deleteCollection(d, 'c');
    expect(await itemsOf(d.tenant)).toEqual([]);
    await store.updateDevice(d, { deviceType: 'iPhone' });
    await store.commitCollection(d, 'c', 'absent', {
      ...bigContacts('1', 800_000),
      replay: { syncKey: '0', response: new Uint8Array(700_000), expiresAt: Date.now() + HOUR },
    });
    await store.deleteDevice(d);
    expect(await itemsOf(d.tenant)).toEqual([]);
  });

  it('sends the reads issued in one turn as one BatchGetItem, a lone read as a GetItem', async () => {
    const counting = new DynamoDBClient({
      endpoint: dynamodb.endpoint,
      region: dynamodb.region,
      credentials: dynamodb.credentials,
    });
    const sent: string[] = [];
    counting.middlewareStack.add(
      (next, context) => async (args) => {
        sent.push(context.commandName ?? '?');
        return next(args);
      },
      { step: 'initialize' },
    );
    const reader = new DynamoDbStateStore({ client: counting, table });
    try {
      const d = freshDevice();
      await store.updateDevice(d, { deviceType: 'iPhone' });
      const big = bigContacts('1', 800_000);
      await store.commitCollection(d, 'c', 'absent', big);
      await store.commitHierarchy(d, 'absent', { syncKey: '1', state: { folders: [] } });
      // The device, the hierarchy, the collection's head (its chunks follow in a second batch), one key asked twice,
      // an item that does not exist: each gets its own answer.
      const [device, hierarchy, collection, again, missing] = await Promise.all([
        reader.getDevice(d),
        reader.getHierarchy(d),
        reader.getCollection(d, 'c'),
        reader.getCollection(d, 'c'),
        reader.getPingCache(d),
      ]);
      expect(device?.deviceType).toBe('iPhone');
      expect(hierarchy?.syncKey).toBe('1');
      expect(collection).toEqual(big);
      expect(again).toEqual(collection);
      expect(missing).toBeUndefined();
      expect(sent).toEqual(['BatchGetItemCommand', 'BatchGetItemCommand']);
      sent.length = 0;
      await reader.getDevice(d);
      expect(sent).toEqual(['GetItemCommand']);
    } finally {
      counting.destroy();
    }
  });

  it('reads the new state when the head moves on between reading it and reading its chunks', async () => {
    // A second client whose requests can be held: the first chunk read waits until the hook has run.
    const racingClient = new DynamoDBClient({
      endpoint: dynamodb.endpoint,
      region: dynamodb.region,
      credentials: dynamodb.credentials,
    });
    let beforeChunkRead: (() => Promise<void>) | undefined;
    racingClient.middlewareStack.add(
      (next) => async (args) => {
        // A chunk alone is a GetItem; chunks read together one BatchGetItem (batched-reads.ts).
        const input = args.input as { Key?: Item; RequestItems?: Record<string, { Keys?: Item[] }> };
        const keys = input.Key ? [input.Key] : (input.RequestItems?.[table]?.Keys ?? []);
        const hook = beforeChunkRead;
        if (hook && keys.some((key) => key.sk?.S?.startsWith('CHUNK#'))) {
          beforeChunkRead = undefined;
          await hook();
        }
        return next(args);
      },
      { step: 'initialize' },
    );
    const reader = new DynamoDbStateStore({ client: racingClient, table });
    try {
      const d = freshDevice();
      const [first, second] = [bigContacts('1', 800_000), bigContacts('2', 800_000)];
      await store.commitCollection(d, 'c', 'absent', first);
      beforeChunkRead = () => store.commitCollection(d, 'c', { syncKey: '1' }, second);
      expect(await reader.getCollection(d, 'c')).toEqual(second);

      beforeChunkRead = () => store.deleteCollection(d, 'c');
      expect(await reader.getCollection(d, 'c')).toBeUndefined();

      // Chunks missing under a head that stays: not a race but damage, and reported as such.
      await store.commitCollection(d, 'c', 'absent', first);
      const chunk = chunkItems(await itemsOf(d.tenant))[0]!;
      await client.send(new DeleteItemCommand({ TableName: table, Key: { pk: chunk.pk!, sk: chunk.sk! } }));
      await expect(reader.getCollection(d, 'c')).rejects.toThrow(/chunks of the stored state are missing/);
    } finally {
      racingClient.destroy();
    }
  });

  it('reads expired records as absent while they are still in the table, with a ttl in epoch seconds', async () => {
    const d = freshDevice();
    const user = { tenant: d.tenant, user: d.user };
    const past = Date.now() - 1;
    await store.putPingCache(d, { heartbeatInterval: 60, folders: [], expiresAt: past });
    await store.putSyncRequestCache(d, { collections: [], expiresAt: past });
    await store.putFeedEntry(user, { folder: 'INBOX', marker: '1', changedAt: 1, expiresAt: past });
    await store.putLease({ ...user, until: past });
    const soon = Date.now() + 1000;
    await store.commitHierarchy(d, 'absent', {
      syncKey: '1',
      state: { folders: [] },
      replay: { syncKey: '0', response: new Uint8Array([1]), expiresAt: soon },
    });
    await store.commitCollection(d, 'c', 'absent', {
      ...bigContacts('1', 1000),
      replay: { syncKey: '0', response: new Uint8Array(500_000), expiresAt: soon },
    });
    expect((await store.getCollection(d, 'c'))?.replay?.syncKey).toBe('0');
    await new Promise((resolve) => setTimeout(resolve, soon - Date.now() + 5));

    expect(await store.getPingCache(d)).toBeUndefined();
    expect(await store.getSyncRequestCache(d)).toBeUndefined();
    expect(await store.readFeed(user)).toEqual([]);
    expect(await store.getLease(user)).toBeUndefined();
    expect((await store.getHierarchy(d))?.replay).toBeUndefined();
    const collection = await store.getCollection(d, 'c');
    expect(collection?.syncKey).toBe('1');
    expect(collection?.replay).toBeUndefined();

    const items = await itemsOf(d.tenant);
    const ttlOf = (sk: string): string | undefined => items.find((item) => item.sk?.S === sk)?.[TTL_ATTRIBUTE]?.N;
    expect(ttlOf('CACHE#PING')).toBe(String(Math.ceil(past / 1000)));
    expect(ttlOf('CACHE#SYNC')).toBe(String(Math.ceil(past / 1000)));
    expect(ttlOf('FEED#INBOX')).toBe(String(Math.ceil(past / 1000)));
    const replayChunks = chunkItems(items);
    expect(replayChunks).toHaveLength(2);
    for (const chunk of replayChunks) expect(chunk[TTL_ATTRIBUTE]?.N).toBe(String(Math.ceil(soon / 1000)));
    // Heads have no ttl: the state outlives its replay.
    expect(items.find((item) => item.sk?.S === 'HIERARCHY')?.[TTL_ATTRIBUTE]).toBeUndefined();
    expect(ttlOf(keyPart(d.user))).toBe(String(Math.ceil(past / 1000)));
  });

  it('starts an expired lease afresh, without the old credential', async () => {
    const user = { tenant: freshDevice().tenant, user: 'alice' };
    await store.putLease({ ...user, until: Date.now() - 1, credential: new Uint8Array([9]) });
    const until = Date.now() + HOUR;
    await store.putLease({ ...user, until });
    expect(await store.getLease(user)).toEqual({ ...user, until });
  });

  it('applies concurrent updates of different device fields', async () => {
    const d = freshDevice();
    await store.updateDevice(d, { deviceType: 'iPhone', lastSeen: 10 });
    await Promise.all([
      store.updateDevice(d, { deviceType: 'iPhone', model: 'iPhone15,2' }),
      store.updateDevice(d, { deviceType: 'iPhone', policyKey: '42', provisioning: 'provisioned' }),
      store.updateDevice(d, { deviceType: 'iPhone', wipe: 'requested', wipeRequestedAt: 20 }),
    ]);
    expect(await store.getDevice(d)).toEqual({
      deviceId: 'DEV1',
      deviceType: 'iPhone',
      model: 'iPhone15,2',
      policyKey: '42',
      provisioning: 'provisioned',
      wipe: 'requested',
      wipeRequestedAt: 20,
      firstSeen: 10,
      lastSeen: 10,
    });
  });

  it('round-trips an empty replay response', async () => {
    const d = freshDevice();
    const next = {
      ...smallMail('1'),
      replay: { syncKey: '0', response: new Uint8Array(), expiresAt: Date.now() + HOUR },
    };
    await store.commitCollection(d, 'c', 'absent', next);
    expect(await store.getCollection(d, 'c')).toEqual(next);
  });

  it('puts a head that is not chunked into one item', async () => {
    const d = freshDevice();
    await store.commitCollection(d, 'c', 'absent', {
      ...smallMail('1'),
      replay: { syncKey: '0', response: new Uint8Array(1000), expiresAt: Date.now() + HOUR },
    });
    const items = await itemsOf(d.tenant);
    expect(items).toHaveLength(1);
    const head = (
      await client.send(new GetItemCommand({ TableName: table, Key: { pk: items[0]!.pk!, sk: { S: 'COLLECTION#c' } } }))
    ).Item;
    expect(Object.keys(head ?? {}).sort()).toEqual([
      'collectionId',
      'pk',
      'replay',
      'replayExpiresAt',
      'replayKey',
      'sk',
      'state',
      'syncKey',
    ]);
  });
});

describe('keyPart', () => {
  it('never yields the separator, and never the same part for different ids', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (a, b) => {
        expect(keyPart(a)).not.toContain('#');
        if (a !== b) expect(keyPart(a)).not.toBe(keyPart(b));
      }),
    );
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (a) => {
        expect(keyPart(`${a}#`)).not.toBe(keyPart(`${a}%23`));
      }),
    );
  });

  it('leaves ordinary ids readable', () => {
    expect(keyPart('alice@example.test')).toBe('alice@example.test');
    expect(keyPart('a#b%c\u0000')).toBe('a%0023b%0025c%0000');
  });
});
