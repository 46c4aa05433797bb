/**
 * The metrics (util/metrics.ts) of one stretch of work, for runtimes whose platform collects figures per invocation
 * rather than scraping a process: Lambda (CloudWatch embedded metric format, metrics-emf.ts) and Workers (Analytics
 * Engine or log lines, cloudflare/analytics.ts). Counters count since the last drain; a gauge (held Pings, open IMAP
 * sessions, …) reports the most it reached since then, so a Ping held for a whole invocation is seen by its end.
 */
import type { MetricsSink, RequestReport } from '../util/metrics.ts';

export interface Gauges {
  pingsHeld: number;
  syncsHanging: number;
  imapSessionsOpen: number;
  imapSessionsPooled: number;
  watcherAccounts: number;
}

export interface Counters {
  imapLogins: number;
  imapLoginFailures: number;
  stateOperations: number;
  stateConflicts: number;
  stateErrors: number;
}

export interface DrainedMetrics {
  requests: RequestReport[];
  counters: Counters;
  /** The highest value of each gauge since the last drain. */
  gauges: Gauges;
  /** Feed lags seen, seconds. */
  feedLags: number[];
}

const noCounts = (): Counters => ({
  imapLogins: 0,
  imapLoginFailures: 0,
  stateOperations: 0,
  stateConflicts: 0,
  stateErrors: 0,
});

export class MetricsBatch implements MetricsSink {
  private requests: RequestReport[] = [];
  private counters = noCounts();
  private feedLags: number[] = [];
  private readonly now: Gauges = {
    pingsHeld: 0,
    syncsHanging: 0,
    imapSessionsOpen: 0,
    imapSessionsPooled: 0,
    watcherAccounts: 0,
  };
  private peak: Gauges = { ...this.now };

  request(report: RequestReport): void {
    this.requests.push(report);
  }
  waiting(kind: 'ping' | 'sync', delta: 1 | -1): void {
    this.move(kind === 'ping' ? 'pingsHeld' : 'syncsHanging', delta);
  }
  imapSessionsOpen(delta: 1 | -1): void {
    this.move('imapSessionsOpen', delta);
  }
  imapSessionsPooled(delta: 1 | -1): void {
    this.move('imapSessionsPooled', delta);
  }
  watcherAccounts(delta: 1 | -1): void {
    this.move('watcherAccounts', delta);
  }
  imapLogin(ok: boolean): void {
    if (ok) this.counters.imapLogins += 1;
    else this.counters.imapLoginFailures += 1;
  }
  feedLag(seconds: number): void {
    this.feedLags.push(seconds);
  }
  stateOperation(_operation: string, outcome: 'ok' | 'conflict' | 'error'): void {
    this.counters.stateOperations += 1;
    if (outcome === 'conflict') this.counters.stateConflicts += 1;
    if (outcome === 'error') this.counters.stateErrors += 1;
  }

  /** What was counted since the last drain; the counts start again, the gauges from where they are now. */
  drain(): DrainedMetrics {
    const drained = { requests: this.requests, counters: this.counters, gauges: this.peak, feedLags: this.feedLags };
    this.requests = [];
    this.counters = noCounts();
    this.feedLags = [];
    this.peak = { ...this.now };
    return drained;
  }

  private move(gauge: keyof Gauges, delta: number): void {
    this.now[gauge] = Math.max(0, this.now[gauge] + delta);
    this.peak[gauge] = Math.max(this.peak[gauge], this.now[gauge]);
  }
}
