/**
 * A state store that reports each call (util/metrics.ts stateOperation): its name and whether it succeeded, lost a
 * conditional write to another request (StateConflictError: the retryable conflict of docs/DESIGN.md §4), or failed.
 * The runtimes wrap the store they open with it; the store's behaviour is unchanged.
 */
import { metrics } from '../util/metrics.ts';
import { StateConflictError, type StateStore } from './types.ts';

export function instrumentedStateStore(store: StateStore): StateStore {
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function' || typeof property !== 'string') return value;
      let method = wrapped.get(property);
      if (!method) {
        const operation = property;
        const call = value as (...args: unknown[]) => unknown;
        method = function (this: unknown, ...args: unknown[]): unknown {
          let result: unknown;
          try {
            result = call.apply(target, args);
          } catch (err) {
            metrics.stateOperation(operation, err instanceof StateConflictError ? 'conflict' : 'error');
            throw err;
          }
          if (!(result instanceof Promise)) return result;
          return result.then(
            (v: unknown) => {
              metrics.stateOperation(operation, 'ok');
              return v;
            },
            (err: unknown) => {
              metrics.stateOperation(operation, err instanceof StateConflictError ? 'conflict' : 'error');
              throw err;
            },
          );
        };
        wrapped.set(property, method);
      }
      return method;
    },
  });
}
