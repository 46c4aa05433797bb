import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { PushConfig } from '../config.ts';
import { openSqliteStateStore } from '../state/sqlite-node.ts';
import type { StateStore } from '../state/types.ts';
import { encodeImapMarker, FEED_TTL_MS, PushHub } from './feed.ts';
import { waitForChanges, type WaitOutcome } from './wait.ts';

const dir = mkdtempSync(join(tmpdir(), 'ase-feed-poller-'));
const opened = openSqliteStateStore(join(dir, 'state.sqlite'));
afterAll(() => {
  opened.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The SQLite store, counting its feed reads. */
function countingStore(): { store: StateStore; reads: () => number } {
  let reads = 0;
  const real = opened.store;
  const store = new Proxy(real, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (property === 'readFeed')
        return (...args: Parameters<StateStore['readFeed']>) => {
          reads++;
          return real.readFeed(...args);
        };
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { store, reads: () => reads };
}

const push = (pollSeconds: number): PushConfig => ({
  maxHeartbeat: 3540,
  minHeartbeat: 1,
  pollSeconds,
  master: { user: 'master', password: 'x' },
  credentialKey: undefined,
});

const inbox = { backend: 'imap' as const, ref: 'INBOX' };
const unsynced = { serverId: '1', source: inbox, state: undefined, baseline: encodeImapMarker(marker(5)) };

function marker(uidNext: number): { uidValidity: number; highestModSeq: bigint; uidNext: number; messages: number } {
  return { uidValidity: 1, highestModSeq: BigInt(uidNext), uidNext, messages: uidNext - 1 };
}

/** Ten devices of one user wait on INBOX (each had seen uidNext 5); resolves once all ten wait. */
async function tenWaits(
  store: StateStore,
  user: string,
  pollSeconds: number,
  hub: PushHub,
): Promise<{ outcomes: Promise<WaitOutcome[]> }> {
  const outcomes = Array.from({ length: 10 }, (_, i) =>
    waitForChanges(
      { state: store, device: { tenant: 't', user, deviceId: `D${i}` }, push: push(pollSeconds), password: '', hub },
      { targets: [unsynced], hierarchy: undefined, endOnHierarchyChange: true, seconds: 60 },
    ),
  );
  // Each wait reads the feed once before it waits (its device's marker), claims it, then says it waits.
  await new Promise<void>((resolve) => {
    let count = 0;
    const off = hub.onWaiting(() => {
      if (++count < 10) return;
      off();
      resolve();
    });
  });
  return { outcomes: Promise.all(outcomes) };
}

describe('feed poller', () => {
  it("reads a user's feed once for all its waiting requests when the in-process watcher wakes them", async () => {
    const { store, reads } = countingStore();
    const hub = new PushHub();
    // A long poll: only the wake reads.
    const { outcomes } = await tenWaits(store, 'woken', 60, hub);
    const before = reads();
    const now = Date.now();
    const user = { tenant: 't', user: 'woken' };
    await store.putFeedEntry(user, {
      folder: 'imap:INBOX',
      marker: encodeImapMarker(marker(6)),
      changedAt: now,
      expiresAt: now + FEED_TTL_MS,
    });
    hub.changed(user);
    expect(await outcomes).toEqual(Array.from({ length: 10 }, () => ({ kind: 'changed', serverIds: ['1'] })));
    // One read for ten waiting devices (each read its own before).
    expect(reads() - before).toBe(1);
  });

  it("polls a user's feed once per interval for all its waiting requests, and sees a write from elsewhere", async () => {
    const { store, reads } = countingStore();
    const hub = new PushHub();
    const { outcomes } = await tenWaits(store, 'polled', 0.2, hub);
    const before = reads();
    const started = Date.now();
    // Written by another process: no wake on this hub.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const now = Date.now();
    await store.putFeedEntry(
      { tenant: 't', user: 'polled' },
      { folder: 'imap:INBOX', marker: encodeImapMarker(marker(6)), changedAt: now, expiresAt: now + FEED_TTL_MS },
    );
    expect(await outcomes).toEqual(Array.from({ length: 10 }, () => ({ kind: 'changed', serverIds: ['1'] })));
    const intervals = (Date.now() - started) / 200;
    // One read per interval (a timer may fire late, never more often), not one per device and interval.
    expect(reads() - before).toBeGreaterThanOrEqual(1);
    expect(reads() - before).toBeLessThanOrEqual(Math.ceil(intervals) + 1);
  });
});
