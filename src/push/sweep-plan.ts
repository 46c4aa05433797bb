/**
 * What the Cloudflare cron sweeps (DESIGN §5.3): how long an invocation keeps sweeping, how its 6 connections are
 * shared among tenants, how a tenant with more leased accounts than one invocation sweeps is split into slices for
 * other invocations (planSweep, sent through src/push/sweep-fanout.ts), and the isolate's memory of accounts' feeds.
 * The Worker's `scheduled` and slice route only read their bindings and call cronSweep / sliceRoute.
 */
import type { ServerConfig } from '../config.ts';
import type { LogSink } from '../log.ts';
import { LEASE_SHARDS, type StateStore } from '../state/types.ts';
import { dispatchSlice, handleSliceRequest, type SweepDispatcher } from './sweep-fanout.ts';
import { sweep, SweepMemo, type SweepReport, type SweepSlice } from './sweep.ts';

/**
 * How long one cron invocation keeps sweeping: passes every 10 s, the last one starting before the next minute's cron.
 */
export const SWEEP_FOR_MS = 50_000;
/** Workers allow 6 simultaneous outbound connections per invocation. */
export const SWEEP_CONNECTIONS = 6;
/**
 * Accounts one invocation sweeps per pass (SWEEP_ACCOUNTS_PER_INVOCATION): 6 connections, ~1 s per account, 10 s
 * passes.
 */
const DEFAULT_ACCOUNTS_PER_INVOCATION = 60;

/**
 * Splits a tenant's shards (`leases[shard]` = how many leases it has now) into invocations of at most `capacity`
 * accounts: small shards are packed together, a shard bigger than `capacity` is split into parts by sweepPart.
 * Empty shards go with the first slice (the cron's own), so a lease written meanwhile is still swept.
 */
export function planSweep(leases: readonly number[], capacity: number): SweepSlice[] {
  const slices: SweepSlice[] = [{ shards: [] }];
  let open = slices[0]!;
  let load = 0;
  leases.forEach((count, shard) => {
    if (count === 0) {
      slices[0]!.shards.push(shard);
      return;
    }
    if (count > capacity) {
      const of = Math.ceil(count / capacity);
      for (let index = 0; index < of; index++) slices.push({ shards: [shard], part: { index, of } });
      return;
    }
    if (load + count > capacity) {
      open = { shards: [] };
      slices.push(open);
      load = 0;
    }
    open.shards.push(shard);
    load += count;
  });
  return slices.filter((s, i) => i === 0 || s.shards.length > 0);
}

/**
 * The sweep's memory of the accounts' feeds, for as long as this isolate lives (saves a feed read per account and
 * minute).
 */
const sweepMemos = new Map<string, SweepMemo>();

/**
 * One per tenant and slice: a sweep forgets the accounts it did not see leased, which would be every other tenant's
 * (or slice's) when they shared one.
 */
export function sweepMemoOf(tenant: string, slice?: SweepSlice): SweepMemo {
  const key = JSON.stringify([tenant, slice?.shards.join(',') ?? '', slice?.part?.index ?? 0, slice?.part?.of ?? 1]);
  let memo = sweepMemos.get(key);
  if (!memo) {
    memo = new SweepMemo();
    sweepMemos.set(key, memo);
  }
  return memo;
}

/** SWEEP_ACCOUNTS_PER_INVOCATION as set, or the default when unset or not a positive integer. */
export function accountsPerInvocation(setting: unknown): number {
  const n = Number(setting);
  return Number.isInteger(n) && n > 0 ? n : DEFAULT_ACCOUNTS_PER_INVOCATION;
}

/** Adds another invocation's report to `into`: counts add up, peaks and pass counts take the larger. */
export function addReports(into: SweepReport, more: SweepReport): void {
  into.passes = Math.max(into.passes, more.passes);
  into.accounts += more.accounts;
  into.logins += more.logins;
  into.written += more.written;
  into.errors += more.errors;
  into.slowestPassMs = Math.max(into.slowestPassMs, more.slowestPassMs);
  into.peakConnections = Math.max(into.peakConnections, more.peakConnections);
}

export interface CronSweepOptions {
  /** Every configured tenant: each one's leases are swept with its own IMAP server and logins. */
  tenants: readonly ServerConfig[];
  state: StateStore;
  log: LogSink;
  /** When the cron fired (epoch ms): the sweep ends SWEEP_FOR_MS after it. */
  scheduledTime: number;
  /** The Worker's binding to itself (SWEEP_SELF); without it one invocation sweeps every slice. */
  self?: SweepDispatcher | undefined;
  /** SWEEP_SECRET, the key slice requests are signed with; without it there is no fan-out. */
  sweepSecret?: string | undefined;
  /** The SWEEP_ACCOUNTS_PER_INVOCATION setting, unparsed. */
  accountsPerInvocation?: unknown;
}

/** The log sinks told already: once per isolate, whose sink is one for its life. */
const noticedNoSweepSecret = new WeakSet<LogSink>();

/**
 * Said once per isolate (the Worker's start-up): SWEEP_SELF is bound but SWEEP_SECRET is not set, so every tenant is
 * swept by the cron's own invocation alone, however many accounts it has.
 */
export function noticeNoSweepSecret(log: LogSink): void {
  if (noticedNoSweepSecret.has(log)) return;
  noticedNoSweepSecret.add(log);
  log({
    time: new Date().toISOString(),
    event: 'sweep-no-secret',
    notice:
      'SWEEP_SELF is bound but SWEEP_SECRET is not set: the sweep does not fan out, one invocation sweeps every account (set it with `wrangler secret put SWEEP_SECRET`)',
  });
}

/** One cron invocation's sweep of every tenant's lease shards; logs one `sweep` line per tenant. */
export async function cronSweep(options: CronSweepOptions): Promise<void> {
  const { tenants, state, log, sweepSecret } = options;
  // Slices go to other invocations only signed, under a key of their own.
  const self = sweepSecret ? options.self : undefined;
  if (options.self && !sweepSecret) noticeNoSweepSecret(log);
  const started = Date.now();
  // Bound to its minute: a run that starts late sweeps less, and never overlaps the next minute's much.
  const until = options.scheduledTime + SWEEP_FOR_MS;
  // The invocation's 6 connections are shared out among the tenants.
  const concurrency = Math.max(1, Math.floor(SWEEP_CONNECTIONS / tenants.length));
  const capacity = accountsPerInvocation(options.accountsPerInvocation);
  await Promise.all(
    tenants.map(async (config) => {
      // More leased accounts than this invocation sweeps in a pass: the other slices go to other invocations.
      let slices: SweepSlice[] = [{ shards: Array.from({ length: LEASE_SHARDS }, (_, i) => i) }];
      if (self) {
        const counts = await Promise.all(
          slices[0]!.shards.map(async (shard) => (await state.listLeases(config.tenant, shard)).length),
        );
        slices = planSweep(counts, capacity);
      }
      const [own, ...others] = slices;
      const dav = { caldavUrl: config.caldavUrl, carddavUrl: config.carddavUrl };
      const reports = await Promise.all([
        sweep({
          state,
          tenant: config.tenant,
          imap: config.imap,
          push: config.push,
          dav,
          log,
          until,
          memo: sweepMemoOf(config.tenant, own),
          concurrency,
          shards: own!.shards,
        }),
        ...others.map((slice) =>
          dispatchSlice(self!, sweepSecret!, { tenant: config.tenant, slice, until }).catch((err: unknown) => {
            log({
              time: new Date().toISOString(),
              tenant: config.tenant,
              event: 'sweep-fanout-error',
              shards: slice.shards.join(','),
              error: String(err),
            });
            return { passes: 0, accounts: 0, logins: 0, written: 0, errors: 1, slowestPassMs: 0, peakConnections: 0 };
          }),
        ),
      ]);
      const report = reports[0]!;
      for (const more of reports.slice(1)) addReports(report, more);
      log({
        time: new Date().toISOString(),
        tenant: config.tenant,
        event: 'sweep',
        ms: Date.now() - started,
        invocations: slices.length,
        ...report,
      });
    }),
  );
}

/**
 * Another invocation's share of the cron sweep (SWEEP_PATH): verified by handleSliceRequest, swept with this isolate's
 * memo.
 */
export function sliceRoute(
  request: Request,
  deps: {
    tenant(name: string): ServerConfig | undefined;
    state: StateStore;
    sweepSecret: string | undefined;
    log: LogSink;
  },
): Promise<Response> {
  return handleSliceRequest(request, { ...deps, memoFor: sweepMemoOf, concurrency: SWEEP_CONNECTIONS });
}
