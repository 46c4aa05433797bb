/**
 * The state-store measurements, written once and run wherever a store lives: in Node (better-sqlite3, DynamoDB)
 * and inside workerd (Durable Objects). No Node-only imports here.
 */
import { encodeRecord } from '../src/state/codec.ts';
import { encodeUidSet } from '../src/state/uidset.ts';
import type { CollectionState, DeviceScope, KeyedState, StateStore } from '../src/state/types.ts';

export interface StoreFigures {
  readsPerSecond: number;
  commitsPerSecond: number;
}

/** A typical mail collection after its first window: 200 messages, options, a small replay. */
function typicalState(syncKey: string): KeyedState<CollectionState> {
  return {
    syncKey,
    state: {
      class: 'Email',
      watermark: {
        kind: 'imap',
        uidValidity: 1700000000,
        highestModSeq: '987654',
        uids: encodeUidSet(Array.from({ length: 200 }, (_, i) => 1000 + i * 3)),
      },
      options: { filterType: 3, bodyPreferences: [{ type: 2, truncationSize: 51200 }], conflict: 1, windowSize: 25 },
      pending: [],
      clientIds: {},
    },
    replay: {
      syncKey: String(Number(syncKey) - 1),
      response: new Uint8Array(2048).fill(7),
      expiresAt: Date.now() + 3_600_000,
    },
  };
}

async function timed(seconds: number, step: (i: number) => Promise<void>): Promise<number> {
  const started = performance.now();
  let i = 0;
  while (performance.now() - started < seconds * 1000) await step(i++);
  return i / ((performance.now() - started) / 1000);
}

/** Sequential reads and compare-and-set commits of one collection, each for `seconds`. */
export async function measureStore(store: StateStore, seconds: number): Promise<StoreFigures> {
  const device: DeviceScope = { tenant: `bench-${Date.now()}`, user: 'alice@example.test', deviceId: 'BENCH' };
  await store.commitCollection(device, '5', 'any', typicalState('1'));
  let key = 1;
  const commitsPerSecond = await timed(seconds, async () => {
    await store.commitCollection(device, '5', { syncKey: String(key) }, typicalState(String(key + 1)));
    key += 1;
  });
  const readsPerSecond = await timed(seconds, async () => {
    if (!(await store.getCollection(device, '5'))) throw new Error('state vanished');
  });
  return { readsPerSecond, commitsPerSecond };
}

export interface SizeFigure {
  shape: string;
  items: number;
  bytes: number;
}

/** Stored bytes of collection states (every store keeps the same encoded record). */
export async function measureStateSizes(): Promise<SizeFigure[]> {
  const out: SizeFigure[] = [];
  for (const items of [1_000, 10_000, 100_000]) {
    const contiguous = Array.from({ length: items }, (_, i) => i + 1);
    // Mail that has seen deletions: about one message in ten gone, at random places.
    const withGaps: number[] = [];
    for (let uid = 1, seed = 42; withGaps.length < items; uid++) {
      seed = (Math.imul(seed, 1103515245) + 12345) & 0x7fffffff;
      if ((seed >>> 16) % 10 !== 0) withGaps.push(uid);
    }
    const alternate = Array.from({ length: items }, (_, i) => 2 * i + 1);
    const etags = Object.fromEntries(
      Array.from({ length: items }, (_, i) => [
        `/dav/alice%40example.test/contacts/${((i * 2654435761) >>> 0).toString(16)}.vcf`,
        `"${((i * 40503) >>> 0).toString(16)}-${i}"`,
      ]),
    );
    const shapes: [string, CollectionState['watermark']][] = [
      ['mail, contiguous UIDs', { kind: 'imap', uidValidity: 1, highestModSeq: '1', uids: encodeUidSet(contiguous) }],
      ['mail, 10% deleted', { kind: 'imap', uidValidity: 1, highestModSeq: '1', uids: encodeUidSet(withGaps) }],
      [
        'mail, every other deleted',
        { kind: 'imap', uidValidity: 1, highestModSeq: '1', uids: encodeUidSet(alternate) },
      ],
      ['contacts, href→etag', { kind: 'dav', syncToken: 'http://radicale.org/ns/sync/abc', etags }],
    ];
    for (const [shape, watermark] of shapes) {
      const bytes = (await encodeRecord({ class: 'Email', watermark, options: {}, pending: [], clientIds: {} })).length;
      out.push({ shape, items, bytes });
    }
  }
  return out;
}
