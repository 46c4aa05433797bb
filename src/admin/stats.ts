/**
 * Per-command counters for the admin API: requests, errors and latency per minute, in the state store so that every
 * instance of a stateless deployment adds to the same numbers. One counter update per request.
 */
import type { LogEntry } from '../log.ts';
import type { CommandStats, StateStore } from '../state/types.ts';

const MINUTE_MS = 60_000;

/** Adds one finished request (its log line) to the counters. A failing store is ignored: counting never fails a request. */
export async function countRequest(state: StateStore, tenant: string, entry: LogEntry, started: number): Promise<void> {
  const ms = typeof entry.ms === 'number' ? entry.ms : Date.now() - started;
  const http = typeof entry.http === 'number' ? entry.http : 0;
  // An error is what the server could not do (5xx, a command that failed); refusals and 4xx are answers.
  const error = http >= 500 || (entry.error !== undefined && http === 200);
  try {
    await state.addCommandStats(tenant, {
      minute: Math.floor(started / MINUTE_MS),
      command: typeof entry.cmd === 'string' && entry.cmd !== '' ? entry.cmd : 'unknown',
      requests: 1,
      errors: error ? 1 : 0,
      totalMs: ms,
      maxMs: ms,
    });
  } catch {
    // see above
  }
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
export async function commandSummary(state: StateStore, tenant: string, minutes: number, now = Date.now()): Promise<CommandSummary[]> {
  const since = Math.floor(now / MINUTE_MS) - minutes + 1;
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
    .map((s) => ({ command: s.command, requests: s.requests, errors: s.errors, avgMs: s.requests ? Math.round(s.totalMs / s.requests) : 0, maxMs: s.maxMs }))
    .sort((a, b) => b.requests - a.requests || a.command.localeCompare(b.command));
}
