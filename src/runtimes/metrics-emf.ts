/**
 * Lambda's metrics as CloudWatch embedded metric format: JSON log lines with an `_aws` member that CloudWatch Logs
 * turns into metrics of the namespace ActiveSyncEdge, no API call and no agent. One line per request (dimensions
 * Command, and Command + Status) and one per invocation for the rest (no dimension). Names in README "Operating it".
 */
import type { DrainedMetrics } from './metrics-batch.ts';

export const EMF_NAMESPACE = 'ActiveSyncEdge';

type EmfUnit = 'Count' | 'Milliseconds' | 'Seconds';

function envelope(timestamp: number, dimensions: string[][], metrics: [string, EmfUnit][]): Record<string, unknown> {
  return {
    _aws: {
      Timestamp: timestamp,
      CloudWatchMetrics: [
        { Namespace: EMF_NAMESPACE, Dimensions: dimensions, Metrics: metrics.map(([Name, Unit]) => ({ Name, Unit })) },
      ],
    },
  };
}

/** The EMF documents of one invocation's metrics (none when nothing happened). */
export function emfDocuments(drained: DrainedMetrics, timestamp = Date.now()): Record<string, unknown>[] {
  const documents = drained.requests.map((r) => ({
    ...envelope(
      timestamp,
      [['Command'], ['Command', 'Status']],
      [
        ['Requests', 'Count'],
        ['Failures', 'Count'],
        ['Latency', 'Milliseconds'],
      ],
    ),
    Command: r.command,
    Status: String(r.http),
    Requests: 1,
    Failures: r.failed ? 1 : 0,
    Latency: r.ms,
    tenant: r.tenant,
  }));
  const { counters, gauges, feedLags } = drained;
  const anything =
    Object.values(counters).some((n) => n > 0) || Object.values(gauges).some((n) => n > 0) || feedLags.length > 0;
  if (anything)
    documents.push({
      ...envelope(
        timestamp,
        [[]],
        [
          ['PingsHeld', 'Count'],
          ['SyncsHanging', 'Count'],
          ['ImapSessionsOpen', 'Count'],
          ['ImapSessionsPooled', 'Count'],
          ['ImapLogins', 'Count'],
          ['ImapLoginFailures', 'Count'],
          ['WatcherAccounts', 'Count'],
          ['StateOperations', 'Count'],
          ['StateConflicts', 'Count'],
          ['StateErrors', 'Count'],
          ...(feedLags.length ? [['FeedLag', 'Seconds'] as [string, EmfUnit]] : []),
        ],
      ),
      PingsHeld: gauges.pingsHeld,
      SyncsHanging: gauges.syncsHanging,
      ImapSessionsOpen: gauges.imapSessionsOpen,
      ImapSessionsPooled: gauges.imapSessionsPooled,
      WatcherAccounts: gauges.watcherAccounts,
      ImapLogins: counters.imapLogins,
      ImapLoginFailures: counters.imapLoginFailures,
      StateOperations: counters.stateOperations,
      StateConflicts: counters.stateConflicts,
      StateErrors: counters.stateErrors,
      // EMF takes several values of one metric as an array (at most 100).
      ...(feedLags.length ? { FeedLag: feedLags.slice(-100) } : {}),
    } as never);
  return documents;
}
