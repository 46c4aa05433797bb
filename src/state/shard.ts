/** Which lease shard an account falls in: a stable hash (FNV-1a), so every runtime and watcher agrees. */
import { LEASE_SHARDS } from './types.ts';

export function leaseShard(user: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < user.length; i++) {
    hash ^= user.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % LEASE_SHARDS;
}
