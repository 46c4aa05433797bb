/**
 * Reads a request will make, issued before it makes them, all at once: where the store is across a network (DynamoDB
 * on Lambda) reads issued in one turn go out as one request (dynamodb/batched-reads.ts), so a request's device record,
 * hierarchy, collection and caches cost one round trip instead of one each in turn (issue 18).
 *
 * A read issued ahead answers the request's first same read (same method, same arguments), once; a later one goes to
 * the store. A write the request makes drops what it makes stale among the reads not yet taken (a commit of a
 * collection: every collection read ahead), so the request never reads past its own write. What it answers is the
 * state as of when it was issued, as any read is the state as of when it ran: compare-and-set commits keep sync keys
 * right whatever the reads saw.
 */
import type { DeviceScope, StateStore } from './types.ts';

/** The reads that can be issued ahead. */
export type AheadRead =
  | 'getDevice'
  | 'getHierarchy'
  | 'getCollection'
  | 'getPingCache'
  | 'getSyncRequestCache'
  | 'readFeed'
  | 'getAuthFailures'
  | 'getAccessRules';

/** What each write makes stale: reads of these methods issued before it are dropped, whatever their arguments. */
const STALE_AFTER: Partial<Record<keyof StateStore, readonly AheadRead[]>> = {
  updateDevice: ['getDevice'],
  deleteDevice: ['getDevice', 'getHierarchy', 'getCollection', 'getPingCache', 'getSyncRequestCache'],
  commitHierarchy: ['getHierarchy'],
  commitCollection: ['getCollection'],
  deleteCollection: ['getCollection'],
  putPingCache: ['getPingCache'],
  putSyncRequestCache: ['getSyncRequestCache'],
  putFeedEntry: ['readFeed'],
  addAuthFailure: ['getAuthFailures'],
  clearAuthFailures: ['getAuthFailures'],
  refundAuthFailure: ['getAuthFailures'],
  putAccessRules: ['getAccessRules'],
};

/** The reads of one device a command may ask for ahead (CommandDefinition.readAhead). */
export interface DeviceReadsAhead {
  hierarchy(): void;
  collection(collectionId: string): void;
  pingCache(): void;
  syncRequestCache(): void;
  /** The user's change feed (a Sync ends the device's waiting request through it: push/wait.ts). */
  feed(): void;
}

export interface ReadAhead {
  /** The store for the request: answers a read issued ahead from it, once. */
  readonly state: StateStore;
  /** Issues the read now. */
  issue<K extends AheadRead>(method: K, ...args: Parameters<StateStore[K]>): void;
  /** The reads of `device`, issued now. */
  of(device: DeviceScope): DeviceReadsAhead;
}

export function readAhead(store: StateStore): ReadAhead {
  const issued = new Map<string, { method: AheadRead; answer: Promise<unknown> }>();
  const keyOf = (method: string, args: unknown[]): string => `${method}\u0000${canonical(args)}`;

  const issue = <K extends AheadRead>(method: K, ...args: Parameters<StateStore[K]>): void => {
    const key = keyOf(method, args);
    if (issued.has(key)) return;
    const answer = (store[method] as (...a: unknown[]) => Promise<unknown>).apply(store, args);
    // Not taken, or taken later: a failure is the taker's to see, never an unhandled rejection.
    answer.catch(() => undefined);
    issued.set(key, { method, answer });
  };

  const wrapped = new Map<PropertyKey, unknown>();
  const state = new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      let method = wrapped.get(property);
      if (!method) {
        const call = value as (...args: unknown[]) => unknown;
        const stales = STALE_AFTER[property as keyof StateStore];
        method = (...args: unknown[]): unknown => {
          if (stales) {
            for (const [key, read] of issued) if (stales.includes(read.method)) issued.delete(key);
          } else if (issued.size) {
            const key = keyOf(property, args);
            const read = issued.get(key);
            if (read) {
              issued.delete(key);
              return read.answer;
            }
          }
          return call.apply(target, args);
        };
        wrapped.set(property, method);
      }
      return method;
    },
  });

  return {
    state,
    issue,
    of: (device) => ({
      hierarchy: () => issue('getHierarchy', device),
      collection: (collectionId) => issue('getCollection', device, collectionId),
      pingCache: () => issue('getPingCache', device),
      syncRequestCache: () => issue('getSyncRequestCache', device),
      feed: () => issue('readFeed', device),
    }),
  };
}

/** JSON with object keys sorted: one scope built in two places is one key. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}
