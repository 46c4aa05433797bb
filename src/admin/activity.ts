/**
 * What is going on now, for `activesync-edge top` and the admin console (GET /admin/live): requests per second per
 * command, open Pings, the slowest and the failing requests with user and device, the push watcher.
 *
 * Two sources, so that it works on every runtime:
 * - the state store, which every instance of a stateless deployment shares: the per-command counters (stats.ts) for
 *   the rates, and the watch leases for the accounts whose devices wait for changes;
 * - this instance's memory (processActivity, a metrics sink of util/metrics.ts): the recent requests with their user
 *   and device, the Pings and hanging Syncs held now, the watcher's accounts and feed lag. On Node that is the whole
 *   server; on Workers and Lambda it is the isolate or container that answered the feed request.
 */
import type { LogEntry } from '../log.ts';
import { LEASE_SHARDS, type StateStore } from '../state/types.ts';
import type { MetricsSink, RequestReport, WaitKind, Waiter } from '../util/metrics.ts';
import { commandSummary, countedCommand, serverFailed } from './stats.ts';

/** How far back this instance remembers requests, and how many at most. */
const RECENT_MS = 10 * 60_000;
const RECENT_MAX = 5_000;
/** How many slowest and failing requests the feed lists. */
const LISTED = 10;

/** A finished request as the live view lists it. */
export interface RecentRequest {
  time: string;
  command: string;
  http: number;
  ms: number;
  /** Of `ms`, the time a Ping or hanging Sync waited for changes: not work, so not what makes a request slow. */
  waitedMs?: number;
  user?: string;
  deviceId?: string;
  deviceType?: string;
  error?: string;
}

/** A Ping or hanging Sync waiting now. */
export interface OpenWait {
  kind: WaitKind;
  user: string;
  deviceId: string;
  since: string;
  seconds: number;
}

export interface LiveSnapshot {
  at: string;
  tenant: string;
  /** The seconds the rates are over: the last full minute and the current one so far. */
  windowSeconds: number;
  commands: { command: string; requests: number; perSecond: number; errors: number; avgMs: number; maxMs: number }[];
  pings: {
    /** Accounts with an unexpired watch lease: a device of theirs waits, on any instance. */
    leasedAccounts: number;
    /** Held here now. */
    held: number;
    hangingSyncs: number;
    waiting: OpenWait[];
  };
  /** The slowest requests of the last 10 minutes (by work: time waited for changes left out), here. */
  slowest: RecentRequest[];
  /** The latest requests the server failed or refused (HTTP ≥ 400 but 449, or a failed command), here. */
  failing: RecentRequest[];
  watcher: {
    /** Accounts this instance's push watcher holds a connection for (Node; a Lambda watcher run is its own function). */
    watchedHere: number;
    /** Seconds from a change entering the feed to a waiting request answering with it, the last and the most. */
    feedLagSeconds?: { last: number; max: number; samples: number };
  };
  /** What the lists come from: this instance (see the module comment). */
  scope: 'instance';
}

interface Recorded extends RecentRequest {
  tenant: string;
  at: number;
  failed: boolean;
}

/** One instance's recent requests, held waits and watcher, fed by util/metrics.ts. */
export class Activity implements MetricsSink {
  private recent: Recorded[] = [];
  private readonly waits = new Map<string, { kind: WaitKind; waiter: Waiter; since: number }>();
  /** The last wait of each device and kind, for the request that ends it. */
  private readonly waited = new Map<string, number>();
  private watched = 0;
  private lag: { last: number; max: number; samples: number; since: number } | undefined;

  request(report: RequestReport): void {
    const now = Date.now();
    const waitKey = report.deviceId
      ? keyOf(report.command === 'Ping' ? 'ping' : 'sync', {
          tenant: report.tenant,
          user: report.user ?? '',
          deviceId: report.deviceId,
        })
      : undefined;
    const waitedMs = waitKey ? this.waited.get(waitKey) : undefined;
    if (waitKey) this.waited.delete(waitKey);
    this.recent.push({
      tenant: report.tenant,
      at: now,
      failed: report.failed || (report.http >= 400 && report.http !== 449 && report.user !== undefined),
      time: new Date(now - report.ms).toISOString(),
      command: report.command,
      http: report.http,
      ms: report.ms,
      ...(waitedMs !== undefined ? { waitedMs } : {}),
      ...(report.user !== undefined ? { user: report.user } : {}),
      ...(report.deviceId !== undefined ? { deviceId: report.deviceId } : {}),
      ...(report.deviceType !== undefined ? { deviceType: report.deviceType } : {}),
      ...(report.error !== undefined ? { error: report.error } : {}),
    });
    if (this.recent.length > RECENT_MAX * 1.2) this.recent = this.recent.slice(-RECENT_MAX);
  }

  waiting(kind: WaitKind, delta: 1 | -1, waiter: Waiter): void {
    const key = keyOf(kind, waiter);
    if (delta > 0) {
      this.waits.set(key, { kind, waiter, since: Date.now() });
      return;
    }
    const open = this.waits.get(key);
    if (!open) return;
    this.waits.delete(key);
    this.waited.set(key, Date.now() - open.since);
    // A wait whose request never reported (a dropped connection) must not keep its entry.
    if (this.waited.size > 10_000) this.waited.clear();
  }

  watcherAccounts(delta: 1 | -1): void {
    this.watched = Math.max(0, this.watched + delta);
  }

  feedLag(seconds: number): void {
    const now = Date.now();
    // The most over the last 10 minutes, not since the process started.
    if (!this.lag || now - this.lag.since > RECENT_MS)
      this.lag = { last: seconds, max: seconds, samples: 1, since: now };
    else this.lag = { ...this.lag, last: seconds, max: Math.max(this.lag.max, seconds), samples: this.lag.samples + 1 };
  }

  /** This instance's part of the snapshot, for one tenant. */
  local(
    tenant: string,
    now = Date.now(),
  ): Pick<LiveSnapshot, 'slowest' | 'failing' | 'watcher'> & {
    waiting: OpenWait[];
  } {
    this.recent = this.recent.filter((r) => now - r.at <= RECENT_MS);
    const mine = this.recent.filter((r) => r.tenant === tenant);
    const work = (r: Recorded): number => r.ms - (r.waitedMs ?? 0);
    const listed = ({ tenant: _t, at: _a, failed: _f, ...r }: Recorded): RecentRequest => r;
    const waiting = [...this.waits.values()]
      .filter((w) => w.waiter.tenant === tenant)
      .sort((a, b) => a.since - b.since)
      .map((w) => ({
        kind: w.kind,
        user: w.waiter.user,
        deviceId: w.waiter.deviceId,
        since: new Date(w.since).toISOString(),
        seconds: Math.round((now - w.since) / 1000),
      }));
    return {
      slowest: [...mine]
        .sort((a, b) => work(b) - work(a))
        .slice(0, LISTED)
        .map(listed),
      failing: mine
        .filter((r) => r.failed)
        .slice(-LISTED)
        .reverse()
        .map(listed),
      waiting,
      watcher: {
        watchedHere: this.watched,
        ...(this.lag && now - this.lag.since <= RECENT_MS
          ? { feedLagSeconds: { last: this.lag.last, max: this.lag.max, samples: this.lag.samples } }
          : {}),
      },
    };
  }
}

function keyOf(kind: WaitKind, w: Waiter): string {
  return JSON.stringify([kind, w.tenant, w.user.toLowerCase(), w.deviceId]);
}

/** This process's activity; the app installs it as a metrics sink (app/build.ts). */
export const processActivity = new Activity();

/** A request's log line as the metrics report it. */
export function requestReport(entry: LogEntry, tenant: string, started: number, now = Date.now()): RequestReport {
  const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const user = text(entry.user);
  const deviceId = text(entry.deviceId);
  const deviceType = text(entry.deviceType);
  const error = text(entry.error);
  return {
    tenant,
    command: countedCommand(entry),
    http: typeof entry.http === 'number' ? entry.http : 0,
    ms: typeof entry.ms === 'number' ? entry.ms : now - started,
    failed: serverFailed(entry),
    ...(user !== undefined ? { user } : {}),
    ...(deviceId !== undefined ? { deviceId } : {}),
    ...(deviceType !== undefined ? { deviceType } : {}),
    ...(error !== undefined ? { error } : {}),
  };
}

/** The live view of one tenant: the shared counters and leases, and this instance's activity. */
export async function liveSnapshot(
  state: StateStore,
  tenant: string,
  activity: Activity = processActivity,
  now = Date.now(),
): Promise<LiveSnapshot> {
  const windowSeconds = 60 + (now % 60_000) / 1000;
  const [commands, leases] = await Promise.all([
    commandSummary(state, tenant, 2, now),
    Promise.all(Array.from({ length: LEASE_SHARDS }, (_, shard) => state.listLeases(tenant, shard, now))),
  ]);
  const local = activity.local(tenant, now);
  return {
    at: new Date(now).toISOString(),
    tenant,
    windowSeconds: Math.round(windowSeconds),
    commands: commands.map((c) => ({
      command: c.command,
      requests: c.requests,
      perSecond: Math.round((c.requests / windowSeconds) * 100) / 100,
      errors: c.errors,
      avgMs: c.avgMs,
      maxMs: c.maxMs,
    })),
    pings: {
      leasedAccounts: leases.flat().length,
      held: local.waiting.filter((w) => w.kind === 'ping').length,
      hangingSyncs: local.waiting.filter((w) => w.kind === 'sync').length,
      waiting: local.waiting,
    },
    slowest: local.slowest,
    failing: local.failing,
    watcher: local.watcher,
    scope: 'instance',
  };
}
