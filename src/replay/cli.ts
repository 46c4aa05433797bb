/**
 * `activesync-edge replay SESSION --url … --user …`: replays a capture export or corpus session against a server and
 * prints every answer that differs; the exit code is 1 when any does. The password comes from ASE_REPLAY_PASSWORD or,
 * on a terminal, a prompt that does not echo: never from an argument, which shell history and `ps` would keep.
 */
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { type Command, CommanderError } from 'commander';

export const PASSWORD_VARIABLE = 'ASE_REPLAY_PASSWORD';

interface ReplayCliOptions {
  url?: string;
  user: string;
  deviceId?: string;
  maxHeartbeat?: string;
  json?: boolean;
}

export function addReplayCommand(program: Command): void {
  program
    .command('replay')
    .description('replay a captured session against a server and print every answer whose status differs')
    .argument('<session>', 'session file (`admin capture export` output, or a corpus session)')
    .option('--url <url>', 'the server (default: $ACTIVESYNC_EDGE_URL)')
    .requiredOption('--user <login>', 'the account to replay as (password: $ASE_REPLAY_PASSWORD, else a prompt)')
    .option('--device-id <id>', 'the DeviceId to use (default: a new one)')
    .option('--max-heartbeat <seconds>', 'cap Ping and Sync HeartbeatInterval, so that no request waits long')
    .option('--json', 'print the report as JSON')
    .action(async (file: string, options: ReplayCliOptions) => {
      const url = options.url ?? process.env.ACTIVESYNC_EDGE_URL;
      if (!url) throw new Error('no server: pass --url or set ACTIVESYNC_EDGE_URL');
      // Loaded on use: the replay driver (the whole WBXML codec and device model) is no part of the other commands'
      // start-up, and every `activesync-edge admin …` call would pay for it.
      const { formatDifferences, replaySession } = await import('./driver.ts');
      const { parseReplaySession } = await import('./session.ts');
      const session = parseReplaySession(JSON.parse(await readFile(file, 'utf8')) as unknown);
      const password = process.env[PASSWORD_VARIABLE] ?? (await promptPassword(options.user));
      const maxHeartbeat = options.maxHeartbeat === undefined ? undefined : Number(options.maxHeartbeat);
      if (maxHeartbeat !== undefined && !(Number.isInteger(maxHeartbeat) && maxHeartbeat > 0))
        throw new Error('--max-heartbeat must be a whole number of seconds');
      const report = await replaySession(session, {
        url,
        user: options.user,
        password,
        ...(options.deviceId ? { deviceId: options.deviceId } : {}),
        ...(maxHeartbeat ? { maxHeartbeat } : {}),
      });
      process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : formatDifferences(report));
      process.stderr.write(
        `${report.replayed} request(s) replayed as device ${report.deviceId}, ${report.differing.length} answer(s) differ\n`,
      );
      if (report.differing.length > 0) throw new CommanderError(1, 'replay.differs', 'answers differ');
    });
}

/** Reads the password from the terminal without echoing it. */
async function promptPassword(user: string): Promise<string> {
  if (!process.stdin.isTTY) throw new Error(`no password: set ${PASSWORD_VARIABLE} (stdin is not a terminal)`);
  let muted = false;
  const output = new Writable({
    write(chunk, _encoding, done) {
      if (!muted) process.stderr.write(chunk);
      done();
    },
  });
  const rl = createInterface({ input: process.stdin, output, terminal: true });
  try {
    const answer = new Promise<string>((resolve) => rl.question(`password for ${user}: `, resolve));
    muted = true;
    const password = await answer;
    process.stderr.write('\n');
    return password;
  } finally {
    rl.close();
  }
}
