/**
 * A promise started ahead of the step that needs it (a read beside another read, a LIST while SMTP submits), held
 * as its outcome so that a failure surfaces where the value is used, and never as an unhandled rejection meanwhile.
 */
export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

export function settle<T>(promise: Promise<T>): Promise<Settled<T>> {
  return promise.then(
    (value) => ({ ok: true, value }),
    (error: unknown) => ({ ok: false, error }),
  );
}

/** The value, or the error thrown again. */
export function settledValue<T>(settled: Settled<T>): T {
  if (!settled.ok) throw settled.error;
  return settled.value;
}
