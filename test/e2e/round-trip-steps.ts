/**
 * The distance between a runtime and its services, and the commands whose round trips over it are counted: shared by
 * bench/wan.ts (wall time and round trips at 0, 20 and 50 ms) and test/e2e/round-trips.test.ts (the counts kept).
 *
 * One latency proxy (test/services/latency-proxy.ts) per service the runtime reaches over the network: IMAP with
 * implicit TLS (services.imaps), SMTP with implicit TLS (services.smtps), DAV over https (Radicale), and the state
 * store where it is remote (dynalite, for DynamoDB on Lambda). Logins are counted in Dovecot's log.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { FolderType } from '../../src/backends/types.ts';
import { createLambdaRuntime } from '../../src/runtimes/lambda.ts';
import { child, childText, el } from '../../src/wbxml/tree.ts';
import { TestDevice, type TestServer } from '../device/device.ts';
import { functionUrlFetch } from '../device/function-url.ts';
import {
  countsBetween,
  type LatencyProxy,
  type RoundTripCounts,
  startLatencyProxy,
} from '../services/latency-proxy.ts';
import { createUser, makeMessage, seedMailbox, withImap } from '../services/seed.ts';
import type { TestServices, TestUser } from '../services/types.ts';
import { composeBody } from './mail/compose-helpers.ts';
import { pingBody } from './session-steps.ts';

// ------------------------------------------------------------------------------------------------ the distance

/** One proxy per service the runtime reaches over the network. */
export interface WanProxies {
  imap: LatencyProxy;
  smtp: LatencyProxy;
  dav: LatencyProxy;
  state: LatencyProxy;
}

export type Service = keyof WanProxies;
export const SERVICES: Service[] = ['imap', 'smtp', 'dav', 'state'];

export async function startWanProxies(services: TestServices): Promise<WanProxies> {
  const dav = new URL(services.caldavUrl);
  const dynamo = new URL(services.dynamodb.endpoint);
  if (!services.smtps) throw new Error(`bench:wan needs Postfix: ${services.smtpSkipReason}`);
  return {
    imap: await startLatencyProxy(services.imaps),
    smtp: await startLatencyProxy(services.smtps),
    dav: await startLatencyProxy({ host: dav.hostname, port: Number(dav.port) }),
    state: await startLatencyProxy({ host: dynamo.hostname, port: Number(dynamo.port) }),
  };
}

/** The settings of a tenant whose every backend is reached through the proxies, with TLS. */
export function wanSettings(services: TestServices, proxies: WanProxies): Record<string, string> {
  const viaDav = (url: string): string => {
    const u = new URL(url);
    u.host = `${proxies.dav.host}:${proxies.dav.port}`;
    return u.toString();
  };
  return {
    IMAP_HOST: proxies.imap.host,
    IMAP_PORT: String(proxies.imap.port),
    IMAP_SECURE: 'true',
    SMTP_HOST: proxies.smtp.host,
    SMTP_PORT: String(proxies.smtp.port),
    SMTP_SECURE: 'true',
    CALDAV_URL: viaDav(services.caldavUrl),
    CARDDAV_URL: viaDav(services.carddavUrl),
    TENANT: 'wan',
    PROVISIONING: 'loose',
    PING_MIN_HEARTBEAT: '1',
    PING_POLL_SECONDS: '1',
  };
}

/**
 * The Lambda runtime (in this process, called as a Function URL calls it) over the proxies, its state in the test
 * DynamoDB (dynalite) through the state proxy, in `table`.
 */
export function wanLambdaServer(services: TestServices, proxies: WanProxies, table: string): TestServer {
  const runtime = createLambdaRuntime({
    env: {
      ...wanSettings(services, proxies),
      DYNAMODB_TABLE: table,
      DYNAMODB_ENDPOINT: `http://${proxies.state.host}:${proxies.state.port}`,
      AWS_REGION: services.dynamodb.region,
      AWS_ACCESS_KEY_ID: services.dynamodb.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: services.dynamodb.credentials.secretAccessKey,
    },
    log: () => {},
    metricsOut: () => {},
  });
  return { fetch: functionUrlFetch((event) => runtime.http(event)), state: runtime.state, logs: [] };
}

export type Counts = Record<Service, RoundTripCounts> & { logins: number };

/** Dovecot's successful logins of this user so far. */
export function loginsOf(services: TestServices, user: TestUser): number {
  const log = readFileSync(`${services.dir}/dovecot/dovecot.log`, 'utf8');
  let n = 0;
  for (const line of log.split('\n'))
    if (/imap-login: (Info: )?Login: /.test(line) && line.includes(`user=<${user.email}>`)) n++;
  return n;
}

/**
 * Waits until what a request left behind has passed: a session logged out after the answer, and Dovecot's log line
 * of a login (written by its log process, a moment after the login).
 */
export async function settle(proxies: WanProxies): Promise<void> {
  await new Promise((r) => setTimeout(r, 400 + proxies.imap.rttMs * 2));
}

/** What `request` cost at the proxies and in logins, and how long it took. */
export async function measured<T>(
  services: TestServices,
  proxies: WanProxies,
  user: TestUser,
  request: () => Promise<T>,
): Promise<{ ms: number; counts: Counts; result: T }> {
  const before = SERVICES.map((s) => proxies[s].counts());
  const loginsBefore = loginsOf(services, user);
  const t0 = performance.now();
  const result = await request();
  const ms = performance.now() - t0;
  // Connections given back after the answer (a logout) are not the request's wait, but are its cost: let them pass.
  await settle(proxies);
  const counts = { logins: loginsOf(services, user) - loginsBefore } as Counts;
  for (const [i, s] of SERVICES.entries()) counts[s] = countsBetween(before[i]!, proxies[s].counts());
  return { ms, counts, result };
}

// ------------------------------------------------------------------------------------------------ the commands

export interface WanSession {
  services: TestServices;
  proxies: WanProxies;
  user: TestUser;
  device: TestDevice;
  inbox: string;
  /** Someone the user writes to. */
  recipient: TestUser;
}

export const COMMANDS = [
  'FolderSync',
  'Sync (no change)',
  'Sync (one new)',
  'Ping start',
  'SendMail',
  'ItemOperations Fetch',
] as const;
export type Command = (typeof COMMANDS)[number];

async function appendOne(s: WanSession, subject: string): Promise<void> {
  // Straight to Dovecot, not through the proxy: not the runtime's cost.
  await withImap(s.services, s.user, (imap) =>
    imap.append('INBOX', makeMessage({ from: 'dave@example.org', to: s.user.email, subject, text: 'New.\n' })),
  );
}

/**
 * Prepares (unmeasured) and returns the measured request of `command`, which checks its answer, and what the device
 * does next (unmeasured).
 */
export async function prepare(
  s: WanSession,
  command: Command,
): Promise<(() => Promise<void>) & { after?: () => Promise<unknown> }> {
  const { device, inbox } = s;
  switch (command) {
    case 'FolderSync':
      return async () => {
        const res = await device.folderSync();
        if (childText(res, 'Status') !== '1') throw new Error(`FolderSync Status ${childText(res, 'Status')}`);
      };
    case 'Sync (no change)':
      return async () => {
        const round = await device.sync(inbox);
        if (round.status !== 1 || round.added.length) throw new Error(`no-change Sync: ${round.status}`);
      };
    case 'Sync (one new)':
      await appendOne(s, `new ${randomBytes(3).toString('hex')}`);
      return async () => {
        const round = await device.sync(inbox);
        if (round.added.length !== 1) throw new Error(`one-new Sync added ${round.added.length}`);
      };
    case 'Ping start':
      await appendOne(s, `pushed ${randomBytes(3).toString('hex')}`);
      return Object.assign(
        async () => {
          const res = await device.send('Ping', pingBody(60, [inbox]));
          if (childText(res.body, 'Status') !== '2') throw new Error(`Ping Status ${childText(res.body, 'Status')}`);
        },
        // The device takes the message, as it would next.
        { after: () => device.sync(inbox) },
      );
    case 'SendMail':
      return async () => {
        const mime = makeMessage({
          from: s.user.email,
          to: s.recipient.email,
          subject: `wan ${randomBytes(3).toString('hex')}`,
          text: 'Sent at a distance.\n',
        });
        const res = await device.send('SendMail', composeBody('SendMail', mime));
        if (res.status !== 200 || res.bytes.length) throw new Error(`SendMail answered ${res.status}`);
      };
    case 'ItemOperations Fetch': {
      const serverId = [...device.items(inbox).keys()][0]!;
      return async () => {
        const res = await device.send(
          'ItemOperations',
          el('ItemOperations', 'ItemOperations', [
            el('ItemOperations', 'Fetch', [
              el('ItemOperations', 'Store', 'Mailbox'),
              el('AirSync', 'CollectionId', inbox),
              el('AirSync', 'ServerId', serverId),
              el('ItemOperations', 'Options', [el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '2')])]),
            ]),
          ]),
        );
        const status = childText(child(res.body, 'Response', 'ItemOperations'), 'Status', 'ItemOperations');
        if (res.status !== 200 || childText(res.body, 'Status', 'ItemOperations') !== '1')
          throw new Error(`ItemOperations answered ${res.status} ${status}`);
      };
    }
  }
}

/** A user with `messages` messages in the Inbox, a device that synced them. */
export async function startSession(
  services: TestServices,
  proxies: WanProxies,
  server: TestServer,
  messages = 20,
): Promise<WanSession> {
  const user = createUser(services);
  const recipient = createUser(services);
  await seedMailbox(
    services,
    user,
    'INBOX',
    Array.from({ length: messages }, (_, i) => ({
      message: makeMessage({
        from: 'Bob <bob@example.test>',
        to: user.email,
        subject: `Message ${i}`,
        text: `${i}.\n`,
      }),
    })),
  );
  const device = new TestDevice(server, user);
  await device.folderSync();
  const inbox = device.folderByType(FolderType.Inbox).serverId;
  await device.syncUntilDone(inbox);
  return { services, proxies, user, device, inbox, recipient };
}
