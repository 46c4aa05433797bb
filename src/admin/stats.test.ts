import { describe, expect, it } from 'vitest';
import { openSqliteStateStore } from '../state/sqlite-node.ts';
import { commandSummary, countRequest } from './stats.ts';

describe('per-command counters', () => {
  it('adds requests up in the process and writes them at most every 10 s, one row per command and minute', async () => {
    const { store } = openSqliteStateStore(':memory:');
    const writes: number[] = [];
    const addCommandStats = store.addCommandStats.bind(store);
    store.addCommandStats = (tenant, stats) => {
      writes.push(stats.requests);
      return addCommandStats(tenant, stats);
    };
    const t0 = Date.UTC(2026, 10, 26, 5, 0, 0);
    for (let i = 0; i < 50; i++)
      await countRequest(store, 't1', { cmd: 'Ping', http: 200, ms: 10 + i }, t0 + i * 100, t0 + i * 100);
    await countRequest(store, 't1', { cmd: 'Sync', http: 500, ms: 7 }, t0 + 5_000, t0 + 5_000);
    expect(writes).toEqual([]);
    // The first request after 10 s writes everything counted so far.
    await countRequest(store, 't1', { cmd: 'Sync', http: 200, ms: 3 }, t0 + 10_500, t0 + 10_500);
    expect(writes.sort()).toEqual([2, 50]);

    await countRequest(store, 't2', { cmd: 'Ping', http: 200, ms: 1 }, t0 + 11_000, t0 + 11_000);
    // Reading flushes first: the admin sees this process's latest requests at once.
    const summary = await commandSummary(store, 't1', 5, t0 + 12_000);
    expect(summary).toEqual([
      { command: 'Ping', requests: 50, errors: 0, avgMs: 35, maxMs: 59 },
      { command: 'Sync', requests: 2, errors: 1, avgMs: 5, maxMs: 7 },
    ]);
    expect(await commandSummary(store, 't2', 5, t0 + 12_000)).toEqual([
      { command: 'Ping', requests: 1, errors: 0, avgMs: 1, maxMs: 1 },
    ]);
  });
});
