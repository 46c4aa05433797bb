import { describe, expect, it } from 'vitest';
import { instrumentedStateStore } from './instrumented.ts';
import { readAhead } from './read-ahead.ts';
import { openSqliteStateStore } from './sqlite-node.ts';
import type { CollectionState, KeyedState, StateStore } from './types.ts';

const device = { tenant: 't', user: 'alice', deviceId: 'D1' };
const collection = (syncKey: string): KeyedState<CollectionState> => ({
  syncKey,
  state: { class: 'Email', watermark: { kind: 'none' }, options: {}, pending: [], clientIds: {} },
});

/** A real store that counts the calls that reach it. */
function countedStore(): { store: StateStore; calls: string[] } {
  const calls: string[] = [];
  const inner = openSqliteStateStore(':memory:').store;
  const store = new Proxy(inner, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      return (...args: unknown[]) => {
        calls.push(property);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store, calls };
}

describe('readAhead', () => {
  it('answers the first same read from the one issued ahead, and later ones from the store', async () => {
    const { store, calls } = countedStore();
    await store.commitCollection(device, '1', 'absent', collection('1'));
    calls.length = 0;
    const ahead = readAhead(store);
    ahead.of({ deviceId: 'D1', user: 'alice', tenant: 't' }).collection('1');
    ahead.of(device).hierarchy();
    expect(calls).toEqual(['getCollection', 'getHierarchy']);
    expect((await ahead.state.getCollection(device, '1'))?.syncKey).toBe('1');
    expect(await ahead.state.getHierarchy(device)).toBeUndefined();
    expect(calls).toEqual(['getCollection', 'getHierarchy']);
    await ahead.state.getCollection(device, '1');
    expect(calls).toEqual(['getCollection', 'getHierarchy', 'getCollection']);
    // Another collection was not read ahead: the store answers.
    await ahead.state.getCollection(device, '2');
    expect(calls.at(-1)).toBe('getCollection');
  });

  it('never answers a read from before the request’s own write', async () => {
    const { store } = countedStore();
    await store.commitCollection(device, '1', 'absent', collection('1'));
    const ahead = readAhead(instrumentedStateStore(store));
    ahead.of(device).collection('1');
    ahead.of(device).pingCache();
    await ahead.state.commitCollection(device, '1', { syncKey: '1' }, collection('2'));
    expect((await ahead.state.getCollection(device, '1'))?.syncKey).toBe('2');
    // What the write does not touch is still answered from the read ahead.
    expect(await ahead.state.getPingCache(device)).toBeUndefined();
  });

  it('lets a failed read ahead fail only the read that takes it', async () => {
    const failing = new Proxy({} as StateStore, {
      get: () => () => Promise.reject(new Error('store down')),
    });
    const ahead = readAhead(failing);
    ahead.of(device).hierarchy();
    ahead.of(device).feed();
    await expect(ahead.state.getHierarchy(device)).rejects.toThrow('store down');
  });
});
