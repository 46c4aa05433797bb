/**
 * The Durable Object state store failing a commit (test/faults/failing-store.ts), inside workerd: what Sync's
 * recovery relies on holds there too. A commit that failed before writing leaves the old key, and the retry from it
 * wins; a commit that wrote but whose answer was lost leaves the new key with the replay of the old one, and a retry
 * from the old key is a StateConflictError (Sync then answers from the replay or with Status 16), never a corrupt
 * state. The device-level recovery on top of this is tested end to end on SQLite and DynamoDB in
 * test/faults/state.test.ts.
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { durableObjectStateStore } from '../../src/state/durable-object.ts';
import { StateConflictError, type CollectionState, type KeyedState } from '../../src/state/types.ts';
import { failingStore, InjectedStoreError } from '../faults/failing-store.ts';

const state: CollectionState = { class: 'Email', watermark: { kind: 'none' }, options: {}, pending: [], clientIds: {} };

function keyed(syncKey: string, replayOf?: string): KeyedState<CollectionState> {
  return {
    syncKey,
    state,
    ...(replayOf
      ? { replay: { syncKey: replayOf, response: new Uint8Array([3, 1, 106, 0]), expiresAt: Date.now() + 60_000 } }
      : {}),
  };
}

describe('the Durable Object store fails a commit (workerd)', () => {
  it('before writing: the old key stays, and the retry from it commits', async () => {
    const faults = failingStore(durableObjectStateStore(env.STATE));
    const device = { tenant: 'faults', user: `u${crypto.randomUUID()}`, deviceId: 'D1' };
    await faults.store.commitCollection(device, '5', 'any', keyed('k1'));
    faults.failOn({ method: 'commitCollection', when: 'before' });
    await expect(
      faults.store.commitCollection(device, '5', { syncKey: 'k1' }, keyed('k2', 'k1')),
    ).rejects.toBeInstanceOf(InjectedStoreError);
    expect((await faults.store.getCollection(device, '5'))?.syncKey).toBe('k1');
    await faults.store.commitCollection(device, '5', { syncKey: 'k1' }, keyed('k2', 'k1'));
    expect((await faults.store.getCollection(device, '5'))?.syncKey).toBe('k2');
  });

  it('after writing (answer lost): the new key and its replay are there; a retry from the old key is a conflict', async () => {
    const faults = failingStore(durableObjectStateStore(env.STATE));
    const device = { tenant: 'faults', user: `u${crypto.randomUUID()}`, deviceId: 'D1' };
    await faults.store.commitCollection(device, '5', 'any', keyed('k1'));
    faults.failOn({ method: 'commitCollection', when: 'after' });
    await expect(
      faults.store.commitCollection(device, '5', { syncKey: 'k1' }, keyed('k2', 'k1')),
    ).rejects.toBeInstanceOf(InjectedStoreError);
    const stored = await faults.store.getCollection(device, '5');
    expect(stored?.syncKey).toBe('k2');
    expect(stored?.replay?.syncKey).toBe('k1');
    await expect(
      faults.store.commitCollection(device, '5', { syncKey: 'k1' }, keyed('k2b', 'k1')),
    ).rejects.toBeInstanceOf(StateConflictError);
    expect((await faults.store.getCollection(device, '5'))?.syncKey).toBe('k2');
  });

  it('two commits from one key at once: exactly one wins, the other is a StateConflictError', async () => {
    const store = durableObjectStateStore(env.STATE);
    const device = { tenant: 'faults', user: `u${crypto.randomUUID()}`, deviceId: 'D1' };
    await store.commitCollection(device, '5', 'any', keyed('k1'));
    const results = await Promise.allSettled([
      store.commitCollection(device, '5', { syncKey: 'k1' }, keyed('a2', 'k1')),
      store.commitCollection(device, '5', { syncKey: 'k1' }, keyed('b2', 'k1')),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(rejected.reason).toBeInstanceOf(StateConflictError);
    expect(['a2', 'b2']).toContain((await store.getCollection(device, '5'))?.syncKey);
  });
});
