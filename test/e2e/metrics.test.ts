/**
 * Operating it (issue 19): GET /metrics of a running Node server (`npm start` in its own process) scraped and parsed
 * with a Prometheus text parser after a device's real requests against Dovecot, and `activesync-edge top --once`
 * against the same server while a Ping is held.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Hono } from 'hono';
import parsePrometheusTextFormat, { type PrometheusFamily, type PrometheusSample } from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../src/backends/types.ts';
import { mountMetrics, prometheusMetrics } from '../../src/runtimes/prometheus.ts';
import { el } from '../../src/wbxml/tree.ts';
import { TestDevice, type TestServer } from '../device/device.ts';
import { startAdminNodeServer, type AdminNodeServer } from '../services/node-server.ts';
import { createUser, withImap } from '../services/seed.ts';

const services = inject('services');
const ROOT = join(import.meta.dirname, '../..');
const ADMIN_TOKEN = 'metrics-admin-token-0123456789abcdef';
const METRICS_TOKEN = 'metrics-scrape-token-0123456789abcdef';

let admin: AdminNodeServer;
/** The device's requests as the server answered them: `command status` → count. */
const sent = new Map<string, number>();
let server: TestServer;

beforeAll(async () => {
  admin = await startAdminNodeServer(services.imap, ADMIN_TOKEN, {
    METRICS_TOKEN,
    // A short Ping is allowed; the feed is read every second.
    PING_MIN_HEARTBEAT: '1',
    PING_POLL_SECONDS: '1',
  });
  server = {
    ...admin.server,
    fetch: async (url, init) => {
      const res = await admin.server.fetch(url, init);
      const key = `${new URL(url).searchParams.get('Cmd')} ${res.status}`;
      sent.set(key, (sent.get(key) ?? 0) + 1);
      return res;
    },
  };
});

afterAll(async () => {
  await admin?.stop();
});

/** The exposition as scraped; `families` parsed with parse-prometheus-text-format. */
type Scraped = PrometheusFamily[] & { text: string };

async function scrape(token = METRICS_TOKEN): Promise<Scraped> {
  const res = await fetch(`${admin.base}/metrics`, { headers: { Authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  return Object.assign(parsePrometheusTextFormat(text), { text });
}

/**
 * One label value's histogram (count, sum, buckets). The parser merges a family's buckets whatever their other labels
 * (it follows prom2json for unlabelled histograms), so it is given that label value's series without the label.
 */
function histogramOf(scraped: Scraped, name: string, label: string, labelValue: string): PrometheusSample {
  const pair = `${label}="${labelValue}"`;
  const lines = scraped.text
    .split('\n')
    .filter(
      (l) =>
        l.startsWith(`# HELP ${name} `) || l.startsWith(`# TYPE ${name} `) || (l.startsWith(name) && l.includes(pair)),
    )
    .map((l) => l.replace(`{${pair}}`, '').replace(`,${pair}`, '').replace(`${pair},`, ''));
  const parsed = parsePrometheusTextFormat(`${lines.join('\n')}\n`).find((f) => f.name === name);
  expect(parsed?.type).toBe('HISTOGRAM');
  return parsed!.metrics[0] ?? {};
}

function family(families: PrometheusFamily[], name: string): PrometheusFamily | undefined {
  return families.find((f) => f.name === name);
}

/** A counter's or gauge's value for exactly these labels (0 when the series is not there yet). */
function value(families: PrometheusFamily[], name: string, labels: Record<string, string> = {}): number {
  const sample = family(families, name)?.metrics.find((m) =>
    Object.entries(labels).every(([k, v]) => m.labels?.[k] === v),
  );
  return Number(sample?.value ?? sample?.count ?? 0);
}

/** Scrapes until the metrics show what is awaited (a gauge follows a request by a moment). */
async function scrapeUntil(
  shows: (families: PrometheusFamily[]) => boolean,
  what: string,
  ms = 20_000,
): Promise<Scraped> {
  const deadline = Date.now() + ms;
  for (;;) {
    const families = await scrape();
    if (shows(families)) return families;
    if (Date.now() > deadline) throw new Error(`the metrics never showed ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function topOnce(args: string[] = []): { code: number | null; stdout: string; stderr: string } {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => k !== 'ADMIN_TOKEN' && k !== 'ACTIVESYNC_EDGE_URL'),
  );
  const run = spawnSync(
    process.execPath,
    [join(ROOT, 'bin/activesync-edge.js'), 'top', '--once', '--url', admin.base, '--token', ADMIN_TOKEN, ...args],
    { cwd: ROOT, env: clean, encoding: 'utf8' },
  );
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('GET /metrics', { timeout: 90_000 }, () => {
  it('is off without METRICS_TOKEN (404), and refuses a missing or wrong token (401)', async () => {
    const off = new Hono();
    mountMetrics(off, prometheusMetrics().registry, undefined);
    expect((await off.request('/metrics')).status).toBe(404);

    expect((await fetch(`${admin.base}/metrics`)).status).toBe(401);
    const wrong = await fetch(`${admin.base}/metrics`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toMatch(/^Bearer /);
  });

  it('counts what a device did: requests by command and status, latency, logins, sessions, state, a held Ping', async () => {
    const before = await scrape();
    sent.clear();
    const user = createUser(services);
    const device = new TestDevice(server, user);
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.syncUntilDone(inbox);
    // A wrong password: 401, and a login the IMAP server refused.
    const refused = await fetch(`${admin.base}/Microsoft-Server-ActiveSync`, {
      method: 'OPTIONS',
      headers: { Authorization: `Basic ${Buffer.from(`${user.email}:not-the-password`).toString('base64')}` },
    });
    expect(refused.status).toBe(401);
    sent.set('OPTIONS 401', 1);

    const after = await scrape();
    expect(sent.get('FolderSync 200')).toBe(1);
    expect(sent.get('Sync 200')).toBeGreaterThanOrEqual(2);
    for (const [key, count] of sent) {
      const [command, status] = key.split(' ') as [string, string];
      expect(
        value(after, 'activesync_requests_total', { command, status }) -
          value(before, 'activesync_requests_total', { command, status }),
        key,
      ).toBe(count);
    }
    // Latency: one observation per request, in the command's histogram.
    const latency = (f: Scraped, command: string) =>
      histogramOf(f, 'activesync_request_duration_seconds', 'command', command);
    const syncs = (f: Scraped) => Number(latency(f, 'Sync').count ?? 0);
    expect(syncs(after) - syncs(before)).toBe(sent.get('Sync 200'));
    const folderSyncs = latency(after, 'FolderSync');
    expect(Number(folderSyncs.count) - Number(latency(before, 'FolderSync').count ?? 0)).toBe(1);
    expect(Number(folderSyncs.sum)).toBeGreaterThan(0);
    expect(Number(folderSyncs.buckets!['+Inf'])).toBe(Number(folderSyncs.count));

    const logins = (f: PrometheusFamily[], outcome: string) => value(f, 'activesync_imap_logins_total', { outcome });
    expect(logins(after, 'ok') - logins(before, 'ok')).toBeGreaterThanOrEqual(1);
    expect(logins(after, 'failed') - logins(before, 'failed')).toBe(1);
    // The request's connection went back to the pool for the user's next request.
    const scraped = await scrapeUntil((f) => value(f, 'activesync_imap_sessions_pooled') >= 1, 'a pooled session');
    expect(value(scraped, 'activesync_imap_sessions_open')).toBeGreaterThanOrEqual(
      value(scraped, 'activesync_imap_sessions_pooled'),
    );
    const commits = (f: PrometheusFamily[]) =>
      value(f, 'activesync_state_operations_total', { operation: 'commitCollection', outcome: 'ok' });
    expect(commits(after) - commits(before)).toBeGreaterThanOrEqual(1);
    expect(family(after, 'activesync_state_conflicts_total')?.type).toBe('COUNTER');

    // A Ping held: the gauge says 1 while it waits; `top --once` shows it; a new message ends it through the watcher.
    const ping = device.send(
      'Ping',
      el('Ping', 'Ping', [
        el('Ping', 'HeartbeatInterval', '60'),
        el('Ping', 'Folders', [el('Ping', 'Folder', [el('Ping', 'Id', inbox), el('Ping', 'Class', 'Email')])]),
      ]),
    );
    const held = await scrapeUntil(
      (f) => value(f, 'activesync_pings_held') >= 1 && value(f, 'activesync_watcher_accounts') >= 1,
      'the Ping held and its account watched',
    );
    expect(value(held, 'activesync_pings_held')).toBe(1);

    const top = topOnce();
    expect(top.stderr).toBe('');
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/^open Pings: 1 held here, 0 hanging Syncs here; 1 accounts with a device waiting/m);
    const waitingRow = top.stdout.split('\n').find((l) => l.startsWith('ping ') && l.includes(device.deviceId));
    expect(waitingRow).toContain(user.email.toLowerCase());
    expect(top.stdout).toMatch(/^FolderSync\s+\d+\.\d\d\s+1\s+0\s+\d+\s+\d+$/m);
    expect(top.stdout).toMatch(/^Sync\s+\d+\.\d\d\s+[2-9]\d*\s+0/m);
    // The slowest list names the user and device; the refused login is a failing request with its user.
    const slowest = top.stdout.split('slowest requests')[1]!.split('failing requests')[0]!;
    expect(slowest).toContain(device.deviceId);
    const failing = top.stdout.split('failing requests')[1]!.split('watcher:')[0]!;
    expect(failing).toMatch(new RegExp(`^\\S+\\s+OPTIONS\\s+401\\s+\\S+\\s+${user.email.replace('.', '\\.')}`, 'm'));
    expect(top.stdout).toMatch(/^watcher: 1 accounts watched here/m);

    await withImap(services, user, (imap) =>
      imap.append('INBOX', 'From: a@example.org\r\nSubject: wake\r\n\r\nHello.\r\n'),
    );
    const woke = await ping;
    expect(woke.status).toBe(200);
    const ended = await scrape();
    expect(value(ended, 'activesync_pings_held')).toBe(0);
    expect(
      value(ended, 'activesync_requests_total', { command: 'Ping', status: '200' }) -
        value(before, 'activesync_requests_total', { command: 'Ping', status: '200' }),
    ).toBe(1);
    const lag = family(ended, 'activesync_watcher_feed_lag_seconds')!;
    expect(lag.type).toBe('HISTOGRAM');
    expect(Number(lag.metrics[0]!.count)).toBe(1);

    const json = JSON.parse(topOnce(['--json']).stdout) as { pings: { held: number }; watcher: unknown };
    expect(json.pings.held).toBe(0);
    expect(json.watcher).toMatchObject({ feedLagSeconds: { samples: 1 } });
  });
});
