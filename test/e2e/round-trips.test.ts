/**
 * Round trips per command stay where issue 18 cut them (bench/wan.ts measures what they cost at 20 and 50 ms). A
 * latency proxy in front of each service (4 ms of round-trip time: it is here to count) counts the request→response turn-arounds
 * each command makes, and Dovecot's log its logins: with a pooled session (Node, and Lambda with DynamoDB on dynalite
 * through the proxy) and with a session per request, as Workers have (the same code as in workerd; the Worker itself
 * runs in bench/wan.ts and test/workers/logins.test.ts). IMAP is implicit TLS, SMTP implicit TLS, DAV https.
 *
 * A fresh session's set-up is TLS (two turns: the handshake, then the greeting) and LOGIN with ENABLE pipelined behind
 * it; LOGOUT is sent as the session ends and not waited for. imapflow's own set-up also sent ID before and after the
 * login, waited for AUTHENTICATE's continuation, sent NAMESPACE, ENABLE after LOGIN's answer, LIST + LSUB before the
 * first SELECT, and waited for LOGOUT's answer (src/backends/imap/connection.ts LeanImapFlow): each of those shows
 * here as a turn more if an imapflow update changes what LeanImapFlow overrides.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildApp } from '../../src/app/build.ts';
import { freshImapSessions, type ImapSessions, pooledImapSessions } from '../../src/backends/imap/sessions.ts';
import { imapClient, type ImapSettings, logOutWithoutWaiting } from '../../src/backends/imap/connection.ts';
import { loadConfig } from '../../src/config.ts';
import { openSqliteStateStore } from '../../src/state/sqlite-node.ts';
import type { TestServer } from '../device/device.ts';
import { countsBetween } from '../services/latency-proxy.ts';
import { createUser } from '../services/seed.ts';
import {
  COMMANDS,
  type Command,
  loginsOf,
  measured,
  settle,
  prepare,
  startSession,
  startWanProxies,
  type WanProxies,
  wanLambdaServer,
  wanSettings,
} from './round-trip-steps.ts';

const services = inject('services');
let proxies: WanProxies;

beforeAll(async () => {
  proxies = await startWanProxies(services);
  // A little distance, so that what a client sends last before it closes (LOGOUT, not waited for) reaches the proxy
  // before any answer, as it does at a real distance; with none the two race and the count of that turn with them.
  for (const p of Object.values(proxies)) p.rttMs = 4;
});

afterAll(async () => {
  for (const p of Object.values(proxies ?? {})) await p.close();
});

function inProcess(imapSessions: (imap: ImapSettings) => ImapSessions): TestServer {
  const state = openSqliteStateStore(':memory:').store;
  const { app } = buildApp({
    settings: loadConfig(wanSettings(services, proxies)),
    state,
    imapSessions,
    log: () => {},
  });
  return { fetch: async (url, init) => app.request(url, init), state, logs: [] };
}

function onLambda(): TestServer {
  return wanLambdaServer(services, proxies, `ase-round-trips-${randomBytes(4).toString('hex')}`);
}

/** Per command: IMAP turn-arounds, IMAP connections, logins; and the state store's turn-arounds where it is remote. */
type Expected = Record<Command, { imap: number; connections: number; logins: number; state?: number }>;

/** With a pooled session: no login, no connection, only the command's own IMAP work. */
const POOLED: Expected = {
  FolderSync: { imap: 1, connections: 0, logins: 0 },
  'Sync (no change)': { imap: 1, connections: 0, logins: 0 },
  // SELECT, and one FETCH of the new UID's summary, structure, header fields and first 16 KB, which hold all of a
  // small message (backends/imap/mail.ts arrivalsOnly, fetchMessageParts).
  'Sync (one new)': { imap: 2, connections: 0, logins: 0 },
  'Ping start': { imap: 1, connections: 0, logins: 0 },
  // LIST (for Sent, while SMTP submits) and APPEND.
  SendMail: { imap: 2, connections: 0, logins: 0 },
  'ItemOperations Fetch': { imap: 1, connections: 0, logins: 0 },
};

/**
 * A session per request: the set-up, one connection, one login, and the command's work on a session that has nothing
 * selected yet (a SELECT before ItemOperations' FETCH). The set-up is 3 turns: the TLS 1.3 handshake, the greeting,
 * LOGIN with ENABLE pipelined behind it (LeanImapFlow); LOGOUT goes out as the session ends, not waited for.
 */
const SETUP_TURNS = 3;
const perRequest = (pooled: Expected[Command], selects = 0): Expected[Command] => ({
  imap: SETUP_TURNS + pooled.imap + selects,
  connections: 1,
  logins: 1,
});
const PER_REQUEST: Expected = {
  FolderSync: perRequest(POOLED.FolderSync),
  'Sync (no change)': perRequest(POOLED['Sync (no change)']),
  'Sync (one new)': perRequest(POOLED['Sync (one new)']),
  'Ping start': perRequest(POOLED['Ping start']),
  SendMail: perRequest(POOLED.SendMail),
  'ItemOperations Fetch': perRequest(POOLED['ItemOperations Fetch'], 1),
};

/**
 * Lambda: as pooled, and the DynamoDB requests. What a command reads goes out in one wave with the device's record
 * (state/read-ahead.ts), the GetItems of it as one BatchGetItem (state/dynamodb/batched-reads.ts): the device, the
 * login's failure count, the hierarchy, the collection, the caches. Beside it a Sync queries the feed (to end the
 * device's waiting request); nothing is written when nothing changed.
 */
const LAMBDA: Expected = {
  FolderSync: { ...POOLED.FolderSync, state: 1 },
  'Sync (no change)': { ...POOLED['Sync (no change)'], state: 2 },
  // And the flag details beside the IMAP query for changes, the conversation rules, the commit.
  'Sync (one new)': { ...POOLED['Sync (one new)'], state: 5 },
  // The device's first Ping also writes the Ping cache, beside the IMAP check.
  'Ping start': { ...POOLED['Ping start'], state: 2 },
  // The ClientId's marker, claimed and then set to sent (sending/compose.ts).
  SendMail: { ...POOLED.SendMail, state: 3 },
  // And the flag details of the fetched message, once IMAP named its UIDVALIDITY.
  'ItemOperations Fetch': { ...POOLED['ItemOperations Fetch'], state: 2 },
};

const runtimes: [string, () => TestServer, Expected][] = [
  ['pooled sessions (Node)', () => inProcess((imap) => pooledImapSessions(imap)), POOLED],
  ['a session per request (as on Workers)', () => inProcess((imap) => freshImapSessions(imap)), PER_REQUEST],
  ['Lambda: pooled sessions, DynamoDB', onLambda, LAMBDA],
];

describe.each(runtimes)('round trips per command: %s', (_, start, expected) => {
  it('each command makes the round trips and logins it was cut to', async () => {
    const session = await startSession(services, proxies, start(), 3);
    // The pool (where there is one) holds the session the set-up logged in with; a Sync brings it to the folder.
    await (await prepare(session, 'Sync (no change)'))();
    const got = {} as Expected;
    for (const command of COMMANDS) {
      const request = await prepare(session, command);
      const { counts } = await measured(services, proxies, session.user, request);
      await request.after?.();
      await settle(proxies);
      // Turn-arounds at most the cut value (a TLS record split differently can save one); logins and connections
      // exactly. A count over the cut shows as itself in the difference.
      const cut = expected[command];
      const atMost = (n: number, limit: number): number => Math.max(n, limit);
      got[command] = {
        imap: atMost(counts.imap.roundTrips, cut.imap),
        connections: counts.imap.connections,
        logins: counts.logins,
        ...(cut.state !== undefined ? { state: atMost(counts.state.roundTrips, cut.state) } : {}),
      };
    }
    expect(got).toEqual(expected);
  }, 60_000);
});

describe('a fresh IMAP session', () => {
  it('logs in with CONDSTORE and QRESYNC enabled in 3 turns, and its LOGOUT reaches the server unwaited', async () => {
    const user = createUser(services);
    const settings: ImapSettings = { host: proxies.imap.host, port: proxies.imap.port, secure: true };
    const login = { user: user.email, password: user.password };
    const session = async (): Promise<{ turns: number; enabled: string[] }> => {
      const before = proxies.imap.counts();
      const client = imapClient(settings, login);
      client.on('error', () => {});
      await client.connect();
      const enabled = [...client.enabled].sort();
      logOutWithoutWaiting(client);
      await new Promise((resolve) => client.once('close', resolve));
      await settle(proxies);
      return { turns: countsBetween(before, proxies.imap.counts()).roundTrips, enabled };
    };
    // The first session of a user asks NAMESPACE too (kept for the next ones).
    expect(await session()).toEqual({ turns: SETUP_TURNS + 1, enabled: ['CONDSTORE', 'QRESYNC'] });
    expect(await session()).toEqual({ turns: SETUP_TURNS, enabled: ['CONDSTORE', 'QRESYNC'] });
    expect(loginsOf(services, user)).toBe(2);
    // Dovecot saw both LOGOUTs: a session closed without one is logged "Disconnected: Connection closed".
    const log = readFileSync(`${services.dir}/dovecot/dovecot.log`, 'utf8');
    const closes = log.split('\n').filter((l) => l.includes(`imap(${user.email})`) && l.includes('Disconnected'));
    expect(closes.map((l) => /Disconnected: (Logged out|[^ ]+ [^ ]+)/.exec(l)?.[1])).toEqual([
      'Logged out',
      'Logged out',
    ]);
  }, 30_000);
});
