/**
 * Reads of single items, gathered: the GetItems a request issues in one turn of the event loop (a Sync's device,
 * hierarchy, collection and request cache; a state's chunks) go out as one BatchGetItem, one round trip to the table
 * instead of one each at once (issue 18: where the table is tens of milliseconds away, each request is one of them).
 * A lone read is a plain GetItem. Every read is strongly consistent, as the store's GetItems are.
 */
import {
  BatchGetItemCommand,
  type BatchGetItemCommandOutput,
  GetItemCommand,
  type DynamoDBClient,
  type KeysAndAttributes,
} from '@aws-sdk/client-dynamodb';
import { setTimeout as sleep } from 'node:timers/promises';
import { toKeyItem, type Item, type Key } from './keys.ts';

/** BatchGetItem takes at most 100 keys. */
const BATCH_GET_LIMIT = 100;
/**
 * Backoff for what a batch call left unprocessed (throttling; for BatchGetItem also an answer over its 16 MB): the
 * store's BatchWriteItem uses the same.
 */
export const BATCH_RETRIES = 8;
export const BATCH_RETRY_BASE_MS = 25;

interface Waiting {
  resolve(item: Item | undefined): void;
  reject(err: unknown): void;
}

export class BatchedReads {
  /** The reads of this turn, by key (`pk` NUL `sk`): one key asked twice is read once (BatchGetItem refuses twice). */
  private queued = new Map<string, { key: Key; waiting: Waiting[] }>();

  constructor(
    private readonly client: DynamoDBClient,
    private readonly table: string,
  ) {}

  get(key: Key): Promise<Item | undefined> {
    return new Promise((resolve, reject) => {
      if (this.queued.size === 0) setImmediate(() => this.flush());
      const id = idOf(key);
      const entry = this.queued.get(id) ?? { key, waiting: [] };
      entry.waiting.push({ resolve, reject });
      this.queued.set(id, entry);
    });
  }

  private flush(): void {
    const batch = [...this.queued.values()];
    this.queued = new Map();
    if (batch.length === 1) {
      const { key, waiting } = batch[0]!;
      settle(waiting, this.getOne(key));
      return;
    }
    for (let start = 0; start < batch.length; start += BATCH_GET_LIMIT) {
      const part = batch.slice(start, start + BATCH_GET_LIMIT);
      const read = this.getMany(part.map((e) => e.key));
      for (const { key, waiting } of part)
        settle(
          waiting,
          read.then((items) => items.get(idOf(key))),
        );
    }
  }

  private async getOne(key: Key): Promise<Item | undefined> {
    const result = await this.client.send(
      new GetItemCommand({ TableName: this.table, Key: toKeyItem(key), ConsistentRead: true }),
    );
    return result.Item;
  }

  /** The items of `keys` that exist, by key; what DynamoDB leaves unprocessed is asked again, with backoff. */
  private async getMany(keys: Key[]): Promise<Map<string, Item>> {
    const found = new Map<string, Item>();
    let pending: KeysAndAttributes | undefined = { Keys: keys.map(toKeyItem), ConsistentRead: true };
    for (let retry = 0; pending?.Keys?.length; retry++) {
      if (retry > BATCH_RETRIES)
        throw new Error(`BatchGetItem: ${pending.Keys.length} keys still unprocessed after ${BATCH_RETRIES} retries`);
      if (retry > 0) await sleep(BATCH_RETRY_BASE_MS * 2 ** retry);
      const result: BatchGetItemCommandOutput = await this.client.send(
        new BatchGetItemCommand({ RequestItems: { [this.table]: pending } }),
      );
      for (const item of result.Responses?.[this.table] ?? [])
        found.set(idOf({ pk: item.pk!.S!, sk: item.sk!.S! }), item);
      pending = result.UnprocessedKeys?.[this.table];
    }
    return found;
  }
}

function idOf(key: Key): string {
  return `${key.pk}\u0000${key.sk}`;
}

function settle(waiting: Waiting[], read: Promise<Item | undefined>): void {
  read.then(
    (item) => {
      for (const w of waiting) w.resolve(item);
    },
    (err: unknown) => {
      for (const w of waiting) w.reject(err);
    },
  );
}
