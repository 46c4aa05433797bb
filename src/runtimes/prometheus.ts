/**
 * The Node runtime's metrics: a prom-client registry fed by util/metrics.ts, served as GET /metrics in Prometheus's
 * text format to `Authorization: Bearer <METRICS_TOKEN>` (unset: no route, 404; a wrong token: 401). The names are in
 * README "Operating it".
 */
import type { Context, Hono } from 'hono';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { bearerMatches } from '../admin/api.ts';
import type { MetricsSink } from '../util/metrics.ts';

/** Request durations: a small Sync takes tens of ms; a Ping is held up to its heartbeat (at most 3540 s). */
const REQUEST_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600];
/** Feed lag: an in-process wake takes milliseconds, another instance's poll up to PING_POLL_SECONDS. */
const LAG_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120];

export interface PrometheusMetrics {
  registry: Registry;
  sink: MetricsSink;
}

/** A registry with activesync_* metrics (and prom-client's process metrics under the same prefix). */
export function prometheusMetrics(): PrometheusMetrics {
  const registry = new Registry();
  const registers = [registry];
  collectDefaultMetrics({ register: registry, prefix: 'activesync_' });
  const requests = new Counter({
    name: 'activesync_requests_total',
    help: 'Requests answered, by ActiveSync command (OPTIONS, or unknown) and HTTP status',
    labelNames: ['command', 'status'] as const,
    registers,
  });
  const failures = new Counter({
    name: 'activesync_request_failures_total',
    help: 'Requests the server failed (HTTP 5xx, or a command that failed inside a 200 answer), by command',
    labelNames: ['command'] as const,
    registers,
  });
  const duration = new Histogram({
    name: 'activesync_request_duration_seconds',
    help: 'Time from a request to its answer, by command (a Ping or hanging Sync includes its wait)',
    labelNames: ['command'] as const,
    buckets: REQUEST_BUCKETS,
    registers,
  });
  const pings = new Gauge({ name: 'activesync_pings_held', help: 'Ping requests waiting for changes now', registers });
  const hanging = new Gauge({
    name: 'activesync_syncs_hanging',
    help: 'Sync requests waiting for changes now (Wait or HeartbeatInterval)',
    registers,
  });
  const sessionsOpen = new Gauge({
    name: 'activesync_imap_sessions_open',
    help: 'IMAP connections of requests open now, pooled ones included (the push watcher not)',
    registers,
  });
  const sessionsPooled = new Gauge({
    name: 'activesync_imap_sessions_pooled',
    help: "Logged-in IMAP connections kept for a user's next request",
    registers,
  });
  const logins = new Counter({
    name: 'activesync_imap_logins_total',
    help: 'IMAP logins for requests, by outcome: ok, or failed (credentials refused)',
    labelNames: ['outcome'] as const,
    registers,
  });
  const watched = new Gauge({
    name: 'activesync_watcher_accounts',
    help: 'Accounts the push watcher holds an IDLE connection for',
    registers,
  });
  const lag = new Histogram({
    name: 'activesync_watcher_feed_lag_seconds',
    help: 'Time from a change entering the feed to a waiting Ping or Sync answering with it',
    buckets: LAG_BUCKETS,
    registers,
  });
  const stateOps = new Counter({
    name: 'activesync_state_operations_total',
    help: 'State store calls, by operation and outcome (ok, conflict, error)',
    labelNames: ['operation', 'outcome'] as const,
    registers,
  });
  const conflicts = new Counter({
    name: 'activesync_state_conflicts_total',
    help: 'Conditional state writes another request won (retryable), by operation',
    labelNames: ['operation'] as const,
    registers,
  });
  // Series that exist from the start read 0 rather than absent, so that rate() and alerts see them begin.
  for (const outcome of ['ok', 'failed']) logins.labels(outcome).inc(0);

  const sink: MetricsSink = {
    request(report) {
      requests.labels(report.command, String(report.http)).inc();
      if (report.failed) failures.labels(report.command).inc();
      duration.labels(report.command).observe(report.ms / 1000);
    },
    waiting(kind, delta) {
      (kind === 'ping' ? pings : hanging).inc(delta);
    },
    imapSessionsOpen: (delta) => sessionsOpen.inc(delta),
    imapSessionsPooled: (delta) => sessionsPooled.inc(delta),
    imapLogin: (ok) => logins.labels(ok ? 'ok' : 'failed').inc(),
    watcherAccounts: (delta) => watched.inc(delta),
    feedLag: (seconds) => lag.observe(seconds),
    stateOperation(operation, outcome) {
      stateOps.labels(operation, outcome).inc();
      if (outcome === 'conflict') conflicts.labels(operation).inc();
    },
  };
  return { registry, sink };
}

/** Adds GET /metrics to the app when a token is set; without one the path stays unknown (404). */
export function mountMetrics(app: Hono, registry: Registry, token: string | undefined): void {
  if (token === undefined) return;
  app.get('/metrics', async (c: Context) => {
    if (!(await bearerMatches(c.req.header('authorization'), token)))
      return c.text('a valid metrics token is required\n', 401, {
        'WWW-Authenticate': 'Bearer realm="activesync-edge metrics"',
      });
    return c.body(await registry.metrics(), 200, { 'Content-Type': registry.contentType });
  });
}
