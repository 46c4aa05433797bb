/**
 * Sync keys as Exchange writes them: `{GUID}N`. The GUID is new whenever a collection (or the hierarchy) starts
 * over from key 0, so a key from before a reset can never match the state after it; N counts the responses since.
 */
export const INITIAL_SYNC_KEY = '0';

/** How long a device may come back with the previous key and get the same answer (the replay record). */
export const REPLAY_TTL_MS = 7 * 24 * 3_600_000;

export function firstSyncKey(): string {
  return `{${crypto.randomUUID()}}1`;
}

/** The key after `key`; undefined when `key` is not one of ours. */
export function nextSyncKey(key: string): string | undefined {
  const match = /^(\{[0-9a-f-]{36}\})(\d{1,9})$/.exec(key);
  return match ? `${match[1]}${Number(match[2]) + 1}` : undefined;
}
