/**
 * `activesync-edge admin …`: the admin API (src/admin/api.ts) of a running server from the command line, as tables
 * or, with --json, as the API's own JSON. The server's address comes from --url (or ACTIVESYNC_EDGE_URL), the
 * token from --token or ADMIN_TOKEN. Bulk work (remove-idle) shows its progress on stderr.
 */
import type { Command } from 'commander';

export interface AdminOutput {
  out(text: string): void;
  err(text: string): void;
  /** Whether stderr is a terminal (progress redraws one line) or a log (one line per step). */
  interactive: boolean;
}

export const processOutput: AdminOutput = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  interactive: process.stderr.isTTY === true,
};

export interface GlobalOptions {
  url?: string;
  token?: string;
  tenant?: string;
  json?: boolean;
}

/** A failed admin call: the server's error message, or why the server could not be reached. */
export class AdminCallError extends Error {
  override readonly name = 'AdminCallError';
}

/** A client of one server's admin API. */
export class AdminClient {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
    private readonly tenant: string | undefined,
  ) {}

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = new URL(`${this.baseUrl.replace(/\/+$/, '')}/admin${path}`);
    if (this.tenant) url.searchParams.set('tenant', this.tenant);
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: {
          Authorization: `Bearer ${this.token}`,
          ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (err) {
      throw new AdminCallError(
        `cannot reach ${url.origin}: ${err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err)}`,
      );
    }
    const text = await response.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : {};
    } catch {
      json = undefined;
    }
    if (!response.ok) {
      const message = (json as { error?: unknown } | undefined)?.error;
      if (response.status === 404 && typeof message !== 'string')
        throw new AdminCallError(`${url.origin} has no admin API (is ADMIN_TOKEN set on the server?)`);
      throw new AdminCallError(typeof message === 'string' ? message : `HTTP ${response.status}`);
    }
    return json as T;
  }
}

export function clientOf(options: GlobalOptions): AdminClient {
  const token = options.token ?? process.env.ADMIN_TOKEN;
  if (!token) throw new AdminCallError('no admin token: pass --token or set ADMIN_TOKEN');
  const url = options.url ?? process.env.ACTIVESYNC_EDGE_URL ?? 'http://127.0.0.1:8080';
  return new AdminClient(url, token, options.tenant);
}

const device = (user: string, deviceId: string): string =>
  `/devices/${encodeURIComponent(user)}/${encodeURIComponent(deviceId)}`;

type Row = Record<string, unknown>;

/** Rows as a plain text table: one column per key, as wide as its widest value. */
export function table(rows: Row[], columns?: string[]): string {
  if (rows.length === 0) return '(none)\n';
  const keys = columns ?? [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown): string =>
    v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  const widths = keys.map((k) => Math.max(k.length, ...rows.map((r) => cell(r[k]).length)));
  const line = (values: string[]): string =>
    `${values
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd()}\n`;
  return (
    line(keys) + line(widths.map((w) => '-'.repeat(w))) + rows.map((r) => line(keys.map((k) => cell(r[k])))).join('')
  );
}

const DEVICE_COLUMNS = [
  'user',
  'deviceId',
  'deviceType',
  'model',
  'os',
  'protocolVersion',
  'provisioning',
  'wipe',
  'access',
  'lastSeen',
];

/** Adds `admin` and its operations to the program. */
export function addAdminCommands(program: Command, io: AdminOutput = processOutput): void {
  const admin = program
    .command('admin')
    .description('manage devices of a running server through its admin API')
    .option('--url <url>', 'the server (default: $ACTIVESYNC_EDGE_URL or http://127.0.0.1:8080)')
    .option('--token <token>', 'the admin token (default: $ADMIN_TOKEN)')
    .option('--tenant <tenant>', "the tenant (default: the server's TENANT)")
    .option('--json', 'print the API answer as JSON');

  /** An operation: calls the API, prints JSON or the table `render` makes of the answer. */
  const op =
    <A extends unknown[]>(
      run: (client: AdminClient, ...args: A) => Promise<unknown>,
      render: (answer: never) => string,
    ) =>
    async (...args: unknown[]): Promise<void> => {
      const command = args[args.length - 1] as Command;
      const options = command.optsWithGlobals<GlobalOptions>();
      const answer = await run(clientOf(options), ...(args.slice(0, -1) as A));
      io.out(options.json ? `${JSON.stringify(answer, null, 2)}\n` : render(answer as never));
    };

  admin
    .command('devices')
    .description('list devices: all of the tenant, or of one user')
    .option('--user <login>', 'only this user’s devices')
    .option('--idle-days <n>', 'only devices not seen for more than n days')
    .action(
      op(
        (client, o: { user?: string; idleDays?: string }) => {
          const query = new URLSearchParams();
          if (o.user) query.set('user', o.user);
          if (o.idleDays) query.set('idleDays', o.idleDays);
          return client.call('GET', `/devices${query.size ? `?${query}` : ''}`);
        },
        (a: { devices: Row[] }) => table(a.devices, DEVICE_COLUMNS),
      ),
    );

  admin
    .command('device')
    .description('show one device: what it is, its folders and their sync state, broken items')
    .argument('<user>')
    .argument('<deviceId>')
    .action(
      op(
        (client, user: string, id: string) => client.call('GET', device(user, id)),
        (a: { device: Row; folders: Row[]; brokenItems: Row[] }) =>
          Object.entries(a.device)
            .map(([k, v]) => `${k.padEnd(20)}${String(v)}\n`)
            .join('') +
          `\nfolders\n${table(a.folders, ['collectionId', 'name', 'class', 'synced', 'items', 'pending', 'filterType', 'syncKey', 'brokenItems'])}` +
          `\nbroken items\n${table(a.brokenItems, ['collectionId', 'serverId', 'subject', 'reason', 'at'])}`,
      ),
    );

  const deviceOp = (
    name: string,
    description: string,
    method: string,
    suffix: string,
    body?: (o: Record<string, unknown>) => unknown,
  ) => {
    const sub = admin.command(name).description(description).argument('<user>').argument('<deviceId>');
    return {
      sub,
      done: () =>
        sub.action(
          op(
            (client, user: string, id: string, o: Record<string, unknown>) =>
              client.call(method, `${device(user, id)}${suffix}`, body?.(o)),
            (a: { device?: Row; removed?: Row; resynced?: string[] }) =>
              a.resynced
                ? `resync of ${a.resynced.length ? a.resynced.join(', ') : 'the folder list'} asked for\n`
                : table([(a.device ?? a.removed)!], DEVICE_COLUMNS),
          ),
        ),
    };
  };

  const wipe = deviceOp('wipe', 'wipe the device on its next request', 'POST', '/wipe', (o) => ({
    kind: o.account ? 'account' : 'full',
  }));
  wipe.sub.option('--account', "only this account's data (protocol 16.1)");
  wipe.done();
  deviceOp('cancel-wipe', 'withdraw a wipe the device has not done yet', 'DELETE', '/wipe').done();
  const resync = deviceOp('resync', 'make the device resync every folder, or one', 'POST', '/resync', (o) =>
    o.folder ? { folder: o.folder } : {},
  );
  resync.sub.option('--folder <collectionId>', 'only this folder');
  resync.done();
  deviceOp('allow', 'allow the device whatever the rules say (releases a quarantine)', 'POST', '/access', () => ({
    access: 'allow',
  })).done();
  deviceOp('block', 'block the device whatever the rules say', 'POST', '/access', () => ({ access: 'block' })).done();
  deviceOp('reset-access', 'let the access rules decide for the device again', 'POST', '/access', () => ({
    access: 'none',
  })).done();
  deviceOp('remove', 'remove the device and all its sync state', 'DELETE', '').done();

  admin
    .command('remove-idle')
    .description('remove every device not seen for more than n days')
    .requiredOption('--days <n>', 'idle for more than this many days')
    .option('--dry-run', 'only list them')
    .action(async (o: { days: string; dryRun?: boolean }, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions>();
      const client = clientOf(options);
      const { devices } = await client.call<{ devices: Row[] }>(
        'GET',
        `/devices?idleDays=${encodeURIComponent(o.days)}`,
      );
      const removed: Row[] = [];
      if (!o.dryRun) {
        for (const [i, d] of devices.entries()) {
          await client.call('DELETE', device(String(d.user), String(d.deviceId)));
          removed.push(d);
          const step = `removed ${i + 1}/${devices.length}: ${String(d.user)} ${String(d.deviceId)}`;
          io.err(io.interactive ? `\r\x1b[K${step}` : `${step}\n`);
        }
        if (io.interactive && devices.length) io.err('\n');
      }
      const answer = { removed: o.dryRun ? devices : removed, dryRun: o.dryRun === true };
      io.out(
        options.json
          ? `${JSON.stringify(answer, null, 2)}\n`
          : `${table(answer.removed, DEVICE_COLUMNS)}${answer.removed.length} device(s) ${o.dryRun ? 'would be removed' : 'removed'}\n`,
      );
    });

  const rules = admin.command('rules').description("the tenant's device access rules (first match decides)");
  const renderRules = (a: { defaultAccess: string; rules: Row[] }): string =>
    `${table(a.rules, ['id', 'action', 'deviceType', 'model', 'userAgent', 'user'])}default: ${a.defaultAccess}\n`;
  rules
    .command('list')
    .description('list the rules')
    .action(op((client) => client.call('GET', '/rules'), renderRules));
  rules
    .command('add')
    .description('add a rule (patterns are regular expressions matched against the whole value, ignoring case)')
    .requiredOption('--action <action>', 'allow, block or quarantine')
    .option('--device-type <pattern>')
    .option('--model <pattern>')
    .option('--user-agent <pattern>')
    .option('--user <login>')
    .option('--id <id>')
    .option('--position <n>', 'where in the list (0 = first; default: last)')
    .action(
      op(
        (client, o: Record<string, string | undefined>) =>
          client.call('POST', '/rules', {
            action: o.action,
            ...(o.deviceType ? { deviceType: o.deviceType } : {}),
            ...(o.model ? { model: o.model } : {}),
            ...(o.userAgent ? { userAgent: o.userAgent } : {}),
            ...(o.user ? { user: o.user } : {}),
            ...(o.id ? { id: o.id } : {}),
            ...(o.position !== undefined ? { position: Number(o.position) } : {}),
          }),
        renderRules,
      ),
    );
  rules
    .command('remove')
    .description('remove a rule')
    .argument('<id>')
    .action(op((client, id: string) => client.call('DELETE', `/rules/${encodeURIComponent(id)}`), renderRules));
  rules
    .command('default')
    .description('what happens to devices no rule matches')
    .argument('<access>', 'allow, block or quarantine')
    .action(
      op(async (client, access: string) => {
        const current = await client.call<{ rules: Row[] }>('GET', '/rules');
        return client.call('PUT', '/rules', { defaultAccess: access, rules: current.rules });
      }, renderRules),
    );

  const capture = admin
    .command('capture')
    .description("keep a user's (or one device's) ActiveSync requests and answers for a while, to export them");
  const captureColumns = ['user', 'deviceId', 'startedAt', 'until', 'maxBodyBytes'];
  const captureUser = (user: string, deviceId?: string): string =>
    `/captures/${encodeURIComponent(user)}${deviceId !== undefined ? `/${encodeURIComponent(deviceId)}` : ''}`;
  capture
    .command('start')
    .description('start capturing (again: change the end or the body size)')
    .argument('<user>')
    .argument('[deviceId]', 'only this device (default: every device of the user)')
    .requiredOption('--minutes <n>', 'for this many minutes (at most 1440)')
    .option(
      '--max-body-bytes <n>',
      "cut bodies and attachments to n characters, 0: keep only their size (default: the server's CAPTURE_MAX_BODY_BYTES)",
    )
    .action(
      op(
        (client, user: string, deviceId: string | undefined, o: { minutes: string; maxBodyBytes?: string }) =>
          client.call('POST', '/captures', {
            user,
            minutes: Number(o.minutes),
            ...(deviceId !== undefined ? { deviceId } : {}),
            ...(o.maxBodyBytes !== undefined ? { maxBodyBytes: Number(o.maxBodyBytes) } : {}),
          }),
        (a: { capture: Row }) => table([a.capture], captureColumns),
      ),
    );
  capture
    .command('stop')
    .description('stop capturing (what was captured stays until it expires)')
    .argument('<user>')
    .argument('[deviceId]', 'the device given to start (default: the capture of every device of the user)')
    .action(
      op(
        (client, user: string, deviceId: string | undefined) => client.call('DELETE', captureUser(user, deviceId)),
        (a: { stopped: Row }) =>
          `capture of ${String(a.stopped.user)}${a.stopped.deviceId !== undefined ? ` ${String(a.stopped.deviceId)}` : ''} stopped\n`,
      ),
    );
  capture
    .command('list')
    .description('the captures that are on')
    .action(
      op(
        (client) => client.call('GET', '/captures'),
        (a: { captures: Row[] }) => table(a.captures, captureColumns),
      ),
    );
  capture
    .command('export')
    .description("write a device's captured requests as a JSON session file to stdout")
    .argument('<user>')
    .argument('<deviceId>')
    .action(async (user: string, deviceId: string, _o: unknown, command: Command) => {
      const session = await clientOf(command.optsWithGlobals<GlobalOptions>()).call<{ requests: unknown[] }>(
        'GET',
        captureUser(user, deviceId),
      );
      io.out(`${JSON.stringify(session, null, 2)}\n`);
      io.err(`${session.requests.length} request(s)\n`);
    });
  capture
    .command('clear')
    .description("discard a device's captured requests")
    .argument('<user>')
    .argument('<deviceId>')
    .action(
      op(
        (client, user: string, deviceId: string) => client.call('DELETE', `${captureUser(user, deviceId)}/records`),
        () => 'captured requests discarded\n',
      ),
    );

  admin
    .command('stats')
    .description('requests, errors and latency per command')
    .option('--minutes <n>', 'over the last n minutes', '60')
    .action(
      op(
        (client, o: { minutes: string }) => client.call('GET', `/stats?minutes=${encodeURIComponent(o.minutes)}`),
        (a: { minutes: number; commands: Row[] }) =>
          `last ${a.minutes} minutes\n${table(a.commands, ['command', 'requests', 'errors', 'avgMs', 'maxMs'])}`,
      ),
    );
}
