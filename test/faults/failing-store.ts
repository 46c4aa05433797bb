/**
 * A StateStore wrapper that fails chosen writes on purpose: the next call (or the Nth) of one method throws, either
 * instead of writing (`when: 'before'`, the store was unreachable) or after the write went through (`when: 'after'`,
 * the store wrote but its answer was lost), or held for a while (`delayMs`, a slow write another request overtakes).
 * Everything else passes to the real store.
 */
import type { StateStore } from '../../src/state/types.ts';

export class InjectedStoreError extends Error {
  override readonly name = 'InjectedStoreError';
}

export interface StoreFault {
  method: keyof StateStore;
  /** Which call from now fails: 1 = the next. */
  nth?: number;
  when?: 'before' | 'after';
  /** Instead of failing: hold the call this long, then make it (to make two requests' writes overlap). */
  delayMs?: number;
}

export interface FailingStore {
  store: StateStore;
  /** Arms one fault; `fired` counts the faults that went off. */
  failOn(fault: StoreFault): void;
  readonly fired: number;
}

export function failingStore(inner: StateStore): FailingStore {
  const armed: { fault: StoreFault; left: number }[] = [];
  let fired = 0;
  const store = new Proxy(inner, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]): Promise<unknown> => {
        const at = armed.findIndex((a) => a.fault.method === property && --a.left === 0);
        if (at < 0) return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        const { fault } = armed.splice(at, 1)[0]!;
        fired++;
        if (fault.delayMs !== undefined) {
          await new Promise((resolve) => setTimeout(resolve, fault.delayMs));
          return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        }
        if (fault.when === 'after') await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        throw new InjectedStoreError(`injected failure of ${String(property)}`);
      };
    },
  });
  return {
    store,
    failOn(fault) {
      armed.push({ fault, left: fault.nth ?? 1 });
    },
    get fired() {
      return fired;
    },
  };
}
