/**
 * The client corpus (issue 16, item 3) against the real stack: every session in test/fixtures/clients/**.json is
 * replayed (src/replay) against `npm start` on Node and against the Worker under `wrangler dev` (workerd, Durable
 * Objects), each over the test Dovecot, Postfix, ManageSieve and Radicale, for a fresh account seeded with mail (an
 * attachment, HTML), a calendar event, a contact and a task, so that the items a session fetches, changes or moves
 * exist. Every answer must be success or the status the session says the protocol documents, and every WBXML answer
 * must read the same in Debian's libwbxml as in our decoder. An empty corpus fails.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { formatDifferences, replaySession, type ReplayedExchange } from '../../src/replay/driver.ts';
import { parseReplaySession, type ReplaySession } from '../../src/replay/session.ts';
import type { WbxmlElement } from '../../src/wbxml/tree.ts';
import { startAdminNodeServer, type AdminNodeServer } from '../services/node-server.ts';
import {
  createUser,
  makeEvent,
  makeTodo,
  makeVCard,
  sampleMessages,
  seedAddressBook,
  seedCalendar,
  seedMailbox,
} from '../services/seed.ts';
import type { TestServices, TestUser } from '../services/types.ts';
import { startWranglerDev, type WranglerDev } from '../services/wrangler-dev.ts';
import { comparable, libwbxmlDecode, type Node, parseLibwbxmlXml } from '../wbxml/libwbxml.ts';
import { seedInbox } from './session-steps.ts';

const services = inject('services');
const CORPUS = join(import.meta.dirname, '../fixtures/clients');
/** Pings and hanging Syncs wait at most this long: the corpus keeps its clients' intervals, the replay caps them. */
const MAX_HEARTBEAT = 2;

const files = readdirSync(CORPUS, { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.json'))
  .sort();

/** Mail with an attachment and HTML, an event, a contact and a task: what the sessions' items stand for. */
async function seedAccount(s: TestServices, user: TestUser): Promise<void> {
  await seedInbox(s, user);
  await seedMailbox(s, user, 'INBOX', sampleMessages({ to: user.email }));
  await seedCalendar(s, user, 'calendar', [
    makeEvent({ summary: 'Planning', start: new Date(Date.now() + 86_400_000).toISOString().slice(0, 10) }),
    makeEvent({ summary: 'Review', start: `${new Date().toISOString().slice(0, 10)}T15:00:00`, alarmMinutes: 15 }),
  ]);
  await seedCalendar(s, user, 'tasks', [makeTodo({ summary: 'File the report' })], {
    displayName: 'Tasks',
    components: ['VTODO'],
  });
  await seedAddressBook(s, user, 'contacts', [
    makeVCard({ firstName: 'Ada', lastName: 'Lovelace', emails: [{ address: 'ada@example.test' }] }),
  ]);
}

/** Elements Debian's libwbxml 0.11.8 has no token for (page 25, a few 16.1 tokens): golden.test.ts covers them. */
function beyondLibwbxml(tree: WbxmlElement): boolean {
  if (tree.ns === 'Find' || ['AccountOnlyRemoteWipe', 'ProposedStartTime', 'ProposedEndTime'].includes(tree.tag))
    return true;
  return tree.children.some(beyondLibwbxml);
}

/** The answer's WBXML reads the same in libwbxml as in our decoder; '' when it does, else what differs. */
function libwbxmlDisagreement(exchange: ReplayedExchange): string {
  if (!exchange.wbxml || !exchange.tree || beyondLibwbxml(exchange.tree)) return '';
  try {
    const theirs = parseLibwbxmlXml(libwbxmlDecode(exchange.wbxml));
    const ours = comparable(exchange.tree);
    const where = firstDifference(theirs, ours);
    return where ? `#${exchange.index + 1} ${exchange.command}: libwbxml reads another tree at ${where}` : '';
  } catch (err) {
    return `#${exchange.index + 1} ${exchange.command}: libwbxml cannot read it: ${String(err).slice(0, 200)}`;
  }
}

function sameText(value: string): string {
  return value.replace(/\r\n?/g, '\n').trimEnd();
}

/** Where two comparable trees first differ, as a path; '' when they do not. */
function firstDifference(a: Node, b: Node, path = ''): string {
  const here = `${path}/${b.ns}:${b.tag}`;
  if (a.ns !== b.ns || a.tag !== b.tag) return `${here} (libwbxml: ${a.ns}:${a.tag})`;
  // wbxml2xml drops the whitespace that ends a text (a body's last newline), and its XML output reads CRLF as LF
  // (XML 1.0 §2.11): compared without either.
  if (sameText(a.value) !== sameText(b.value))
    return `${here} (libwbxml: ${JSON.stringify(a.value.slice(0, 80))}, ours: ${JSON.stringify(b.value.slice(0, 80))})`;
  if (a.children.length !== b.children.length)
    return `${here} (${a.children.length} children in libwbxml, ${b.children.length} in ours)`;
  for (let i = 0; i < a.children.length; i++) {
    const d = firstDifference(a.children[i]!, b.children[i]!, here);
    if (d) return d;
  }
  return '';
}

function load(file: string): ReplaySession {
  return parseReplaySession(JSON.parse(readFileSync(join(CORPUS, file), 'utf8')) as unknown);
}

/** Replays one session for a fresh, seeded account; returns what differs and what libwbxml disagrees with. */
async function replay(file: string, url: string): Promise<{ differences: string; libwbxml: string[]; wbxml: number }> {
  const user = createUser(services);
  await seedAccount(services, user);
  const libwbxml: string[] = [];
  let wbxml = 0;
  const report = await replaySession(load(file), {
    url,
    user: user.email,
    password: user.password,
    maxHeartbeat: MAX_HEARTBEAT,
    timeoutMs: 60_000,
    onExchange: (exchange) => {
      if (exchange.wbxml) wbxml++;
      const problem = libwbxmlDisagreement(exchange);
      if (problem) libwbxml.push(problem);
    },
  });
  expect(report.replayed).toBe(load(file).requests.length);
  return { differences: formatDifferences(report), libwbxml, wbxml };
}

/** Settings both runtimes get: the test backends, sieve for Oof, and Pings as short as the replay makes them. */
function backendSettings(): Record<string, string> {
  return {
    ...(services.smtp
      ? { SMTP_HOST: services.smtp.host, SMTP_PORT: String(services.smtp.port), SMTP_SECURE: 'false' }
      : {}),
    CALDAV_URL: services.caldavUrl,
    CARDDAV_URL: services.carddavUrl,
    SIEVE: 'on',
    SIEVE_HOST: services.sieve.host,
    SIEVE_PORT: String(services.sieve.port),
    SIEVE_SECURE: 'false',
    PING_MIN_HEARTBEAT: '1',
  };
}

describe('the client corpus', () => {
  it('has sessions to replay (an empty corpus is a failure, not a pass)', () => {
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) expect(() => load(f), relative(CORPUS, f)).not.toThrow();
  });
});

describe('the client corpus replayed on Node (npm start)', { timeout: 180_000 }, () => {
  let node: AdminNodeServer;
  beforeAll(async () => {
    node = await startAdminNodeServer(services.imap, 'corpus-admin-token-0123456789abcdef', backendSettings());
  });
  afterAll(async () => {
    await node?.stop();
  });

  it.each(files)('%s', async (file) => {
    const result = await replay(file, node.base);
    expect(result.differences).toBe('');
    expect(result.libwbxml).toEqual([]);
  });
});

describe('the client corpus replayed on workerd (wrangler dev, Durable Objects)', { timeout: 180_000 }, () => {
  let worker: WranglerDev;
  beforeAll(async () => {
    worker = await startWranglerDev({
      IMAP_HOST: services.imap.host,
      IMAP_PORT: String(services.imap.port),
      IMAP_SECURE: 'false',
      TENANT: 'test',
      IMAP_MASTER_USER: services.master.user,
      IMAP_MASTER_PASSWORD: services.master.password,
      // ManageSieve with STARTTLS, as on Node: over cloudflare:sockets inside workerd (test/e2e/workerd/oof-sieve.test.ts).
      ...backendSettings(),
    });
  }, 90_000);
  afterAll(async () => {
    await worker?.stop();
  }, 30_000);

  it.each(files)('%s', async (file) => {
    const result = await replay(file, worker.origin);
    expect(result.differences).toBe('');
    expect(result.libwbxml).toEqual([]);
  });

  it('the Worker logged no uncaught error and no listener-leak warning', async () => {
    await new Promise((r) => setTimeout(r, 500));
    expect(worker.problems()).toEqual([]);
  });
});
