/**
 * Cloudflare Workers runtime: the Worker entry (wrangler.toml `main`). Settings come from the Worker's variables,
 * sync state from the StateObject Durable Objects (binding STATE).
 */
import { EventEmitter } from 'node:events';
import type { Hono } from 'hono';
import { createApp } from '../../app/app.ts';
import { imapAuthenticator } from '../../backends/imap/authenticate.ts';
import { freshImapSessions } from '../../backends/imap/sessions.ts';
import { defaultRegistry } from '../../commands/index.ts';
import { ConfigError } from '../../config.ts';
import { loadTenants } from '../../tenants/settings.ts';
import { tenantRouter } from '../../app/tenants.ts';
import { stdoutLog } from '../../log.ts';
import { durableObjectStateStore, type StateObject } from '../../state/durable-object.ts';
import { workerdSubmitter } from '../../backends/smtp/cloudflare.ts';
import { planSweep, sweep, SweepMemo, type SweepReport, type SweepSlice } from '../../push/watcher.ts';
import { dispatchSlice, handleSliceRequest, SWEEP_PATH, type SweepDispatcher } from '../../push/sweep-fanout.ts';
import { LEASE_SHARDS } from '../../state/types.ts';

export { StateObject } from '../../state/durable-object.ts';

export interface Env {
  STATE: DurableObjectNamespace<StateObject>;
  /**
   * A service binding to this Worker itself (wrangler.toml `[[services]]`): the cron sweep fans out through it to
   * more invocations, each with its own 6 connections (src/push/sweep-fanout.ts). Without it one invocation sweeps all.
   */
  SWEEP_SELF?: SweepDispatcher;
  /** The settings of src/config.ts (IMAP_HOST, ...), as Worker variables and secrets. */
  [setting: string]: unknown;
}

// imapflow adds more listeners to one socket than Node's default of 10; inside workerd the warning for that crashes.
EventEmitter.defaultMaxListeners = 50;

/** The Worker's settings: its string variables and secrets. */
function settingsOf(env: Env): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

/** How long one cron invocation keeps sweeping: passes every 10 s, the last one starting before the next minute's cron. */
const SWEEP_FOR_MS = 50_000;
/** Workers allow 6 simultaneous outbound connections per invocation. */
const SWEEP_CONNECTIONS = 6;
/** The sweep's memory of the accounts' feeds, for as long as this isolate lives (saves a feed read per account and minute). */
const sweepMemos = new Map<string, SweepMemo>();
/**
 * One per tenant and slice: a sweep forgets the accounts it did not see leased, which would be every other tenant's
 * (or slice's) when they shared one.
 */
function sweepMemoOf(tenant: string, slice?: SweepSlice): SweepMemo {
  const key = JSON.stringify([tenant, slice?.shards.join(',') ?? '', slice?.part?.index ?? 0, slice?.part?.of ?? 1]);
  let memo = sweepMemos.get(key);
  if (!memo) sweepMemos.set(key, (memo = new SweepMemo()));
  return memo;
}

/** Accounts one invocation sweeps per pass (SWEEP_ACCOUNTS_PER_INVOCATION): 6 connections, ~1 s per account, 10 s passes. */
const DEFAULT_ACCOUNTS_PER_INVOCATION = 60;

function accountsPerInvocation(env: Env): number {
  const n = Number(env.SWEEP_ACCOUNTS_PER_INVOCATION);
  return Number.isInteger(n) && n > 0 ? n : DEFAULT_ACCOUNTS_PER_INVOCATION;
}

function sweepSecret(env: Env): string | undefined {
  return typeof env.SWEEP_SECRET === 'string' && env.SWEEP_SECRET !== '' ? env.SWEEP_SECRET : undefined;
}

function addReports(into: SweepReport, more: SweepReport): void {
  into.passes = Math.max(into.passes, more.passes);
  into.accounts += more.accounts;
  into.logins += more.logins;
  into.written += more.written;
  into.errors += more.errors;
  into.slowestPassMs = Math.max(into.slowestPassMs, more.slowestPassMs);
  into.peakConnections = Math.max(into.peakConnections, more.peakConnections);
}

/** The app, built once per isolate: `env` is the same object for every request an isolate serves. */
let cached: { env: Env; app: Hono } | undefined;

function appFor(env: Env): Hono {
  if (cached?.env !== env) {
    // One tenant from the Worker's variables, or several from the TENANTS variable (src/tenants/settings.ts).
    const tenants = loadTenants(settingsOf(env));
    const config = tenants.entries[0]!.config;
    // A socket cannot outlive its request in workerd: one connection per request.
    const imapSessions = freshImapSessions(config.imap);
    const app = createApp({
      config,
      authenticator: imapAuthenticator(config.imap, imapSessions),
      imapSessions,
      // nodemailer on a socket opened by host name: workerd checks certificates against the name it connected to.
      mailSubmitter: workerdSubmitter(config.smtp),
      commands: defaultRegistry,
      state: durableObjectStateStore(env.STATE),
      log: stdoutLog,
      ...(tenants.entries.length > 1
        ? {
            tenants: tenantRouter(tenants, (tenant) => {
              const sessions = freshImapSessions(tenant.imap);
              return { imapSessions: sessions, authenticator: imapAuthenticator(tenant.imap, sessions), mailSubmitter: workerdSubmitter(tenant.smtp) };
            }),
          }
        : {}),
    });
    cached = { env, app };
  }
  return cached.app;
}

export default {
  async fetch(request, env, ctx) {
    if (new URL(request.url).pathname === SWEEP_PATH) {
      // Another invocation's share of the cron sweep (src/push/sweep-fanout.ts); signed, or refused.
      let tenants;
      try {
        tenants = loadTenants(settingsOf(env));
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        return new Response('activesync-edge: not configured\n', { status: 500, headers: { 'Content-Type': 'text/plain' } });
      }
      return handleSliceRequest(request, {
        tenant: (name) => tenants.entries.find((t) => t.config.tenant === name)?.config,
        state: durableObjectStateStore(env.STATE),
        sweepSecret: sweepSecret(env),
        log: stdoutLog,
        memoFor: sweepMemoOf,
        concurrency: SWEEP_CONNECTIONS,
      });
    }
    let app: Hono;
    try {
      app = appFor(env);
    } catch (err) {
      // A deployment without its settings: the log names what is missing; the caller learns only that it is.
      if (!(err instanceof ConfigError)) throw err;
      stdoutLog({ time: new Date().toISOString(), event: 'config-error', error: err.message });
      return new Response('activesync-edge: not configured\n', { status: 500, headers: { 'Content-Type': 'text/plain' } });
    }
    return app.fetch(request, env, ctx);
  },

  /** Cron (wrangler.toml `[triggers]`, once a minute): the push watcher's sweep of every lease shard (src/push/watcher.ts). */
  async scheduled(controller, env) {
    let tenants;
    try {
      tenants = loadTenants(settingsOf(env));
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      stdoutLog({ time: new Date().toISOString(), event: 'config-error', error: err.message });
      return;
    }
    const started = Date.now();
    // Bound to its minute: a run that starts late sweeps less, and never overlaps the next minute's much.
    const until = controller.scheduledTime + SWEEP_FOR_MS;
    // Every tenant's leases, with its own IMAP server and logins; the invocation's 6 connections are shared out.
    const concurrency = Math.max(1, Math.floor(SWEEP_CONNECTIONS / tenants.entries.length));
    const state = durableObjectStateStore(env.STATE);
    const capacity = accountsPerInvocation(env);
    await Promise.all(
      tenants.entries.map(async ({ config }) => {
        // More leased accounts than this invocation sweeps in a pass: the other slices go to other invocations.
        let slices: SweepSlice[] = [{ shards: Array.from({ length: LEASE_SHARDS }, (_, i) => i) }];
        if (env.SWEEP_SELF) {
          const counts = await Promise.all(slices[0]!.shards.map(async (shard) => (await state.listLeases(config.tenant, shard)).length));
          slices = planSweep(counts, capacity);
        }
        const [own, ...others] = slices;
        const dav = { caldavUrl: config.caldavUrl, carddavUrl: config.carddavUrl };
        const reports = await Promise.all([
          sweep({ state, tenant: config.tenant, imap: config.imap, push: config.push, dav, log: stdoutLog, until, memo: sweepMemoOf(config.tenant, own), concurrency, shards: own!.shards }),
          ...others.map((slice) =>
            dispatchSlice(env.SWEEP_SELF!, config, sweepSecret(env), { tenant: config.tenant, slice, until }).catch((err: unknown) => {
              stdoutLog({ time: new Date().toISOString(), tenant: config.tenant, event: 'sweep-fanout-error', shards: slice.shards.join(','), error: String(err) });
              return { passes: 0, accounts: 0, logins: 0, written: 0, errors: 1, slowestPassMs: 0, peakConnections: 0 };
            }),
          ),
        ]);
        const report = reports[0]!;
        for (const more of reports.slice(1)) addReports(report, more);
        stdoutLog({ time: new Date().toISOString(), tenant: config.tenant, event: 'sweep', ms: Date.now() - started, invocations: slices.length, ...report });
      }),
    );
  },
} satisfies ExportedHandler<Env>;
