/** planSweep and sweepPart: how the Cloudflare cron splits a tenant's leased accounts over invocations. */
import { describe, expect, it } from 'vitest';
import { leaseShard } from '../state/shard.ts';
import { LEASE_SHARDS } from '../state/types.ts';
import { planSweep } from './sweep-plan.ts';
import { sweepPart, type SweepSlice } from './sweep.ts';

/** Which slices would sweep this account. */
function slicesOf(user: string, slices: SweepSlice[]): number[] {
  return slices.flatMap((s, i) =>
    s.shards.includes(leaseShard(user)) && (!s.part || sweepPart(user, s.part.of) === s.part.index) ? [i] : [],
  );
}

describe('planSweep', () => {
  it('keeps everything in one slice when it fits', () => {
    const counts = Array.from({ length: LEASE_SHARDS }, (_, i) => i % 3);
    expect(planSweep(counts, 100)).toEqual([{ shards: Array.from({ length: LEASE_SHARDS }, (_, i) => i) }]);
  });

  it('packs shards up to the capacity, splits a big shard into parts, and sweeps every account exactly once', () => {
    const users = Array.from({ length: 700 }, (_, i) => `user${i}@example.org`);
    // One crowded shard: 300 more accounts in the shard of the first user.
    const crowded = leaseShard(users[0]!);
    for (let i = 0; users.filter((u) => leaseShard(u) === crowded).length < 300; i++)
      if (leaseShard(`x${i}@example.org`) === crowded) users.push(`x${i}@example.org`);
    const counts = Array.from({ length: LEASE_SHARDS }, () => 0);
    for (const u of users) counts[leaseShard(u)]!++;

    const slices = planSweep(counts, 60);
    const parts = slices.filter((s) => s.part);
    expect(parts.length).toBe(Math.ceil(counts[crowded]! / 60));
    expect(parts.every((s) => s.shards.length === 1 && s.shards[0] === crowded)).toBe(true);
    for (const u of users) expect(slicesOf(u, slices)).toHaveLength(1);
    // Whole-shard slices keep to the capacity; parts of a split shard come close to an even share.
    for (const [i, s] of slices.entries()) {
      const load = users.filter((u) => slicesOf(u, slices).includes(i)).length;
      if (!s.part) expect(load).toBeLessThanOrEqual(60);
      else expect(load).toBeLessThan(90);
    }
  });

  it('puts empty shards in the first slice, so a lease written meanwhile is still swept', () => {
    const counts = Array.from({ length: LEASE_SHARDS }, (_, i) => (i === 3 ? 10 : 0));
    const slices = planSweep(counts, 5);
    expect(slices[0]!.shards).toEqual(Array.from({ length: LEASE_SHARDS }, (_, i) => i).filter((i) => i !== 3));
    expect(slices.slice(1)).toEqual([
      { shards: [3], part: { index: 0, of: 2 } },
      { shards: [3], part: { index: 1, of: 2 } },
    ]);
  });
});
