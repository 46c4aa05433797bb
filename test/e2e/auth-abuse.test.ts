/**
 * Authentication abuse (issue 10 item 4), through the real app against the test Dovecot:
 * - failed logins are counted before the login (concurrent guesses all count) per user name and address, per user
 *   name and per address, in the StateStore, so that two app instances (stateless, one shared SQLite database or
 *   DynamoDB table) see the same counts; a throttled login gets 503 + Retry-After and never reaches IMAP; an address
 *   the user signed in from keeps working while strangers are throttled (issue 17 item 11); one user's concurrent
 *   first logins from one address are not refused for the ones still pending;
 * - a 401 is the same for an unknown user and a wrong password;
 * - the admin token check is exact whatever the lengths (and hashed: constant time);
 * - no credential (password, Basic header, Bearer token, in clear or base64) appears in any log line of a full
 *   device session, failures included.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { buildApp } from '../../src/app/build.ts';
import { bearerMatches, tokenMatches } from '../../src/admin/api.ts';
import { commandSummary } from '../../src/admin/stats.ts';
import { pooledImapSessions, type ImapSessions } from '../../src/backends/imap/sessions.ts';
import { forgetVerifiedLogins } from '../../src/protocol/throttle.ts';
import { FolderType } from '../../src/backends/types.ts';
import { loadConfig } from '../../src/config.ts';
import type { LogEntry } from '../../src/log.ts';
import { openSqliteStateStore } from '../../src/state/sqlite-node.ts';
import { DynamoDbStateStore, createStateTable } from '../../src/state/dynamodb/store.ts';
import type { StateStore } from '../../src/state/types.ts';
import { el } from '../../src/wbxml/tree.ts';
import { TestDevice, testServer, type TestServer } from '../device/device.ts';
import { createUser, seedMailbox } from '../services/seed.ts';
import type { TestUser } from '../services/types.ts';
import { compose } from './mail/compose-helpers.ts';
import { fetchAttachmentMultipart, moveToArchive, pingBody, seedInbox } from './session-steps.ts';

const services = inject('services');
const AS_URL = 'https://eas.example.test/Microsoft-Server-ActiveSync';
const AUTODISCOVER_URL = 'https://eas.example.test/autodiscover/autodiscover.xml';
const WINDOW_SECONDS = 120;

function basic(login: string, password: string): string {
  return `Basic ${Buffer.from(`${login}:${password}`).toString('base64')}`;
}

/** One app instance over a shared state store, with IMAP logins counted (the real pooled sessions, counted). */
interface Instance {
  fetch(url: string, init?: RequestInit): Promise<Response>;
  logs: LogEntry[];
  imapLogins: () => number;
}

function instance(state: StateStore, env: Record<string, string> = {}): Instance {
  const config = loadConfig({
    IMAP_HOST: services.imap.host,
    IMAP_PORT: String(services.imap.port),
    IMAP_SECURE: 'false',
    TENANT: 'abuse',
    PROVISIONING: 'loose',
    AUTH_FAIL_LIMIT: '2',
    AUTH_FAIL_USER_LIMIT: '4',
    AUTH_FAIL_IP_LIMIT: '6',
    AUTH_FAIL_WINDOW_SECONDS: String(WINDOW_SECONDS),
    CLIENT_IP_HEADER: 'X-Client-IP',
    ...env,
  });
  const pooled = pooledImapSessions(config.imap);
  let logins = 0;
  const counted: ImapSessions = {
    acquire: (login) => {
      logins += 1;
      return pooled.acquire(login);
    },
    release: (client, reusable) => pooled.release(client, reusable),
  };
  const logs: LogEntry[] = [];
  const { app } = buildApp({ settings: config, imapSessions: () => counted, state, log: (e) => logs.push(e) });
  return { fetch: async (url, init) => app.request(url, init), logs, imapLogins: () => logins };
}

function folderSync(server: Instance, authorization: string, ip: string, deviceId = 'ABUSEDEV01'): Promise<Response> {
  return server.fetch(`${AS_URL}?Cmd=FolderSync&User=x&DeviceId=${deviceId}&DeviceType=iPhone`, {
    method: 'POST',
    headers: {
      Authorization: authorization,
      'MS-ASProtocolVersion': '14.1',
      'Content-Type': 'application/vnd.ms-sync.wbxml',
      'X-Client-IP': ip,
    },
    body: new Uint8Array([3, 1, 106, 0, 0, 7, 86, 82, 3, 48, 0, 1, 1]),
  });
}

function autodiscover(server: Instance, authorization: string, ip: string): Promise<Response> {
  return server.fetch(AUTODISCOVER_URL, {
    method: 'POST',
    headers: { Authorization: authorization, 'Content-Type': 'text/xml', 'X-Client-IP': ip },
    body: '',
  });
}

function options(server: Instance, authorization: string, ip: string): Promise<Response> {
  return server.fetch(AS_URL, { method: 'OPTIONS', headers: { Authorization: authorization, 'X-Client-IP': ip } });
}

/** Status, headers (without Date) and body: everything a client can see of an answer. */
async function visible(res: Response): Promise<{ status: number; headers: [string, string][]; body: string }> {
  const headers = [...res.headers.entries()].filter(([name]) => name !== 'date').sort();
  return { status: res.status, headers, body: await res.text() };
}

/** Two stores over one shared state, as two processes open it: SQLite (one database), DynamoDB (one dynalite table). */
const sharedStores: [string, () => Promise<[StateStore, StateStore]>][] = [
  [
    'SQLite',
    async () => {
      const store = openSqliteStateStore(':memory:').store;
      return [store, store];
    },
  ],
  [
    'DynamoDB (dynalite)',
    async () => {
      const { endpoint, region, credentials } = services.dynamodb;
      const table = `abuse-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
      const open = () =>
        new DynamoDbStateStore({ client: new DynamoDBClient({ endpoint, region, credentials }), table });
      await createStateTable(new DynamoDBClient({ endpoint, region, credentials }), table);
      return [open(), open()];
    },
  ],
];

describe.each(sharedStores)('throttling of failed logins, two instances sharing %s', (_name, openStores) => {
  let stores: [StateStore, StateStore];
  let state: StateStore;
  let a: Instance;
  let b: Instance;

  beforeAll(async () => {
    stores = await openStores();
    const [first, second] = stores;
    state = first;
    // Two stateless instances behind one load balancer: what one counts, the other enforces.
    a = instance(first);
    b = instance(second);
  });

  it('limits one address’s guesses at a name, whatever form of the name, on every instance and entry point, without asking IMAP', async () => {
    const user = createUser(services);
    const stranger = '198.51.100.1';
    // `u…@example.test` and the bare `u…` are one account to Dovecot, and one name to the count.
    expect((await folderSync(a, basic(user.email, 'wrong-1'), stranger)).status).toBe(401);
    expect((await folderSync(b, basic(user.name.toUpperCase(), 'wrong-2'), stranger)).status).toBe(401);

    const before = a.imapLogins() + b.imapLogins();
    // Now even the right password is refused from there: a guesser cannot learn that a guess was right.
    for (const server of [a, b]) {
      const res = await folderSync(server, basic(user.email, user.password), stranger);
      expect(res.status).toBe(503);
      const retryAfter = Number(res.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(WINDOW_SECONDS);
      expect((await autodiscover(server, basic(user.name, user.password), stranger)).status).toBe(503);
      expect((await options(server, basic(`EXAMPLE\\${user.name}`, user.password), stranger)).status).toBe(503);
    }
    expect(a.imapLogins() + b.imapLogins()).toBe(before);
    expect(a.logs.at(-1)).toMatchObject({ http: 503 });
    // Refused attempts are not failures: the name's count holds the two guesses only.
    expect((await state.getAuthFailures('abuse', `user:${user.name}`))?.count).toBe(2);

    // The user from another address, and other users from this one, log in.
    expect((await folderSync(b, basic(user.email, user.password), '198.51.100.2')).status).toBe(200);
    const other = createUser(services);
    expect((await folderSync(a, basic(other.email, other.password), stranger)).status).toBe(200);
  });

  it('lets the owner’s signed-in device keep working when strangers from many addresses exhaust the name’s count', async () => {
    const owner = createUser(services);
    const phone = '192.0.2.10';
    expect((await folderSync(a, basic(owner.email, owner.password), phone)).status).toBe(200);
    // A good login takes its attempt back: the name's count is empty.
    expect((await state.getAuthFailures('abuse', `user:${owner.name}`))?.count ?? 0).toBe(0);

    // Strangers from two addresses, two guesses each (AUTH_FAIL_LIMIT), fill the name's count (AUTH_FAIL_USER_LIMIT).
    for (const stranger of ['203.0.113.21', '203.0.113.22'])
      for (const server of [a, b])
        expect((await folderSync(server, basic(owner.name, 'guess'), stranger)).status).toBe(401);
    const before = a.imapLogins() + b.imapLogins();
    // A third stranger is refused at once, even with the right password…
    expect((await folderSync(a, basic(owner.email, owner.password), '203.0.113.23')).status).toBe(503);
    expect(a.imapLogins() + b.imapLogins()).toBe(before);
    // …while the owner's phone keeps syncing, on both instances.
    for (const server of [a, b, a])
      expect((await folderSync(server, basic(owner.email, owner.password), phone)).status).toBe(200);
    // The owner's own typos still count for the phone's address (AUTH_FAIL_LIMIT), and a good login clears them.
    expect((await folderSync(b, basic(owner.email, 'typo'), phone)).status).toBe(401);
    expect((await folderSync(a, basic(owner.email, owner.password), phone)).status).toBe(200);
    expect(await state.getAuthFailures('abuse', `pair:${owner.name}|${phone}`)).toBeUndefined();
    // The strangers' failures stay counted: one good login does not reset a spray.
    expect((await state.getAuthFailures('abuse', `user:${owner.name}`))?.count).toBe(4);
  });

  it('lets only AUTH_FAIL_LIMIT of many concurrent guesses reach the mail server', async () => {
    const user = createUser(services);
    // Only the name-and-address count is in play here (the others' own orders of arrival would mix in).
    const wide = { AUTH_FAIL_USER_LIMIT: '100', AUTH_FAIL_IP_LIMIT: '100' };
    const [c, d] = [instance(stores[0], wide), instance(stores[1], wide)];
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) => folderSync(i % 2 ? c : d, basic(user.email, `guess-${i}`), '198.51.100.30')),
    );
    const statuses = answers.map((r) => r.status).sort();
    expect(statuses).toEqual([401, 401, 503, 503, 503, 503, 503, 503]);
    expect(c.imapLogins() + d.imapLogins()).toBe(2);
    expect((await state.getAuthFailures('abuse', `pair:${user.name}|198.51.100.30`))?.count).toBe(2);
  });

  it('lets one user’s concurrent first logins from one address through, more than AUTH_FAIL_LIMIT of them', async () => {
    // Pending logins count until they end, but only failures refuse: the others wait for the pending ones.
    const user = createUser(services);
    forgetVerifiedLogins();
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        folderSync(i % 2 ? a : b, basic(user.email, user.password), '198.51.100.40', `FIRSTDEV${i}`),
      ),
    );
    expect(answers.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(await state.getAuthFailures('abuse', `pair:${user.name}|198.51.100.40`)).toBeUndefined();
    expect((await state.getAuthFailures('abuse', `user:${user.name}`))?.count ?? 0).toBe(0);
  });

  it('refuses an address spraying names after AUTH_FAIL_IP_LIMIT failures, except for users who signed in from it', async () => {
    const sprayer = '203.0.113.9';
    // A colleague behind the same address (a carrier's NAT) signed in earlier.
    const colleague = createUser(services);
    expect((await folderSync(a, basic(colleague.email, colleague.password), sprayer)).status).toBe(200);
    for (let i = 0; i < 6; i++) {
      // Names that exist and names that do not count alike.
      const login = i % 2 === 0 ? `nobody${i}@example.test` : createUser(services).email;
      expect((await folderSync(i % 2 ? a : b, basic(login, 'guess'), sprayer)).status).toBe(401);
    }
    const fresh = createUser(services);
    const before = a.imapLogins();
    expect((await folderSync(a, basic(fresh.email, fresh.password), sprayer)).status).toBe(503);
    expect(a.imapLogins()).toBe(before);
    // The same user from another address logs in, and the colleague from the sprayer's.
    expect((await folderSync(a, basic(fresh.email, fresh.password), '203.0.113.10')).status).toBe(200);
    expect((await folderSync(b, basic(colleague.email, colleague.password), sprayer)).status).toBe(200);
  });

  it('forgets an address’s failures after a good password, so a typo now and then never locks anyone out', async () => {
    const typo = createUser(services);
    for (let round = 0; round < 3; round++) {
      expect((await folderSync(a, basic(typo.email, 'typo-1'), '192.0.2.77')).status).toBe(401);
      expect((await folderSync(b, basic(typo.email, typo.password), '192.0.2.77')).status).toBe(200);
    }
    expect(await state.getAuthFailures('abuse', `pair:${typo.name}|192.0.2.77`)).toBeUndefined();
  });
});

describe('throttling turned off', () => {
  it('is off with AUTH_FAIL_LIMIT, AUTH_FAIL_USER_LIMIT and AUTH_FAIL_IP_LIMIT all 0', async () => {
    const off = instance(openSqliteStateStore(':memory:').store, {
      AUTH_FAIL_LIMIT: '0',
      AUTH_FAIL_USER_LIMIT: '0',
      AUTH_FAIL_IP_LIMIT: '0',
    });
    const victim = createUser(services);
    for (let i = 0; i < 5; i++)
      expect((await folderSync(off, basic(victim.email, 'nope'), '192.0.2.200')).status).toBe(401);
    expect((await folderSync(off, basic(victim.email, victim.password), '192.0.2.200')).status).toBe(200);
  });
});

describe('statistics of requests with made-up commands', () => {
  it('counts every command name that is not the protocol’s under one row, with or without credentials', async () => {
    const store = openSqliteStateStore(':memory:').store;
    const server = instance(store, { AUTH_FAIL_LIMIT: '0', AUTH_FAIL_USER_LIMIT: '0', AUTH_FAIL_IP_LIMIT: '0' });
    const user = createUser(services);
    const random = Array.from({ length: 20 }, (_, i) => `Cmd${i}${Math.random().toString(36).slice(2)}`);
    for (const [i, cmd] of random.entries()) {
      // Strangers without credentials, then the user with a good password.
      const authorization = i % 2 ? basic(user.email, user.password) : undefined;
      const res = await server.fetch(`${AS_URL}?Cmd=${cmd}&User=x&DeviceId=STATSDEV01&DeviceType=iPhone`, {
        method: 'POST',
        headers: { ...(authorization ? { Authorization: authorization } : {}), 'MS-ASProtocolVersion': '14.1' },
      });
      expect(res.status).toBe(i % 2 ? 400 : 401);
    }
    expect((await folderSync(server, basic(user.email, user.password), '192.0.2.90')).status).toBe(200);
    const rows = await commandSummary(store, 'abuse', 5);
    expect(rows.map((r) => [r.command, r.requests]).sort()).toEqual([
      ['FolderSync', 1],
      ['unknown', 20],
    ]);
    // The log lines name no made-up command either, except cut short in the error of an authenticated one.
    const lines = server.logs.filter((e) => e.event === undefined);
    for (const entry of lines.slice(0, 20)) expect(entry.cmd).toBe('unknown');
    expect(lines[1]!.error).toBe(`unknown command ${JSON.stringify(random[1]!.slice(0, 32))}`);
  });
});

describe('what a 401 tells', () => {
  it('answers an unknown user exactly as a wrong password: same status, headers, body, log line, one IMAP login each', async () => {
    const server = instance(openSqliteStateStore(':memory:').store, {
      AUTH_FAIL_LIMIT: '0',
      AUTH_FAIL_USER_LIMIT: '0',
      AUTH_FAIL_IP_LIMIT: '0',
    });
    const real = createUser(services);
    const unknown = `no-such-user-${Date.now()}@example.test`;
    for (const send of [folderSync, autodiscover, options]) {
      const logins = server.imapLogins();
      const wrongPassword = await visible(await send(server, basic(real.email, 'not-the-password'), '192.0.2.50'));
      const afterFirst = server.imapLogins();
      const unknownUser = await visible(await send(server, basic(unknown, 'not-the-password'), '192.0.2.50'));
      expect(wrongPassword.status).toBe(401);
      expect(unknownUser).toEqual(wrongPassword);
      // The same work for both: one login attempt at the mail server (no shortcut for unknown names).
      expect(afterFirst - logins).toBe(1);
      expect(server.imapLogins() - afterFirst).toBe(1);
      const [first, second] = server.logs.slice(-2);
      const { time: _t1, ms: _m1, user: _u1, ...restFirst } = first!;
      const { time: _t2, ms: _m2, user: _u2, ...restSecond } = second!;
      expect(restSecond).toEqual(restFirst);
    }
  });

  it('throttles an unknown user exactly as a real one', async () => {
    const server = instance(openSqliteStateStore(':memory:').store, {
      AUTH_FAIL_LIMIT: '1',
      AUTH_FAIL_USER_LIMIT: '1',
    });
    const real = createUser(services);
    const unknown = `ghost-${Date.now()}@example.test`;
    await folderSync(server, basic(real.email, 'x'), '192.0.2.60');
    await folderSync(server, basic(unknown, 'x'), '192.0.2.61');
    const realAnswer = await visible(await folderSync(server, basic(real.email, 'x'), '192.0.2.62'));
    const unknownAnswer = await visible(await folderSync(server, basic(unknown, 'x'), '192.0.2.63'));
    expect(realAnswer.status).toBe(503);
    expect({ ...unknownAnswer, headers: unknownAnswer.headers.filter(([n]) => n !== 'retry-after') }).toEqual({
      ...realAnswer,
      headers: realAnswer.headers.filter(([n]) => n !== 'retry-after'),
    });
  });
});

describe('the admin token', () => {
  const token = 'a3f1c9e07b2d4a6f8e1c0b9d7a5f3e21';
  it('matches only the exact token, whatever the length or case of a wrong one', async () => {
    expect(await bearerMatches(`Bearer ${token}`, token)).toBe(true);
    expect(await bearerMatches(`bearer   ${token}  `, token)).toBe(true);
    for (const wrong of [
      token.slice(0, -1),
      `${token}0`,
      token.toUpperCase(),
      '',
      'x',
      token.replace(/.$/, '0'),
      `${token}${token}`,
    ]) {
      expect(await bearerMatches(`Bearer ${wrong}`, token)).toBe(false);
    }
    expect(await bearerMatches(undefined, token)).toBe(false);
    expect(await bearerMatches(`Basic ${token}`, token)).toBe(false);
    // The console's sign-in form compares the same way, without the header.
    expect(await tokenMatches(token, token)).toBe(true);
    expect(await tokenMatches(`${token} `, token)).toBe(false);
    expect(await tokenMatches('', token)).toBe(false);
    // The comparison runs over digests of equal length (SHA-256 of each side), never over the raw strings.
    expect(bearerMatches.toString()).toMatch(/tokenMatches\(/);
    expect(tokenMatches.toString()).toMatch(/digest\(["']SHA-256["']/);
    for (const f of [bearerMatches, tokenMatches]) expect(f.toString()).not.toMatch(/===\s*token|token\s*===/);
  });
});

describe('credentials in logs', () => {
  let server: TestServer;
  let user: TestUser;
  let printed: string[];
  const restore: (() => void)[] = [];

  beforeAll(async () => {
    user = createUser(services);
    await seedInbox(services, user);
    server = testServer(services, {
      AUTH_MODE: 'both',
      // An identity provider whose keys are never needed: the token below is unsigned, refused before any key lookup.
      BEARER_JWKS_URL: 'http://127.0.0.1:1/jwks.json',
      BEARER_ISSUER: 'https://idp.example.test/',
      BEARER_AUDIENCE: 'activesync-edge',
      BEARER_USER_CLAIM: 'email',
      ADMIN_TOKEN: 'admin-token-0123456789abcdef',
      AUTH_FAIL_LIMIT: '2',
      PING_MIN_HEARTBEAT: '1',
      PING_MAX_HEARTBEAT: '5',
      PING_POLL_SECONDS: '0.2',
    });
    // Whatever else prints (libraries, stray console calls) is a log line too.
    printed = [];
    for (const name of ['log', 'info', 'warn', 'error', 'debug'] as const) {
      const original = console[name];
      console[name] = (...args: unknown[]) => {
        printed.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
      };
      restore.push(() => (console[name] = original));
    }
    for (const stream of [process.stdout, process.stderr]) {
      const original = stream.write.bind(stream);
      stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
        printed.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
        return (original as (...a: unknown[]) => boolean)(chunk, ...rest);
      }) as typeof stream.write;
      restore.push(() => (stream.write = original));
    }
  });

  afterAll(() => {
    for (const undo of restore.reverse()) undo();
  });

  it('never logs a password, a Basic header or a Bearer token, in clear or encoded, over a full session with failures', async () => {
    const device = new TestDevice(server, user);
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.syncUntilDone(inbox);
    await fetchAttachmentMultipart(device, inbox);
    expect((await device.send('Ping', pingBody(2, [inbox]))).status).toBe(200);
    await device.command(
      'Settings',
      el('Settings', 'Settings', [el('Settings', 'UserInformation', [el('Settings', 'Get')])]),
    );
    await device.send(
      'GetItemEstimate',
      el('GetItemEstimate', 'GetItemEstimate', [
        el('GetItemEstimate', 'Collections', [
          el('GetItemEstimate', 'Collection', [
            el('AirSync', 'SyncKey', device.collections.get(inbox)!.syncKey),
            el('GetItemEstimate', 'CollectionId', inbox),
          ]),
        ]),
      ]),
    );
    await device.send(
      'Search',
      el('Search', 'Search', [
        el('Search', 'Store', [
          el('Search', 'Name', 'Mailbox'),
          el('Search', 'Query', [
            el('Search', 'And', [el('AirSync', 'Class', 'Email'), el('Search', 'FreeText', 'Scan')]),
          ]),
          el('Search', 'Options', [el('Search', 'Range', '0-9')]),
        ]),
      ]),
    );
    await moveToArchive(services, user, device, inbox);
    await compose(
      device,
      'SendMail',
      `From: ${user.email}\r\nTo: ${user.email}\r\nSubject: log check\r\n\r\nhello\r\n`,
      { clientId: 'log-check-1' },
    );
    // Commands that fail: a bad body, a collection that does not exist, an unknown command.
    await device.send('Sync', new Uint8Array([3, 1, 106, 0, 0, 0x45, 0x4f, 0x01]));
    await device.send(
      'Sync',
      el('AirSync', 'Sync', [
        el('AirSync', 'Collections', [
          el('AirSync', 'Collection', [el('AirSync', 'SyncKey', '99'), el('AirSync', 'CollectionId', 'nope')]),
        ]),
      ]),
    );
    await device.send('NoSuchCommand');
    await seedMailbox(services, user, 'INBOX', [{ message: { to: user.email, subject: 'late' } }]);
    await device.sync(inbox);

    // Failed logins: a wrong password (then throttled), a Bearer token the mail server refuses, Autodiscover.
    const wrong = new TestDevice(server, { ...user, password: `${user.password}-typo` });
    wrong.autoProvision = false;
    for (let i = 0; i < 3; i++)
      await wrong.send('FolderSync', el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]));
    const bearerToken = 'eyJhbGciOiJub25lIn0.eyJlbWFpbCI6ImJlYXJlckBleGFtcGxlLnRlc3QifQ.c2VjcmV0LXNpZ25hdHVyZQ';
    const bearer = new TestDevice(server, user);
    bearer.autoProvision = false;
    bearer.authorization = `Bearer ${bearerToken}`;
    await bearer.send('FolderSync', el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]));
    await server.fetch(AUTODISCOVER_URL, {
      method: 'POST',
      headers: { Authorization: basic(user.email, user.password), 'Content-Type': 'text/xml' },
      body: '',
    });
    await server.fetch(AUTODISCOVER_URL, {
      method: 'POST',
      headers: { Authorization: `Bearer ${bearerToken}` },
      body: '',
    });
    await server.fetch('https://eas.example.test/admin/devices', {
      headers: { Authorization: 'Bearer admin-token-0123456789abcdef' },
    });
    await server.fetch('https://eas.example.test/admin/devices', {
      headers: { Authorization: 'Bearer wrong-admin-token-000000000' },
    });

    const text = [...server.logs.map((e) => JSON.stringify(e)), ...printed].join('\n');
    expect(server.logs.length).toBeGreaterThan(20);
    expect(server.logs.some((e) => e.http === 401)).toBe(true);
    expect(server.logs.some((e) => e.http === 503)).toBe(true);
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const secrets = [
      user.password,
      `${user.password}-typo`,
      b64(`${user.email}:${user.password}`),
      b64(`${user.email}:${user.password}-typo`),
      b64(user.password),
      bearerToken,
      bearerToken.split('.')[2]!,
      b64(bearerToken),
      'admin-token-0123456789abcdef',
      'wrong-admin-token-000000000',
    ];
    for (const secret of secrets) expect(text.includes(secret), `a log line holds ${secret.slice(0, 6)}…`).toBe(false);
  }, 60_000);
});
