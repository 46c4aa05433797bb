/** Which lease shard an account falls in: a stable hash (FNV-1a), so every runtime and watcher agrees. */
import { fnv1a32 } from '../util/fnv.ts';
import { LEASE_SHARDS } from './types.ts';

export function leaseShard(user: string): number {
  return fnv1a32(user) % LEASE_SHARDS;
}
