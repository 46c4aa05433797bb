/**
 * `activesync-edge top`: a refreshing terminal view of a running server, like z-push-top: requests per second per
 * command, open Pings, the slowest and the failing requests with user and device, the push watcher. It polls the
 * admin API's live feed (GET /admin/live, activity.ts) with the admin CLI's --url, --token and --tenant; `--once`
 * prints one snapshot and exits.
 */
import type { Command } from 'commander';
import type { LiveSnapshot, RecentRequest } from './activity.ts';
import { clientOf, processOutput, table, type AdminOutput, type GlobalOptions } from './cli.ts';

const DEFAULT_INTERVAL_SECONDS = 2;
/** ANSI: cursor home, clear the screen. */
const CLEAR = '\u001b[H\u001b[2J';

const seconds = (ms: number): string => (ms >= 10_000 ? `${Math.round(ms / 1000)}s` : `${ms}ms`);

function requestRows(requests: RecentRequest[]): Record<string, unknown>[] {
  return requests.map((r) => ({
    time: r.time.slice(11, 19),
    command: r.command,
    http: r.http,
    took: seconds(r.ms),
    waited: r.waitedMs !== undefined ? seconds(r.waitedMs) : '',
    user: r.user ?? '',
    device: r.deviceId ?? '',
    type: r.deviceType ?? '',
    error: r.error ?? '',
  }));
}

/** One snapshot as text: what `top` shows. */
export function renderLive(live: LiveSnapshot): string {
  const total = live.commands.reduce((sum, c) => sum + c.perSecond, 0);
  const lag = live.watcher.feedLagSeconds;
  return [
    `activesync-edge top · tenant ${live.tenant} · ${live.at.replace('T', ' ').slice(0, 19)} UTC`,
    `requests ${total.toFixed(2)}/s over the last ${live.windowSeconds} s (all instances)`,
    '',
    table(
      live.commands.map((c) => ({
        command: c.command,
        'req/s': c.perSecond.toFixed(2),
        requests: c.requests,
        errors: c.errors,
        'avg ms': c.avgMs,
        'max ms': c.maxMs,
      })),
      ['command', 'req/s', 'requests', 'errors', 'avg ms', 'max ms'],
    ).trimEnd(),
    '',
    `open Pings: ${live.pings.held} held here, ${live.pings.hangingSyncs} hanging Syncs here; ` +
      `${live.pings.leasedAccounts} accounts with a device waiting (all instances)`,
    table(live.pings.waiting as unknown as Record<string, unknown>[], [
      'kind',
      'user',
      'deviceId',
      'since',
      'seconds',
    ]).trimEnd(),
    '',
    'slowest requests, last 10 minutes (here; by work, time waited for changes left out)',
    table(requestRows(live.slowest), ['time', 'command', 'http', 'took', 'waited', 'user', 'device', 'type']).trimEnd(),
    '',
    'failing requests, latest first (here)',
    table(requestRows(live.failing), ['time', 'command', 'http', 'took', 'user', 'device', 'type', 'error']).trimEnd(),
    '',
    `watcher: ${live.watcher.watchedHere} accounts watched here; ` +
      (lag
        ? `feed lag last ${lag.last.toFixed(2)} s, max ${lag.max.toFixed(2)} s over ${lag.samples} answers`
        : 'no Ping answered from the feed in the last 10 minutes'),
    '',
  ].join('\n');
}

/** Adds `top` to the program. */
export function addTopCommand(program: Command, io: AdminOutput = processOutput): void {
  program
    .command('top')
    .description('a live view of a running server (its admin API): requests, Pings, slow and failing requests')
    .option('--url <url>', 'the server (default: $ACTIVESYNC_EDGE_URL or http://127.0.0.1:8080)')
    .option('--token <token>', 'the admin token (default: $ADMIN_TOKEN)')
    .option('--tenant <tenant>', "the tenant (default: the server's TENANT)")
    .option('--once', 'print one snapshot and exit')
    .option('--json', 'print the feed as JSON (with --once)')
    .option('--interval <seconds>', 'seconds between refreshes', String(DEFAULT_INTERVAL_SECONDS))
    .action(async (options: GlobalOptions & { once?: boolean; interval: string }) => {
      const client = clientOf(options);
      const read = (): Promise<LiveSnapshot> => client.call<LiveSnapshot>('GET', '/live');
      if (options.once) {
        const live = await read();
        io.out(options.json ? `${JSON.stringify(live, null, 2)}\n` : renderLive(live));
        return;
      }
      const intervalMs = Math.max(0.5, Number(options.interval) || DEFAULT_INTERVAL_SECONDS) * 1000;
      // Until Ctrl-C; a failed poll is shown in place of the view and the next one tries again.
      for (;;) {
        let screen: string;
        try {
          screen = renderLive(await read());
        } catch (err) {
          screen = `activesync-edge top: ${err instanceof Error ? err.message : String(err)}\n`;
        }
        io.out(`${CLEAR}${screen}`);
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
      }
    });
}
