/**
 * Cloudflare Workers runtime: the Worker entry (wrangler.toml `main`). Settings come from the Worker's variables,
 * sync state from the StateObject Durable Objects (binding STATE).
 */
import process from 'node:process';
import type { Hono } from 'hono';
import { buildApp } from '../../app/build.ts';
import { useImapTransport } from '../../backends/imap/connection.ts';
import { freshImapSessions } from '../../backends/imap/sessions.ts';
import { ConfigError } from '../../config.ts';
import type { TenantDirectory } from '../../tenants/resolve.ts';
import { loadTenants } from '../../tenants/settings.ts';
import { stdoutLog } from '../../log.ts';
import { durableObjectStateStore, type StateObject } from '../../state/durable-object.ts';
import { workerdSubmitter } from '../../backends/smtp/cloudflare.ts';
import { SWEEP_PATH, type SweepDispatcher } from '../../push/sweep-fanout.ts';
import { cronSweep, noticeNoSweepSecret, sliceRoute } from '../../push/sweep-plan.ts';
import { socketsImapTransport } from './imap-transport.ts';
import { type AnalyticsDataset, writeWorkerMetrics } from './analytics.ts';
import { instrumentedStateStore } from '../../state/instrumented.ts';
import { addMetricsSink } from '../../util/metrics.ts';
import { MetricsBatch } from '../metrics-batch.ts';
import { openCloudflareSocket } from './sockets.ts';
import { useBackendSockets } from '../../backends/sockets.ts';

export { StateObject } from '../../state/durable-object.ts';

export interface Env {
  STATE: DurableObjectNamespace<StateObject>;
  /**
   * A service binding to this Worker itself (wrangler.toml `[[services]]`): the cron sweep fans out through it to
   * more invocations, each with its own 6 connections (src/push/sweep-fanout.ts). Without it one invocation sweeps all.
   */
  SWEEP_SELF?: SweepDispatcher;
  /** Workers Analytics Engine dataset for the metrics (cloudflare/analytics.ts); without it, `metrics` log lines. */
  METRICS?: AnalyticsDataset;
  /** The settings of src/config.ts (IMAP_HOST, ...), as Worker variables and secrets. */
  [setting: string]: unknown;
}

// IMAP over cloudflare:sockets, not workerd's node:net: there every read and write of a socket with an idle timeout
// adds a 'timeout' listener that stays, so a Sync of a few hundred messages passed any listener limit, and workerd's
// warning for that threw an uncaught TypeError (issue 16); and node:tls cannot do STARTTLS there (imap-transport.ts).
useImapTransport(socketsImapTransport());
// ManageSieve and SMTP the same way: node:tls cannot do STARTTLS over a node:net socket inside workerd (sockets.ts).
useBackendSockets(openCloudflareSocket);

// workerd reports warnings (a listener leak, a deprecation) on node:process, which its events module finds only once
// some module imported it: before, the report itself threw an uncaught TypeError. Now each is a log line.
process.on('warning', (warning) =>
  stdoutLog({ time: new Date().toISOString(), event: 'warning', warning: `${warning.name}: ${warning.message}` }),
);

/** The Worker's settings: its string variables and secrets. */
function settingsOf(env: Env): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

function sweepSecret(env: Env): string | undefined {
  return typeof env.SWEEP_SECRET === 'string' && env.SWEEP_SECRET !== '' ? env.SWEEP_SECRET : undefined;
}

// The metrics of this isolate (util/metrics.ts), written after each request and cron run (cloudflare/analytics.ts).
const metricsBatch = new MetricsBatch();
addMetricsSink(metricsBatch);

function writeMetrics(env: Env): void {
  const tenant = typeof env.TENANT === 'string' && env.TENANT !== '' ? env.TENANT : 'default';
  writeWorkerMetrics(metricsBatch.drain(), env.METRICS, stdoutLog, tenant);
}

/** The app, built once per isolate: `env` is the same object for every request an isolate serves. */
let cached: { env: Env; app: Hono } | undefined;

function appFor(env: Env): Hono {
  if (cached?.env !== env) {
    const { app } = buildApp({
      // One tenant from the Worker's variables, or several from the TENANTS variable (src/tenants/settings.ts).
      settings: loadTenants(settingsOf(env)),
      // Every state call is counted for the metrics (state/instrumented.ts).
      state: instrumentedStateStore(durableObjectStateStore(env.STATE)),
      // A socket cannot outlive its request in workerd: one connection per request.
      imapSessions: (imap) => freshImapSessions(imap),
      // nodemailer on a cloudflare:sockets connection (STARTTLS by the socket's startTls()).
      submitter: (smtp) => workerdSubmitter(smtp),
      log: stdoutLog,
      // The cron sweep logs in on its own: built once per isolate, the app says then if it has no login for push.
      pushWatcher: 'cron-sweep',
      // workerd has no root list and code cannot read files: SMIME_TRUST_STORE is the PEM bundle itself, or nothing
      // is trusted (said at start-up).
      trustStore: { defaultRoots: [], defaultName: 'none: Workers has no root list' },
    });
    if (env.SWEEP_SELF && !sweepSecret(env)) noticeNoSweepSecret(stdoutLog);
    cached = { env, app };
  }
  return cached.app;
}

export default {
  async fetch(request, env, ctx) {
    if (new URL(request.url).pathname === SWEEP_PATH) {
      // Another invocation's share of the cron sweep (src/push/sweep-fanout.ts); signed, or refused.
      let tenants: TenantDirectory;
      try {
        tenants = loadTenants(settingsOf(env));
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        return new Response('activesync-edge: not configured\n', {
          status: 500,
          headers: { 'Content-Type': 'text/plain' },
        });
      }
      return sliceRoute(request, {
        tenant: (name) => tenants.entries.find((t) => t.config.tenant === name)?.config,
        state: durableObjectStateStore(env.STATE),
        sweepSecret: sweepSecret(env),
        log: stdoutLog,
      });
    }
    let app: Hono;
    try {
      app = appFor(env);
    } catch (err) {
      // A deployment without its settings: the log names what is missing; the caller learns only that it is.
      if (!(err instanceof ConfigError)) throw err;
      stdoutLog({ time: new Date().toISOString(), event: 'config-error', error: err.message });
      return new Response('activesync-edge: not configured\n', {
        status: 500,
        headers: { 'Content-Type': 'text/plain' },
      });
    }
    try {
      return await app.fetch(request, env, ctx);
    } finally {
      writeMetrics(env);
    }
  },

  /**
   * Cron (wrangler.toml `[triggers]`, once a minute): the push watcher's sweep of every lease shard
   * (src/push/sweep-plan.ts).
   */
  async scheduled(controller, env) {
    let tenants: TenantDirectory;
    try {
      tenants = loadTenants(settingsOf(env));
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      stdoutLog({ time: new Date().toISOString(), event: 'config-error', error: err.message });
      return;
    }
    await cronSweep({
      tenants: tenants.entries.map((t) => t.config),
      state: durableObjectStateStore(env.STATE),
      log: stdoutLog,
      scheduledTime: controller.scheduledTime,
      self: env.SWEEP_SELF,
      sweepSecret: sweepSecret(env),
      accountsPerInvocation: env.SWEEP_ACCOUNTS_PER_INVOCATION,
    });
    writeMetrics(env);
  },
} satisfies ExportedHandler<Env>;
