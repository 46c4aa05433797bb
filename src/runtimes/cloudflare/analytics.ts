/**
 * Workers' metrics: the util/metrics.ts events of each request (or cron run), added up by metrics-batch.ts, go to
 * Workers Analytics Engine when the Worker has the binding METRICS (wrangler.toml `[[analytics_engine_datasets]]`),
 * else to one `metrics` log line (Workers Logs / Logpush collect it). Layout in README "Operating it".
 */
import type { LogSink } from '../../log.ts';
import type { DrainedMetrics } from '../metrics-batch.ts';

/** The part of an Analytics Engine dataset binding used here. */
export interface AnalyticsDataset {
  writeDataPoint(point: { indexes?: string[]; blobs?: string[]; doubles?: number[] }): void;
}

/** The instance-wide figures, in the order of the `instance` data point's doubles. */
export const INSTANCE_DOUBLES = [
  'pingsHeld',
  'syncsHanging',
  'imapSessionsOpen',
  'imapSessionsPooled',
  'watcherAccounts',
  'imapLogins',
  'imapLoginFailures',
  'stateOperations',
  'stateConflicts',
  'stateErrors',
  'feedLagMaxSeconds',
] as const;

function instanceFigures(drained: DrainedMetrics): number[] {
  const { gauges: g, counters: c, feedLags } = drained;
  return [
    g.pingsHeld,
    g.syncsHanging,
    g.imapSessionsOpen,
    g.imapSessionsPooled,
    g.watcherAccounts,
    c.imapLogins,
    c.imapLoginFailures,
    c.stateOperations,
    c.stateConflicts,
    c.stateErrors,
    feedLags.length ? Math.max(...feedLags) : 0,
  ];
}

/** Writes one drain: a data point per request and one for the rest, or one log line. */
export function writeWorkerMetrics(
  drained: DrainedMetrics,
  dataset: AnalyticsDataset | undefined,
  log: LogSink,
  tenant: string,
): void {
  const figures = instanceFigures(drained);
  if (drained.requests.length === 0 && figures.every((n) => n === 0)) return;
  if (dataset) {
    for (const r of drained.requests)
      dataset.writeDataPoint({
        indexes: [r.tenant],
        blobs: ['request', r.command, String(r.http)],
        doubles: [1, r.failed ? 1 : 0, r.ms],
      });
    dataset.writeDataPoint({ indexes: [tenant], blobs: ['instance'], doubles: figures });
    return;
  }
  // Each request's command, status and duration are on its own log line already: this line has the totals.
  log({
    time: new Date().toISOString(),
    tenant,
    event: 'metrics',
    requests: drained.requests.length,
    failures: drained.requests.filter((r) => r.failed).length,
    ...Object.fromEntries(INSTANCE_DOUBLES.map((name, i) => [name, figures[i]!])),
  });
}
