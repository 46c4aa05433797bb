/**
 * Node.js runtime: `npm start`. Reads the settings from the environment, serves the app with @hono/node-server.
 */
import { serve } from '@hono/node-server';
import type { HttpBindings, Http2Bindings } from '@hono/node-server';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildApp, watchedTenants } from '../app/build.ts';
import { pooledImapSessions } from '../backends/imap/sessions.ts';
import { ConfigError, type StateStoreConfig } from '../config.ts';
import type { TenantDirectory } from '../tenants/resolve.ts';
import { loadTenants } from '../tenants/settings.ts';
import { batchedStdoutLog } from './node-log.ts';
import { openSqliteStateStore, STATE_FILE_NAME } from '../state/sqlite-node.ts';
import { startIdleWatcher } from '../push/idle-watcher.ts';
import { LEASE_SHARDS, type StateStore } from '../state/types.ts';
import { randomUUID } from 'node:crypto';
import { instrumentedStateStore } from '../state/instrumented.ts';
import { addMetricsSink } from '../util/metrics.ts';
import { mountMetrics, prometheusMetrics } from './prometheus.ts';
import { nodeTrustStore } from './node-trust-store.ts';
import type { BuiltApp } from '../app/build.ts';

/** The log lines (JSON on stdout), written together once per turn of the event loop. */
const stdoutLog = batchedStdoutLog();

/** The state store the settings name, and how to let go of it on shutdown. */
async function openStateStore(
  settings: StateStoreConfig,
): Promise<{ store: StateStore; close(): void; where: string }> {
  if (settings.kind === 'sqlite') {
    const path = join(settings.dir, STATE_FILE_NAME);
    const opened = openSqliteStateStore(path);
    if (opened.notice) stdoutLog({ time: new Date().toISOString(), event: 'state-folder-open', notice: opened.notice });
    return { ...opened, where: path };
  }
  // Loaded only with DynamoDB: the AWS SDK is the largest package the server could load (docs/DESIGN.md, footprint).
  const [{ DynamoDBClient }, { createStateTable, DynamoDbStateStore }] = await Promise.all([
    import('@aws-sdk/client-dynamodb'),
    import('../state/dynamodb/store.ts'),
  ]);
  const client = new DynamoDBClient({
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    ...(settings.region ? { region: settings.region } : {}),
  });
  // With an endpoint (dynalite, a local emulator) the table is ours to create; in AWS the stack template owns it.
  if (settings.endpoint) await createStateTable(client, settings.table);
  return {
    store: new DynamoDbStateStore({ client, table: settings.table }),
    close: () => client.destroy(),
    where: `dynamodb:${settings.table}`,
  };
}

async function main(): Promise<void> {
  let tenants: TenantDirectory;
  try {
    // Secret settings from AWS Secrets Manager (SECRET_ARN, e.g. on ECS), read once here; the SDK is loaded only then.
    // A rotated secret takes a restart (ECS: a new deployment), unlike Lambda, whose containers read it again.
    let env: Record<string, string | undefined> = process.env;
    if (process.env.SECRET_ARN?.trim()) {
      const { SecretSettings } = await import('./secret-settings.ts');
      env = (await new SecretSettings({ env: process.env }).environment()).env;
    }
    // One tenant from the environment, or several from TENANTS_FILE / TENANTS (src/tenants/settings.ts).
    tenants = loadTenants(env, { readFile: (path) => readFileSync(path, 'utf8') });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`activesync-edge: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const keepAliveSeconds = Number(process.env.HTTP_KEEPALIVE_SECONDS?.trim() || 5);
  if (!(Number.isFinite(keepAliveSeconds) && keepAliveSeconds > 0)) {
    console.error('activesync-edge: invalid configuration: HTTP_KEEPALIVE_SECONDS must be a number of seconds above 0');
    process.exit(2);
  }
  // The process's own settings (port, state store) are the same in every tenant's config.
  const config = tenants.entries[0]!.config;
  const opened = await openStateStore(config.state);
  // Every state call is counted for the metrics (state/instrumented.ts).
  const state = { ...opened, store: instrumentedStateStore(opened.store) };
  // The metrics (util/metrics.ts) go to a prom-client registry, served as GET /metrics with METRICS_TOKEN.
  const prometheus = prometheusMetrics();
  addMetricsSink(prometheus.sink);
  let built: BuiltApp;
  try {
    // A user's logged-in IMAP connection is kept a little while for their next request.
    built = buildApp({
      settings: tenants,
      state: state.store,
      imapSessions: (imap) => pooledImapSessions(imap),
      log: stdoutLog,
      // The IDLE watcher below may use the password a Ping of this process holds in memory.
      pushWatcher: 'in-process',
      // SMIME_TRUST_STORE may name a file; unset, Node's own roots.
      trustStore: nodeTrustStore,
    });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`activesync-edge: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const { app } = built;
  mountMetrics(app, prometheus.registry, config.metricsToken);
  const server = serve(
    { fetch: closingRefusals(app.fetch), port: config.port, hostname: process.env.HOST ?? '0.0.0.0' },
    (info) => {
      stdoutLog({
        time: new Date().toISOString(),
        event: 'listening',
        port: info.port,
        imap: `${config.imap.host}:${config.imap.port}`,
        tenants: tenants.entries.length,
        state: state.where,
        metrics: config.metricsToken === undefined ? 'off (METRICS_TOKEN unset)' : '/metrics',
      });
    },
  );
  // Behind a load balancer that keeps idle connections (an ALB: its idle timeout), the server must keep them longer,
  // or the balancer sends a request on one the server just closed and answers 502. Node's default is 5 s.
  (server as { keepAliveTimeout: number }).keepAliveTimeout = keepAliveSeconds * 1000;
  // Push: the IDLE watcher runs in this process (src/push/idle-watcher.ts), one per tenant with the tenant's IMAP
  // server and logins; it wakes this process's waiting Pings at once. On DynamoDB several instances may share the
  // table: each watches only the lease shards it claims (at most PUSH_WATCHER_SHARDS of the 16; a crashed instance's
  // claims expire within a minute and the others take its shards over). A Ping whose account another instance watches
  // learns of changes from its feed polls.
  const instance = randomUUID();
  const maxShards = Math.min(
    LEASE_SHARDS,
    Math.max(1, Math.floor(Number(process.env.PUSH_WATCHER_SHARDS ?? LEASE_SHARDS)) || LEASE_SHARDS),
  );
  const watchers = watchedTenants(tenants, state.store, stdoutLog).map((watched) =>
    startIdleWatcher({ ...watched, ...(config.state.kind === 'dynamodb' ? { claims: { instance, maxShards } } : {}) }),
  );
  const stop = (): void => {
    for (const watcher of watchers) void watcher.stop();
    server.close(() => {
      state.close();
      process.exit(0);
    });
    setTimeout(() => process.exit(0), 5_000).unref();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

/**
 * A refusal sent before the request's body was read (413 over the size limit, 503 over a user's caps,
 * protocol/request-slots.ts) closes the connection once it is out: else the server would read the rest of the body
 * only to drop it (@hono/node-server drains up to 64 MiB), which is the very work the refusal spares. The device
 * opens a new connection for its next request.
 */
function closingRefusals(fetch: (request: Request, env: HttpBindings | Http2Bindings) => Response | Promise<Response>) {
  return async (request: Request, env: HttpBindings | Http2Bindings): Promise<Response> => {
    const response = await fetch(request, env);
    if ((response.status === 413 || response.status === 503) && !env.incoming.complete)
      response.headers.set('Connection', 'close');
    return response;
  };
}

await main();
