import { afterEach, describe, expect, it } from 'vitest';
import { addMetricsSink, type StateOutcome } from '../util/metrics.ts';
import { instrumentedStateStore } from './instrumented.ts';
import { openSqliteStateStore } from './sqlite-node.ts';
import { StateConflictError, type HierarchyState, type KeyedState } from './types.ts';

const hierarchy = (syncKey: string): KeyedState<HierarchyState> => ({ syncKey, state: { folders: [] } });

describe('instrumentedStateStore', () => {
  const calls: [string, StateOutcome][] = [];
  const remove = addMetricsSink({ stateOperation: (operation, outcome) => calls.push([operation, outcome]) });
  afterEach(() => {
    calls.length = 0;
  });

  it('reports each call of a real store, a lost compare-and-set as a conflict, and behaves as the store', async () => {
    const opened = openSqliteStateStore(':memory:');
    const store = instrumentedStateStore(opened.store);
    const device = { tenant: 't', user: 'alice', deviceId: 'D1' };
    await store.updateDevice(device, { deviceType: 'iPhone', lastSeen: 1 });
    expect((await store.getDevice(device))?.deviceType).toBe('iPhone');
    await store.commitHierarchy(device, 'absent', hierarchy('1'));
    // A second commit from "absent" lost the race: the store's StateConflictError, reported as a conflict.
    await expect(store.commitHierarchy(device, 'absent', hierarchy('1'))).rejects.toBeInstanceOf(StateConflictError);
    expect(calls).toEqual([
      ['updateDevice', 'ok'],
      ['getDevice', 'ok'],
      ['commitHierarchy', 'ok'],
      ['commitHierarchy', 'conflict'],
    ]);
    opened.close();
    remove();
  });
});
