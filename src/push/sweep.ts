/**
 * The push watcher's sweep strategy (DESIGN §5.3; shared parts in src/push/watch-shared.ts), for Cloudflare's cron,
 * which allows 6 simultaneous connections per invocation and bills Durable Objects for wall time. Per pass and shard:
 * list the leases; per account (6 at a time) log in, LIST, STATUS of INBOX and the watched folders, read the watched
 * DAV collections' tokens, log out. Passes repeat every `passIntervalMs` until `until`. What one invocation sweeps,
 * and how a big tenant is split over several, is decided in src/push/sweep-plan.ts.
 */
import { leaseShard } from '../state/shard.ts';
import { fnv1a32 } from '../util/fnv.ts';
import { LEASE_SHARDS, type WatchLease } from '../state/types.ts';
import { watcherAuth } from './credentials.ts';
import { pushHub, type PushHub } from './feed.ts';
import {
  allShards,
  checkAccount,
  davSourceFor,
  errorText,
  FeedMemo,
  newClient,
  userKeyOf,
  type WatcherOptions,
} from './watch-shared.ts';

export interface SweepOptions extends WatcherOptions {
  /** Simultaneous IMAP connections (Workers allow 6 per invocation). */
  concurrency?: number;
  /** Start another pass every this often (default 10 s) until `until` (epoch ms); one pass without `until`. */
  passIntervalMs?: number;
  until?: number;
  /** Ends the sweep after the current pass (a process shutting down). */
  signal?: AbortSignal;
  /**
   * What the sweep remembers of each account's feed. Pass the same one to consecutive sweeps (on Workers,
   * sweep-plan.ts keeps one per tenant and slice for the isolate's life) and an unchanged account costs no state read
   * either, until its next Ping.
   */
  memo?: SweepMemo;
  /** Only this part of the shards' accounts (sweepPart), when a shard is split over several invocations. */
  part?: { index: number; of: number };
}

/** One invocation's share of a fanned-out sweep (sweep-plan.ts planSweep): whole shards, or one part of a big one. */
export interface SweepSlice {
  shards: number[];
  part?: { index: number; of: number };
}

/** Which part (of `of`) an account falls in within its shard: hash bits other than the shard's. */
export function sweepPart(user: string, of: number): number {
  return Math.floor(fnv1a32(user) / LEASE_SHARDS) % of;
}

export interface SweepReport {
  passes: number;
  accounts: number;
  logins: number;
  written: number;
  errors: number;
  /** The slowest pass, ms. */
  slowestPassMs: number;
  /** The most IMAP connections open at once (at most `concurrency`). */
  peakConnections: number;
}

/** What a sweep remembers between its passes: per account the markers and the lease end it last read them at. */
export class SweepMemo {
  readonly accounts = new Map<string, { memo: FeedMemo; until: number; shard: number }>();
}

/**
 * The sweep strategy (Cloudflare cron): per pass, per shard, the leased accounts are logged in to, checked (LIST,
 * STATUS of INBOX and the watched folders) and logged out of, `concurrency` at a time. The user's feed is read once
 * per account and sweep (again when a newer lease shows a new Ping), so an unchanged account costs one login and a
 * few STATUS per pass and no state writes.
 */
export async function sweep(options: SweepOptions): Promise<SweepReport> {
  const hub = options.hub ?? pushHub;
  const memo = options.memo ?? new SweepMemo();
  const report: SweepReport = {
    passes: 0,
    accounts: 0,
    logins: 0,
    written: 0,
    errors: 0,
    slowestPassMs: 0,
    peakConnections: 0,
  };
  const open = { now: 0 };
  const shards: readonly number[] = options.shards ?? allShards();
  const interval = options.passIntervalMs ?? 10_000;
  for (;;) {
    const passStarted = Date.now();
    const leases: WatchLease[] = [];
    for (const shard of shards) leases.push(...(await options.state.listLeases(options.tenant, shard)));
    if (options.part) {
      const { index, of } = options.part;
      leases.splice(0, leases.length, ...leases.filter((l) => sweepPart(l.user, of) === index));
    }
    // Forget accounts nobody pings any more (this sweep's shards only: a shared memo may serve other shards too).
    const leased = new Set(leases.map(userKeyOf));
    for (const [key, known] of memo.accounts)
      if (!leased.has(key) && shards.includes(known.shard)) memo.accounts.delete(key);
    report.passes++;
    report.accounts = Math.max(report.accounts, leases.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < leases.length) {
        const lease = leases[next++]!;
        try {
          report.written += await sweepAccount(options, hub, memo, lease, report, open);
        } catch (err) {
          report.errors++;
          options.log?.({
            time: new Date().toISOString(),
            tenant: lease.tenant,
            user: lease.user,
            event: 'sweep-error',
            error: errorText(err),
          });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 6, leases.length) }, worker));
    report.slowestPassMs = Math.max(report.slowestPassMs, Date.now() - passStarted);
    if (options.until === undefined || options.signal?.aborted) return report;
    const wait = passStarted + interval - Date.now();
    if (Date.now() + Math.max(0, wait) >= options.until) return report;
    if (wait > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(finish, wait);
        function finish(): void {
          clearTimeout(timer);
          options.signal?.removeEventListener('abort', finish);
          resolve();
        }
        options.signal?.addEventListener('abort', finish);
      });
      if (options.signal?.aborted) return report;
    }
  }
}

async function sweepAccount(
  options: SweepOptions,
  hub: PushHub,
  memos: SweepMemo,
  lease: WatchLease,
  report: SweepReport,
  open: { now: number },
): Promise<number> {
  const key = userKeyOf(lease);
  let known = memos.accounts.get(key);
  if (!known || lease.until > known.until) {
    const memo = known?.memo ?? new FeedMemo(options.state, lease, hub);
    await memo.load();
    known = { memo, until: lease.until, shard: leaseShard(lease.user) };
    memos.accounts.set(key, known);
  }
  const auth = await watcherAuth(options.push, lease);
  if (!auth) return 0;
  const client = newClient(options.imap, auth, false);
  report.logins++;
  report.peakConnections = Math.max(report.peakConnections, ++open.now);
  try {
    await client.connect();
    const found = await checkAccount(
      client,
      known.memo,
      await davSourceFor(options, lease, known.memo.watched, undefined),
    );
    return await known.memo.write(found);
  } finally {
    if (client.usable) await client.logout().catch(() => client.close());
    else client.close();
    open.now--;
  }
}
