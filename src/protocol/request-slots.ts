/**
 * Requests one user may have running at once (MAX_CONCURRENT_REQUESTS_PER_USER, like Exchange's EasMaxConcurrency):
 * so that one user's many parallel heavy requests (large Syncs, ItemOperations, SendMail) cannot occupy the process
 * while other users wait. A request over the cap is refused before its body is read, with HTTP 503 and Retry-After,
 * the answer MS-ASHTTP gives for a server that throttles a client (devices back off and retry; a Status would make
 * some of them resync).
 *
 * Waiting is no work: a Ping or a hanging Sync gives its slot back while it waits (RequestSlot.release), so a user's
 * devices that push never fill the cap, and a newer Ping of a device still ends its older one (push/wait.ts). A hanging
 * Sync that woke up to a change takes a slot again before syncing (RequestSlot.retake); without one it answers as if
 * its wait had ended, and the device's next Sync brings the change.
 *
 * The count is per process: a Node process (or each of several behind a load balancer), a Workers isolate, a warm
 * Lambda instance. On Lambda an instance serves one request at a time, so the cap there is the function's reserved
 * concurrency (infra/aws), shared by all users; on Workers isolates come and go with load, so the cap holds per
 * isolate, not per user across the platform.
 *
 * Large bodies have a cap of their own (MAX_LARGE_BODIES_PER_USER bodies over LARGE_BODY_BYTES): what a request costs
 * the process grows with its body (reading, decoding, the tree), so a user may have many small requests running but
 * only a few large ones. A body counts as large from its Content-Length, before any of it is read, or, sent without
 * one (chunked), once the part read passes the threshold; over the cap the request gets the same 503 and the rest
 * of its body is not read. It counts until the body is read and decoded, not to the request's end: a hanging Sync
 * with a large body does not hold the user's one place while it waits.
 */
import { HttpError } from './errors.ts';

/** What a request over the cap is told to wait, in seconds. */
const RETRY_AFTER_SECONDS = 5;

/** A request's place under its user's cap. */
export interface RequestSlot {
  /** Gives the slot back (at the end, or while the request only waits); a second call does nothing. */
  release(): void;
  /** Takes a slot again after release; false when the user has no free one now. */
  retake(): boolean;
}

/** Thrown for a request over its user's cap: HTTP 503 with Retry-After. */
export class TooManyRequestsError extends HttpError {
  constructor(reason = 'too many concurrent requests of this user') {
    super(503, reason, { 'Retry-After': String(RETRY_AFTER_SECONDS) });
  }
}

const inFlight = new Map<string, number>();
const largeInFlight = new Map<string, number>();

/** How many requests of this user run now in this process (tests). */
export function runningRequests(tenant: string, login: string): number {
  return inFlight.get(userKey(tenant, login)) ?? 0;
}

/** How many large bodies of this user are in flight now in this process (tests). */
export function largeBodiesInFlight(tenant: string, login: string): number {
  return largeInFlight.get(userKey(tenant, login)) ?? 0;
}

/**
 * Counts one large body of the user until the returned function is called (once the body is decoded), or throws
 * TooManyRequestsError when the user has `limit` in flight already; a limit of 0 takes no count.
 */
export function takeLargeBodySlot(tenant: string, login: string, limit: number): () => void {
  if (limit <= 0) return () => {};
  const key = userKey(tenant, login);
  const running = largeInFlight.get(key) ?? 0;
  if (running >= limit) throw new TooManyRequestsError('too many large request bodies of this user at once');
  largeInFlight.set(key, running + 1);
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    const left = (largeInFlight.get(key) ?? 1) - 1;
    if (left > 0) largeInFlight.set(key, left);
    else largeInFlight.delete(key);
  };
}

function userKey(tenant: string, login: string): string {
  return `${tenant}\n${login.toLowerCase()}`;
}

/** A slot for one request of the user, or TooManyRequestsError; a limit of 0 takes no count. */
export function takeRequestSlot(tenant: string, login: string, limit: number): RequestSlot {
  if (limit <= 0) return { release() {}, retake: () => true };
  const key = userKey(tenant, login);
  const take = (): boolean => {
    const running = inFlight.get(key) ?? 0;
    if (running >= limit) return false;
    inFlight.set(key, running + 1);
    return true;
  };
  if (!take()) throw new TooManyRequestsError();
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      const left = (inFlight.get(key) ?? 1) - 1;
      if (left > 0) inFlight.set(key, left);
      else inFlight.delete(key);
    },
    retake() {
      if (held) return true;
      held = take();
      return held;
    },
  };
}
