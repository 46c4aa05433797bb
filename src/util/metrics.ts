/**
 * What the server reports for operators (issue 19): the events the instrumentation points name, and the sinks that
 * receive them. The runtime installs its sink with addMetricsSink (Node: prom-client for GET /metrics; Lambda:
 * CloudWatch embedded metric format lines; Workers: Analytics Engine or log lines), and the app adds the admin API's
 * live view (admin/activity.ts); with none installed a report costs one empty loop. A sink never throws into the code
 * that reports: a failing sink is skipped.
 *
 * Instrumentation points import only this module (the lowest layer), never a sink: nothing imports upward.
 */

/** One finished request, from its log line. */
export interface RequestReport {
  tenant: string;
  /** The ActiveSync command, OPTIONS, or 'unknown' (a name no client may invent: it would be a new time series). */
  command: string;
  /** The HTTP status of the answer. */
  http: number;
  ms: number;
  /** Whether the server failed (5xx, or a command that failed inside a 200 answer). */
  failed: boolean;
  user?: string;
  deviceId?: string;
  deviceType?: string;
  /** The log line's error text, when it has one. */
  error?: string;
}

/** Whose request waits: a held Ping or a hanging Sync. */
export interface Waiter {
  tenant: string;
  user: string;
  deviceId: string;
}

export type WaitKind = 'ping' | 'sync';

/** How a state store operation ended: a conflict is a conditional write another request won (StateConflictError). */
export type StateOutcome = 'ok' | 'conflict' | 'error';

/** The events; a sink implements those it records. */
export interface MetricsSink {
  request?(report: RequestReport): void;
  /** A Ping (or a hanging Sync) starts (+1) or stops (−1) waiting for changes. */
  waiting?(kind: WaitKind, delta: 1 | -1, waiter: Waiter): void;
  /** An IMAP connection for requests opened (+1) or closed (−1). */
  imapSessionsOpen?(delta: 1 | -1): void;
  /** A logged-in connection was put in the pool for the user's next request (+1) or taken out (−1). */
  imapSessionsPooled?(delta: 1 | -1): void;
  /** An IMAP login for a request: the server accepted it, or refused the credentials. */
  imapLogin?(ok: boolean): void;
  /** The push watcher started (+1) or stopped (−1) watching an account. */
  watcherAccounts?(delta: 1 | -1): void;
  /** Seconds from a change entering the feed to a waiting request that answers with it. */
  feedLag?(seconds: number): void;
  /** One call of the state store. */
  stateOperation?(operation: string, outcome: StateOutcome): void;
}

const sinks = new Set<MetricsSink>();

/** Installs a sink; returns what uninstalls it. */
export function addMetricsSink(sink: MetricsSink): () => void {
  sinks.add(sink);
  return () => sinks.delete(sink);
}

function each(report: (sink: MetricsSink) => void): void {
  for (const sink of sinks) {
    try {
      report(sink);
    } catch {
      // A sink's failure is the sink's: the request it measures goes on.
    }
  }
}

/** Where the instrumentation points report: every installed sink. */
export const metrics: Required<MetricsSink> = {
  request: (report) => each((s) => s.request?.(report)),
  waiting: (kind, delta, waiter) => each((s) => s.waiting?.(kind, delta, waiter)),
  imapSessionsOpen: (delta) => each((s) => s.imapSessionsOpen?.(delta)),
  imapSessionsPooled: (delta) => each((s) => s.imapSessionsPooled?.(delta)),
  imapLogin: (ok) => each((s) => s.imapLogin?.(ok)),
  watcherAccounts: (delta) => each((s) => s.watcherAccounts?.(delta)),
  feedLag: (seconds) => each((s) => s.feedLag?.(seconds)),
  stateOperation: (operation, outcome) => each((s) => s.stateOperation?.(operation, outcome)),
};

/** Reports a wait from its start to its end, whatever way it ends. */
export async function measuredWait<T>(kind: WaitKind, waiter: Waiter, wait: () => Promise<T>): Promise<T> {
  metrics.waiting(kind, 1, waiter);
  try {
    return await wait();
  } finally {
    metrics.waiting(kind, -1, waiter);
  }
}
