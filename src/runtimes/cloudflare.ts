/**
 * Cloudflare Workers runtime: the Worker entry (wrangler.toml `main`). Settings come from the Worker's variables,
 * sync state from the StateObject Durable Objects (binding STATE).
 */
import { EventEmitter } from 'node:events';
import type { Hono } from 'hono';
import { createApp } from '../app.ts';
import { imapAuthenticator } from '../backends/imap/authenticate.ts';
import { freshImapSessions } from '../backends/imap/sessions.ts';
import { defaultRegistry } from '../commands/index.ts';
import { ConfigError } from '../config.ts';
import { loadTenants } from '../tenants/settings.ts';
import { tenantRouter } from '../tenants/services.ts';
import { stdoutLog } from '../log.ts';
import { durableObjectStateStore, type StateObject } from '../state/durable-object.ts';
import { workerdSubmitter } from '../backends/smtp/workerd.ts';
import { sweep, SweepMemo } from '../push/watcher.ts';

export { StateObject } from '../state/durable-object.ts';

export interface Env {
  STATE: DurableObjectNamespace<StateObject>;
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
/** One per tenant: a sweep forgets the accounts it did not see leased, which would be every other tenant's. */
function sweepMemoOf(tenant: string): SweepMemo {
  let memo = sweepMemos.get(tenant);
  if (!memo) sweepMemos.set(tenant, (memo = new SweepMemo()));
  return memo;
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
    await Promise.all(
      tenants.entries.map(async ({ config }) => {
        const report = await sweep({ state, tenant: config.tenant, imap: config.imap, push: config.push, log: stdoutLog, until, memo: sweepMemoOf(config.tenant), concurrency });
        stdoutLog({ time: new Date().toISOString(), tenant: config.tenant, event: 'sweep', ms: Date.now() - started, ...report });
      }),
    );
  },
} satisfies ExportedHandler<Env>;
