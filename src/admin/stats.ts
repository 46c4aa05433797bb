/**
 * Per-command counters for the admin API: requests, errors and latency per minute, in the state store so that every
 * instance of a stateless deployment adds to the same numbers.
 *
 * A store write per request would double the writes of an idle device (each Ping) and add a round trip to every
 * answer on Lambda, so each process adds its requests up and writes the sums at most every FLUSH_MS (one write per
 * command and minute). What a process had not written when it ends is lost: these are statistics, not state.
 */
import type { LogEntry } from '../log.ts';
import { commandByName } from '../protocol/commands.ts';
import type { CommandStats, StateStore } from '../state/types.ts';

const MINUTE_MS = 60_000;
const FLUSH_MS = 10_000;

interface PendingCounts {
  state: StateStore;
  tenant: string;
  stats: CommandStats;
}

/** Counts not written yet, per store; WeakMap so that a store a test throws away takes its counts with it. */
const pendingByStore = new WeakMap<StateStore, { since: number; counts: Map<string, PendingCounts> }>();

/**
 * Adds one finished request (its log line) to the counters. A failing store is ignored: counting never fails a request.
 */
export async function countRequest(
  state: StateStore,
  tenant: string,
  entry: LogEntry,
  started: number,
  now = Date.now(),
): Promise<void> {
  const ms = typeof entry.ms === 'number' ? entry.ms : now - started;
  const error = serverFailed(entry);
  const minute = Math.floor(started / MINUTE_MS);
  const command = countedCommand(entry);
  let pending = pendingByStore.get(state);
  if (!pending) {
    pending = { since: now, counts: new Map() };
    pendingByStore.set(state, pending);
  }
  const key = JSON.stringify([tenant, minute, command]);
  const counted = pending.counts.get(key);
  if (counted) {
    counted.stats.requests += 1;
    counted.stats.errors += error ? 1 : 0;
    counted.stats.totalMs += ms;
    counted.stats.maxMs = Math.max(counted.stats.maxMs, ms);
  } else {
    pending.counts.set(key, {
      state,
      tenant,
      stats: { minute, command, requests: 1, errors: error ? 1 : 0, totalMs: ms, maxMs: ms },
    });
  }
  if (now - pending.since >= FLUSH_MS) await flushCounts(state, now);
}

/**
 * The command a request is counted under: the protocol's names only (and OPTIONS), since a name a request made up
 * would be a row kept for a week (and a new time series in the metrics).
 */
export function countedCommand(entry: LogEntry): string {
  return typeof entry.cmd === 'string' && (entry.cmd === 'OPTIONS' || commandByName(entry.cmd) === entry.cmd)
    ? entry.cmd
    : 'unknown';
}

/** Whether the server failed the request: an error is what it could not do (5xx, a command that failed); refusals and 4xx are answers. */
export function serverFailed(entry: LogEntry): boolean {
  const http = typeof entry.http === 'number' ? entry.http : 0;
  return http >= 500 || (entry.error !== undefined && http === 200);
}

/** Writes this process's counts for the store (before reading them back, and every FLUSH_MS). */
export async function flushCounts(state: StateStore, now = Date.now()): Promise<void> {
  const pending = pendingByStore.get(state);
  if (!pending || pending.counts.size === 0) return;
  const counts = [...pending.counts.values()];
  pending.counts = new Map();
  pending.since = now;
  await Promise.all(
    counts.map((c) =>
      c.state.addCommandStats(c.tenant, c.stats).catch(() => {
        // see countRequest
      }),
    ),
  );
}

/** One command's numbers over a period. */
export interface CommandSummary {
  command: string;
  requests: number;
  errors: number;
  avgMs: number;
  maxMs: number;
}

/** The counters of the last `minutes` minutes, per command, busiest first. */
export async function commandSummary(
  state: StateStore,
  tenant: string,
  minutes: number,
  now = Date.now(),
): Promise<CommandSummary[]> {
  const since = Math.floor(now / MINUTE_MS) - minutes + 1;
  await flushCounts(state, now);
  const byCommand = new Map<string, CommandStats>();
  for (const s of await state.readCommandStats(tenant, since)) {
    const sum = byCommand.get(s.command);
    if (!sum) byCommand.set(s.command, { ...s });
    else {
      sum.requests += s.requests;
      sum.errors += s.errors;
      sum.totalMs += s.totalMs;
      sum.maxMs = Math.max(sum.maxMs, s.maxMs);
    }
  }
  return [...byCommand.values()]
    .map((s) => ({
      command: s.command,
      requests: s.requests,
      errors: s.errors,
      avgMs: s.requests ? Math.round(s.totalMs / s.requests) : 0,
      maxMs: s.maxMs,
    }))
    .sort((a, b) => b.requests - a.requests || a.command.localeCompare(b.command));
}

/** One period of a series: the requests, errors and summed latency per command in it. */
export interface SeriesBucket {
  /** Epoch ms of the period's start. */
  start: number;
  commands: Record<string, { requests: number; errors: number; totalMs: number }>;
}

/**
 * The counters of the last `minutes` minutes in periods of `bucketMinutes` (oldest first, empty periods included),
 * for the console's charts.
 */
export async function commandSeries(
  state: StateStore,
  tenant: string,
  minutes: number,
  bucketMinutes: number,
  now = Date.now(),
): Promise<SeriesBucket[]> {
  const lastMinute = Math.floor(now / MINUTE_MS);
  const firstBucket = Math.floor((lastMinute - minutes + 1) / bucketMinutes);
  const buckets: SeriesBucket[] = [];
  for (let b = firstBucket; b <= Math.floor(lastMinute / bucketMinutes); b++)
    buckets.push({ start: b * bucketMinutes * MINUTE_MS, commands: {} });
  await flushCounts(state, now);
  for (const s of await state.readCommandStats(tenant, firstBucket * bucketMinutes)) {
    const bucket = buckets[Math.floor(s.minute / bucketMinutes) - firstBucket];
    if (!bucket) continue;
    const sum = bucket.commands[s.command] ?? { requests: 0, errors: 0, totalMs: 0 };
    bucket.commands[s.command] = sum;
    sum.requests += s.requests;
    sum.errors += s.errors;
    sum.totalMs += s.totalMs;
  }
  return buckets;
}
