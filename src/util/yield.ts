/**
 * Giving the event loop a turn in the middle of long work (decoding a large WBXML body), so that other requests'
 * I/O callbacks run in between. A macrotask, not a microtask: `await Promise.resolve()` would run before any I/O.
 *
 * Node and Lambda: setImmediate, which runs right after the poll phase (the I/O that is ready) and, unlike
 * setTimeout, is not held back to a 1 ms minimum. workerd has no setImmediate: setTimeout(0) there queues the
 * continuation behind the isolate's other ready events.
 */
type Immediate = (callback: () => void) => unknown;

const immediate: Immediate | undefined = (globalThis as { setImmediate?: Immediate }).setImmediate;

/** Resolves on a later turn of the event loop, after the I/O that is ready now has been handled. */
export function nextMacrotask(): Promise<void> {
  return new Promise<void>((resolve) => {
    if (immediate) immediate(resolve);
    else setTimeout(resolve, 0);
  });
}
