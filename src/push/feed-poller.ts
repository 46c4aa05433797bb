/**
 * One feed read per user and poll interval for all of that user's waiting requests in this process (push/wait.ts):
 * a user with ten pinging devices costs one read every PING_POLL_SECONDS instead of ten, and a request waits on a
 * listener instead of a timer, a promise and a read of its own each interval.
 *
 * Only a coalescing of reads: every waiting request still sees a read of the feed at least once per interval while it
 * waits (the user's interval runs while any of its requests waits), and one read that began after each wake
 * (`readNow`: the in-process watcher wrote). Other processes (another Node instance, a Workers isolate, a Lambda)
 * have their own poller and read the same feed; nothing here is needed for correctness.
 */
import type { FeedEntry, StateStore, UserScope } from '../state/types.ts';

/** A waiting request's view of each read: the entries, or why the read failed. */
export type FeedListener = (read: { feed: FeedEntry[] } | { error: unknown }) => void;

interface UserPoll {
  user: UserScope;
  listeners: Set<FeedListener>;
  interval: ReturnType<typeof setInterval>;
  /** A read is under way. */
  reading: boolean;
  /** Read again when the one under way ends: a wake came after it began. */
  again: boolean;
  /** A read is queued for the end of this tick (wakes in one tick share it). */
  queued: boolean;
}

export class FeedPoller {
  private readonly users = new Map<string, UserPoll>();

  constructor(
    private readonly state: StateStore,
    private readonly pollMs: number,
  ) {}

  /** Calls `listener` with each read of the user's feed until the returned function is called. */
  subscribe(user: UserScope, listener: FeedListener): () => void {
    const key = userKey(user);
    let poll = this.users.get(key);
    if (!poll) {
      const interval = setInterval(() => this.read(poll!), this.pollMs);
      // The held requests keep the process alive, not their poll.
      interval.unref?.();
      poll = { user, listeners: new Set(), interval, reading: false, again: false, queued: false };
      this.users.set(key, poll);
    }
    poll.listeners.add(listener);
    const mine = poll;
    return () => {
      mine.listeners.delete(listener);
      if (mine.listeners.size === 0 && this.users.get(key) === mine) {
        clearInterval(mine.interval);
        this.users.delete(key);
      }
    };
  }

  /** Reads the user's feed soon for its waiting requests (once for all wakes in this tick), after any read under way. */
  readNow(user: UserScope): void {
    const poll = this.users.get(userKey(user));
    if (!poll || poll.queued) return;
    poll.queued = true;
    queueMicrotask(() => {
      poll.queued = false;
      if (poll.reading) poll.again = true;
      else this.read(poll);
    });
  }

  private read(poll: UserPoll): void {
    // A slow store: the read under way serves this interval too.
    if (poll.reading) return;
    poll.reading = true;
    poll.again = false;
    this.state.readFeed(poll.user).then(
      (feed) => this.deliver(poll, { feed }),
      (error: unknown) => this.deliver(poll, { error }),
    );
  }

  private deliver(poll: UserPoll, read: { feed: FeedEntry[] } | { error: unknown }): void {
    poll.reading = false;
    // A copy: listeners unsubscribe while being called.
    for (const listener of [...poll.listeners]) listener(read);
    if (poll.again && poll.listeners.size > 0) this.read(poll);
  }
}

function userKey(u: UserScope): string {
  return `${u.tenant.length}:${u.tenant}${u.user}`;
}

const pollers = new WeakMap<StateStore, Map<number, FeedPoller>>();

/** The process's poller for a store and poll interval (a store opened per request gets its own, and shares nothing). */
export function feedPollerOf(state: StateStore, pollMs: number): FeedPoller {
  let byInterval = pollers.get(state);
  if (!byInterval) {
    byInterval = new Map();
    pollers.set(state, byInterval);
  }
  let poller = byInterval.get(pollMs);
  if (!poller) {
    poller = new FeedPoller(state, pollMs);
    byInterval.set(pollMs, poller);
  }
  return poller;
}
