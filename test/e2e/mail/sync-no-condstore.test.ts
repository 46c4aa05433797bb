/**
 * Sync of email against a Dovecot that offers neither CONDSTORE nor QRESYNC. The engine then compares the UIDs and
 * flags the device has with the folder (`flagDigits` in sync-email.ts) instead of asking what changed since a modseq,
 * and it must give the same results. So every scenario of sync.test.ts runs here against both servers, with the same
 * messages and the same changes, and the two transcripts (what the device got, round by round, its items, and what
 * IMAP holds afterwards) must be equal.
 *
 * How CONDSTORE is switched off: this file starts a second Dovecot (own run dir, own ports, the same test users)
 * whose `imap_capability` is the main instance's post-login list without CONDSTORE and QRESYNC. That removes them
 * from every CAPABILITY answer, and imapflow only ENABLEs what is advertised. Dovecot 2.3 has nothing stronger: its
 * ENABLE (cmd-enable.c) turns on any feature it knows whatever imap_capability says, STATUS (HIGHESTMODSEQ) and
 * FETCH (MODSEQ) turn CONDSTORE on implicitly, and CONDSTORE is part of the imap binary, not a plugin that
 * `mail_plugins` could leave out. So the file also proves that nobody used them: the stored watermark has no modseq
 * and has flag digits, and Dovecot's rawlog (`rawlog_dir`) of every session of the test users shows no ENABLE,
 * CONDSTORE, QRESYNC, MODSEQ or CHANGEDSINCE.
 */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { child, childText, el, textOf, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { toXml } from '../../../src/wbxml/xml.ts';
import { itemText, TestDevice, testServer, type SyncRound, type TestServer } from '../../device/device.ts';
import { isRoot } from '../../services/apt.ts';
import { startDovecot, type DovecotService } from '../../services/dovecot.ts';
import { processTree, readPidFile, signal } from '../../services/process.ts';
import {
  createUser,
  imapConnect,
  listMessages,
  makeMessage,
  seedMailbox,
  withImap,
  type SeedMessage,
} from '../../services/seed.ts';
import type { TestServices, TestUser } from '../../services/types.ts';

const services = inject('services');

interface Target {
  name: 'condstore' | 'no-condstore';
  services: TestServices;
  server: TestServer;
  /** Dovecot's rawlog folder of this instance (one subfolder per user that is to be logged). */
  rawlogDir?: string;
}

let runDir: string;
let dovecot: DovecotService | undefined;
// If the worker dies without running afterAll, the instance must not outlive it.
const killOnExit = (): void => dovecot?.killNow();
let condstore: Target;
let noCondstore: Target;

// ---------------------------------------------------------------- a raw IMAP session

/** The answers (untagged lines + the tagged one) to each command, on one plain connection; LOGIN first if given. */
async function rawImap(port: number, login: TestUser | undefined, commands: string[]): Promise<string[]> {
  const socket = connect(port, '127.0.0.1');
  socket.setEncoding('utf8');
  let buffer = '';
  let wake: (() => void) | undefined;
  socket.on('data', (d: string) => {
    buffer += d;
    wake?.();
  });
  socket.on('error', () => wake?.());
  const readUntil = async (pattern: RegExp): Promise<string> => {
    const deadline = Date.now() + 5_000;
    for (;;) {
      const m = pattern.exec(buffer);
      if (m) {
        const end = m.index + m[0].length;
        const out = buffer.slice(0, end);
        buffer = buffer.slice(end);
        return out;
      }
      if (Date.now() > deadline || socket.destroyed)
        throw new Error(`no ${pattern} from IMAP; got ${JSON.stringify(buffer)}`);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 100);
      });
    }
  };
  try {
    await readUntil(/^\* OK.*\r\n/m);
    const all = login ? [`LOGIN "${login.email}" "${login.password}"`, ...commands] : commands;
    const answers: string[] = [];
    for (const [i, command] of all.entries()) {
      socket.write(`r${i} ${command}\r\n`);
      answers.push(await readUntil(new RegExp(`^r${i} .*\\r\\n`, 'm')));
    }
    return login ? answers.slice(1) : answers;
  } finally {
    socket.end('z LOGOUT\r\n');
    socket.destroy();
  }
}

function capabilitiesIn(answer: string): string[] {
  return /^\* CAPABILITY (.*)\r$/m.exec(answer)?.[1]?.split(' ') ?? [];
}

// ---------------------------------------------------------------- both servers

beforeAll(async () => {
  const [postLogin] = await rawImap(services.imap.port, services.users[0], ['CAPABILITY']);
  const capabilities = capabilitiesIn(postLogin ?? '');
  expect(capabilities).toContain('CONDSTORE');
  const without = capabilities.filter((c) => c !== 'CONDSTORE' && c !== 'QRESYNC');

  runDir = mkdtempSync('/tmp/ase-nocondstore-');
  chmodSync(runDir, 0o755);
  // createUser() also writes Radicale's user file; this instance has no Radicale, the file only has to exist.
  mkdirSync(`${runDir}/radicale`);
  writeFileSync(`${runDir}/radicale/users`, '');
  const rawlogDir = `${runDir}/rawlog`;
  mkdirSync(rawlogDir);
  chmodSync(rawlogDir, 0o755);
  process.once('exit', killOnExit);
  dovecot = await startDovecot(runDir, services.users, isRoot(), {
    // Dovecot logs a session's traffic to <rawlog_dir>/… only when that folder exists: see newUser().
    extraConfig: `imap_capability = ${without.join(' ')}\nrawlog_dir = ${rawlogDir}/%n`,
  });
  const second: TestServices = {
    ...services,
    dir: runDir,
    imap: { ...services.imap, port: dovecot.imapPort },
    lmtp: { ...services.lmtp, port: dovecot.lmtpPort },
    // Postfix relays into the main instance only.
    smtp: null,
    smtpSkipReason: 'the Dovecot without CONDSTORE has no Postfix',
  };
  condstore = { name: 'condstore', services, server: testServer(services) };
  noCondstore = { name: 'no-condstore', services: second, server: testServer(second), rawlogDir };
});

afterAll(async () => {
  if (dovecot) {
    // Dovecot's master does not end imap processes whose clients are still connected (the app keeps idle
    // connections for reuse), and stop() would wait 8 s before it kills them: end this instance's ones first.
    const master = readPidFile(`${runDir}/dovecot/run/master.pid`);
    for (const pid of master ? processTree(master) : []) if (commandOf(pid) === 'imap') signal(pid, 'SIGTERM');
    await dovecot.stop();
  }
  process.off('exit', killOnExit);
  if (runDir && process.env.TEST_SERVICES_KEEP !== '1') rmSync(runDir, { recursive: true, force: true });
});

function commandOf(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** A fresh account on the target; on the instance without CONDSTORE its IMAP sessions are rawlogged. */
function newUser(t: Target): TestUser {
  const user = createUser(t.services);
  if (t.rawlogDir) {
    mkdirSync(`${t.rawlogDir}/${user.name}`);
    // Dovecot writes it as the mail user (vmail when we run as root).
    chmodSync(`${t.rawlogDir}/${user.name}`, 0o777);
  }
  return user;
}

/**
 * Runs the scenario against both servers at once and requires the same transcript from both. The scenario's own
 * expectations hold for each.
 */
async function onBoth<T>(scenario: (t: Target) => Promise<T>): Promise<void> {
  const run = (t: Target): Promise<T> =>
    scenario(t).catch((err: unknown) => {
      if (err instanceof Error) err.message = `[${t.name}] ${err.message}`;
      throw err;
    });
  const [withCondstore, withoutCondstore] = await Promise.all([run(condstore), run(noCondstore)]);
  expect(withoutCondstore).toEqual(withCondstore);
}

/** Which path the engine took, from what it stored: a modseq with CONDSTORE, flag digits without. */
async function expectPath(t: Target, device: TestDevice, collectionId: string): Promise<void> {
  const stored = await t.server.state.getCollection(device.scope, collectionId);
  const wm = stored?.state.watermark;
  if (wm?.kind !== 'imap') throw new Error(`no IMAP watermark for ${collectionId}`);
  if (t.name === 'condstore') {
    expect(wm.highestModSeq).toMatch(/^\d+$/);
    expect(wm.flagDigits).toBeUndefined();
  } else {
    expect(wm.highestModSeq).toBe('');
    expect(wm.flagDigits).toMatch(/^([0-9a-f](:[0-9a-f]{8})?)*$/);
  }
}

// ---------------------------------------------------------------- scenario helpers

const NOW = Date.now();

/**
 * Built once per test and seeded to both servers, with a fixed Message-ID and Date: identical messages, identical
 * items.
 */
function numbered(count: number, start = 0): SeedMessage[] {
  return Array.from({ length: count }, (_, i) => ({
    message: makeMessage({
      from: 'Bob <bob@example.test>',
      to: 'Alice <alice@example.test>',
      subject: `Message ${start + i}`,
      text: `Body ${start + i}\n`,
      date: new Date(NOW - (count - i) * 60_000),
      messageId: `m${start + i}@example.test`,
    }),
    internalDate: new Date(NOW - (count - i) * 60_000),
  }));
}

const htmlPreference = [
  el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '2'), el('AirSyncBase', 'TruncationSize', '5120')]),
];

async function readyDevice(t: Target, user: TestUser): Promise<{ device: TestDevice; inbox: string }> {
  const device = new TestDevice(t.server, user);
  await device.folderSync();
  return { device, inbox: device.folderByType(FolderType.Inbox).serverId };
}

/** A round without its keys (random per server): commands, item responses and MoreAvailable. */
function summary(round: SyncRound): Record<string, unknown> {
  const responses = (child(round.collection, 'Responses')?.children ?? []).map(
    (r) => `${r.tag} ${childText(r, 'ServerId') ?? ''} ${childText(r, 'Status') ?? ''}`,
  );
  return {
    status: round.status,
    added: round.added,
    changed: round.changed,
    deleted: round.deleted,
    softDeleted: round.softDeleted,
    responses,
    more: round.moreAvailable,
  };
}

/** Every item the device holds, as XML, by ServerId. */
function deviceItems(device: TestDevice, collectionId: string): Record<string, string> {
  return Object.fromEntries(
    [...device.items(collectionId)]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([id, data]) => [id, toXml(data, { declaration: false })]),
  );
}

/** What IMAP holds: subject and flags by UID. */
async function imapState(t: Target, user: TestUser, folder = 'INBOX'): Promise<string[]> {
  return (await listMessages(t.services, user, folder)).map(
    (m) => `${m.uid} ${m.subject} [${[...m.flags].sort().join(' ')}]`,
  );
}

function change(serverId: string, data: WbxmlElement[]): WbxmlElement {
  return el('AirSync', 'Change', [el('AirSync', 'ServerId', serverId), el('AirSync', 'ApplicationData', data)]);
}

// ---------------------------------------------------------------- the tests

describe('the Dovecot without CONDSTORE', () => {
  it('advertises neither CONDSTORE nor QRESYNC, and imapflow enables neither', async () => {
    const port = noCondstore.services.imap.port;
    const [preLogin] = await rawImap(port, undefined, ['CAPABILITY']);
    const [postLogin] = await rawImap(port, services.users[0], ['CAPABILITY']);
    for (const list of [capabilitiesIn(preLogin ?? ''), capabilitiesIn(postLogin ?? '')]) {
      expect(list).toContain('IMAP4rev1');
      expect(list).not.toContain('CONDSTORE');
      expect(list).not.toContain('QRESYNC');
    }
    // Everything else as on the main instance (same comparison, one difference).
    expect(capabilitiesIn(postLogin ?? '')).toEqual(
      capabilitiesIn((await rawImap(condstore.services.imap.port, services.users[0], ['CAPABILITY']))[0] ?? '').filter(
        (c) => c !== 'CONDSTORE' && c !== 'QRESYNC',
      ),
    );

    for (const t of [condstore, noCondstore]) {
      // qresync: true, as the app's connections ask (src/backends/imap/connection.ts).
      const client = await imapConnect(t.services, services.users[0]!, { qresync: true });
      try {
        const expected = t.name === 'condstore';
        expect(client.enabled.has('CONDSTORE')).toBe(expected);
        expect(client.enabled.has('QRESYNC')).toBe(expected);
      } finally {
        await client.logout();
      }
    }
  });
});

describe('Sync without CONDSTORE gives the same results as with it', () => {
  it('starts empty, then delivers the folder in windows with MoreAvailable, newest first', async () => {
    const messages = numbered(23);
    await onBoth(async (t) => {
      const user = newUser(t);
      await seedMailbox(t.services, user, 'INBOX', messages);
      const { device, inbox } = await readyDevice(t, user);
      const init = await device.sync(inbox, { options: htmlPreference });
      expect(init.status).toBe(1);
      expect(init.added).toEqual([]);
      const rounds = await device.syncUntilDone(inbox, { windowSize: 10 });
      expect(rounds.map((r) => r.added.length)).toEqual([10, 10, 3]);
      expect(rounds.map((r) => r.moreAvailable)).toEqual([true, true, false]);
      const uids = rounds[0]!.added.map((id) => Number(id.split(':')[1]));
      expect(uids).toEqual([...uids].sort((a, b) => b - a));
      expect([...device.items(inbox).values()].map((d) => itemText(d, 'Subject', 'Email')).sort()).toEqual(
        Array.from({ length: 23 }, (_, i) => `Message ${i}`).sort(),
      );
      const quiet = await device.sync(inbox);
      expect([...quiet.added, ...quiet.changed, ...quiet.deleted]).toEqual([]);
      await expectPath(t, device, inbox);
      return { rounds: [init, ...rounds, quiet].map(summary), items: deviceItems(device, inbox) };
    });
  });

  it("reports another client's new mail, flag and category changes and expunges", async () => {
    const messages = numbered(5);
    const [newMail, later] = [numbered(1, 100), numbered(1, 200)];
    await onBoth(async (t) => {
      const user = newUser(t);
      const seeded = await seedMailbox(t.services, user, 'INBOX', messages);
      const { device, inbox } = await readyDevice(t, user);
      await device.sync(inbox);
      await device.syncUntilDone(inbox);
      const id = (uid: number): string => `${inbox}:${uid}`;
      const [m0, m1, m2, m3, m4] = seeded.map((m) => m.uid) as [number, number, number, number, number];

      const [added] = await seedMailbox(t.services, user, 'INBOX', newMail);
      await withImap(t.services, user, async (imap) => {
        await imap.mailboxOpen('INBOX');
        await imap.messageFlagsAdd(String(m0), ['\\Seen'], { uid: true });
        await imap.messageDelete(String(m1), { uid: true });
        await imap.messageFlagsAdd(String(m2), ['\\Flagged'], { uid: true });
        await imap.messageFlagsAdd(String(m3), ['Project'], { uid: true });
        await imap.messageFlagsAdd(String(m4), ['\\Answered', '$Forwarded'], { uid: true });
      });
      const first = await device.sync(inbox);
      expect(first.added).toEqual([id(added!.uid)]);
      expect([...first.changed].sort()).toEqual([id(m0), id(m2), id(m3), id(m4)].sort());
      expect(first.deleted).toEqual([id(m1)]);
      const items = device.items(inbox);
      expect(itemText(items.get(id(m0)), 'Read', 'Email')).toBe('1');
      expect(
        childText(
          items.get(id(m2))?.children.find((c) => c.tag === 'Flag'),
          'Status',
          'Email',
        ),
      ).toBe('2');
      expect(
        items
          .get(id(m3))
          ?.children.find((c) => c.tag === 'Categories')
          ?.children.map((c) => textOf(c)),
      ).toEqual(['Project']);
      expect(itemText(items.get(id(m4)), 'LastVerbExecuted', 'Email2')).toBe('1');

      // Back again, and a change on the message that arrived since: the comparison uses the flags sent last time.
      const [next] = await seedMailbox(t.services, user, 'INBOX', later);
      await withImap(t.services, user, async (imap) => {
        await imap.mailboxOpen('INBOX');
        await imap.messageFlagsRemove(String(m0), ['\\Seen'], { uid: true });
        await imap.messageFlagsRemove(String(m3), ['Project'], { uid: true });
        await imap.messageFlagsAdd(String(added!.uid), ['\\Seen', '\\Flagged'], { uid: true });
        await imap.messageDelete(String(m2), { uid: true });
      });
      const second = await device.sync(inbox);
      expect(second.added).toEqual([id(next!.uid)]);
      expect([...second.changed].sort()).toEqual([id(m0), id(m3), id(added!.uid)].sort());
      expect(second.deleted).toEqual([id(m2)]);
      expect(itemText(device.items(inbox).get(id(m0)), 'Read', 'Email')).toBe('0');
      const quiet = await device.sync(inbox);
      expect([...quiet.added, ...quiet.changed, ...quiet.deleted]).toEqual([]);
      await expectPath(t, device, inbox);
      return {
        rounds: [first, second, quiet].map(summary),
        items: deviceItems(device, inbox),
        imap: await imapState(t, user),
      };
    });
  });

  it('applies Read, Flag and Delete from the device to IMAP, without echoing them back', async () => {
    const messages = numbered(4);
    await onBoth(async (t) => {
      const user = newUser(t);
      const seeded = await seedMailbox(t.services, user, 'INBOX', messages);
      const { device, inbox } = await readyDevice(t, user);
      await device.sync(inbox);
      await device.syncUntilDone(inbox);
      const [a, b, c, d] = seeded.map((m) => `${inbox}:${m.uid}`) as [string, string, string, string];

      const round = await device.sync(inbox, {
        commands: [
          change(a, [el('Email', 'Read', '1')]),
          change(b, [el('Email', 'Flag', [el('Email', 'Status', '2'), el('Email', 'FlagType', 'Flag for follow up')])]),
          el('AirSync', 'Delete', [el('AirSync', 'ServerId', c)]),
        ],
      });
      expect(round.status).toBe(1);
      expect([...round.added, ...round.changed, ...round.deleted]).toEqual([]);
      const inboxNow = await listMessages(t.services, user, 'INBOX');
      expect(inboxNow.find((m) => m.uid === seeded[0]!.uid)?.flags).toContain('\\Seen');
      expect(inboxNow.find((m) => m.uid === seeded[1]!.uid)?.flags).toContain('\\Flagged');
      expect(inboxNow.some((m) => m.uid === seeded[2]!.uid)).toBe(false);
      expect((await listMessages(t.services, user, 'Trash')).map((m) => m.subject)).toEqual(['Message 2']);

      // Unread and unflag again, and expunge (DeletesAsMoves 0): still nothing comes back.
      const undo = await device.sync(inbox, {
        deletesAsMoves: false,
        commands: [
          change(a, [el('Email', 'Read', '0')]),
          change(b, [el('Email', 'Flag')]),
          el('AirSync', 'Delete', [el('AirSync', 'ServerId', d)]),
        ],
      });
      expect([...undo.added, ...undo.changed, ...undo.deleted]).toEqual([]);
      expect((await listMessages(t.services, user, 'Trash')).length).toBe(1);
      const next = await device.sync(inbox);
      expect([...next.added, ...next.changed, ...next.deleted]).toEqual([]);
      await expectPath(t, device, inbox);
      return {
        rounds: [round, undo, next].map(summary),
        items: deviceItems(device, inbox),
        imap: await imapState(t, user),
        trash: (await listMessages(t.services, user, 'Trash')).map((m) => m.subject),
      };
    });
  });

  it("16.0 drafts: an edited draft keeps its ServerId, is not echoed, and the server's flag change reaches it", async () => {
    await onBoth(async (t) => {
      const user = newUser(t);
      const device = new TestDevice(t.server, user, 'DRAFTS1', '16.0');
      await device.folderSync();
      const drafts = device.folderByType(FolderType.Drafts).serverId;
      await device.syncUntilDone(drafts);
      const data = (subject: string): WbxmlElement =>
        el('AirSync', 'ApplicationData', [
          el('Email', 'To', user.email),
          el('Email', 'Subject', subject),
          el('AirSyncBase', 'Body', [el('AirSyncBase', 'Type', '1'), el('AirSyncBase', 'Data', subject)]),
        ]);
      const add = await device.sync(drafts, {
        commands: [el('AirSync', 'Add', [el('AirSync', 'ClientId', 'c1'), data('Draft v1')])],
      });
      const serverId = childText(child(child(add.collection, 'Responses'), 'Add'), 'ServerId')!;
      const edit = await device.sync(drafts, {
        commands: [el('AirSync', 'Change', [el('AirSync', 'ServerId', serverId), data('Draft v2')])],
      });
      expect([...edit.added, ...edit.changed, ...edit.deleted]).toEqual([]);
      const quiet = await device.sync(drafts);
      expect([...quiet.added, ...quiet.changed, ...quiet.deleted]).toEqual([]);
      await withImap(t.services, user, async (c) => {
        await c.mailboxOpen('Drafts');
        await c.messageFlagsAdd('1:*', ['\\Flagged']);
      });
      const flagged = await device.sync(drafts);
      expect(flagged.changed).toEqual([serverId]);
      await expectPath(t, device, drafts);
      return {
        rounds: [add, edit, quiet, flagged].map(summary),
        imap: (await imapState(t, user, 'Drafts')).map((line) => line.replace(/^\d+ /, '')),
      };
    });
  });

  it('server wins a conflict by default: Status 7 and the server version as a Change; other changes go through', async () => {
    const messages = numbered(3);
    await onBoth(async (t) => {
      const user = newUser(t);
      const seeded = await seedMailbox(t.services, user, 'INBOX', messages);
      const { device, inbox } = await readyDevice(t, user);
      await device.sync(inbox);
      await device.syncUntilDone(inbox);
      const [a, b, c] = seeded.map((m) => m.uid) as [number, number, number];
      await withImap(t.services, user, async (imap) => {
        await imap.mailboxOpen('INBOX');
        await imap.messageFlagsAdd(String(a), ['\\Flagged'], { uid: true });
        await imap.messageFlagsAdd(String(b), ['\\Seen'], { uid: true });
      });
      // The device marks a (changed on the server: conflict) and c (not changed there) read.
      const round = await device.sync(inbox, {
        commands: [
          change(`${inbox}:${a}`, [el('Email', 'Read', '1')]),
          change(`${inbox}:${c}`, [el('Email', 'Read', '1')]),
        ],
      });
      const responses = child(round.collection, 'Responses')?.children ?? [];
      expect(responses.map((r) => [childText(r, 'ServerId'), childText(r, 'Status')])).toEqual([
        [`${inbox}:${a}`, '7'],
      ]);
      expect([...round.changed].sort()).toEqual([`${inbox}:${a}`, `${inbox}:${b}`].sort());
      expect(itemText(device.items(inbox).get(`${inbox}:${a}`), 'Read', 'Email')).toBe('0');
      const flags = new Map((await listMessages(t.services, user, 'INBOX')).map((m) => [m.uid, m.flags]));
      expect(flags.get(a)).not.toContain('\\Seen');
      expect(flags.get(a)).toContain('\\Flagged');
      expect(flags.get(c)).toContain('\\Seen');
      const next = await device.sync(inbox);
      expect([...next.added, ...next.changed, ...next.deleted]).toEqual([]);
      await expectPath(t, device, inbox);
      return { rounds: [round, next].map(summary), items: deviceItems(device, inbox), imap: await imapState(t, user) };
    });
  });

  it('replays a lost response once and applies the device commands once', async () => {
    const messages = numbered(6);
    await onBoth(async (t) => {
      const user = newUser(t);
      const seeded = await seedMailbox(t.services, user, 'INBOX', messages);
      const { device, inbox } = await readyDevice(t, user);
      await device.sync(inbox);
      const lost = await device.sync(inbox, { windowSize: 4, lose: true });
      const again = await device.sync(inbox, { windowSize: 4 });
      expect(again.added).toEqual(lost.added);
      expect(again.response.bytes).toEqual(lost.response.bytes);
      const rest = await device.syncUntilDone(inbox, { windowSize: 4 });
      expect(device.items(inbox).size).toBe(6);

      const del = [el('AirSync', 'Delete', [el('AirSync', 'ServerId', `${inbox}:${seeded[0]!.uid}`)])];
      await device.sync(inbox, { commands: del, lose: true });
      const resent = await device.sync(inbox, { commands: del });
      expect(resent.status).toBe(1);
      expect((await listMessages(t.services, user, 'INBOX')).length).toBe(5);
      expect((await listMessages(t.services, user, 'Trash')).length).toBe(1);

      const read = [change(`${inbox}:${seeded[1]!.uid}`, [el('Email', 'Read', '1')])];
      await device.sync(inbox, { commands: read, lose: true });
      const readAgain = await device.sync(inbox, { commands: read });
      expect((await listMessages(t.services, user, 'INBOX')).find((x) => x.uid === seeded[1]!.uid)?.flags).toContain(
        '\\Seen',
      );
      const next = await device.sync(inbox);
      expect([...next.added, ...next.changed, ...next.deleted]).toEqual([]);
      expect(device.items(inbox).size).toBe(5);
      await expectPath(t, device, inbox);
      return {
        rounds: [again, ...rest, resent, readAgain, next].map(summary),
        items: deviceItems(device, inbox),
        imap: await imapState(t, user),
      };
    });
  });

  it('keeps to the FilterType window: an old arrival is not sent, an expunge is', async () => {
    const day = 86_400_000;
    const aged = (days: number, i: number): SeedMessage => ({
      ...numbered(1, 300 + i)[0]!,
      internalDate: new Date(NOW - days * day),
    });
    const [before, later] = [
      [aged(20, 0), aged(2, 1), aged(1, 2)],
      [aged(30, 3), aged(0.5, 4)],
    ];
    const week = [el('AirSync', 'FilterType', '3')];
    await onBoth(async (t) => {
      const user = newUser(t);
      const seeded = await seedMailbox(t.services, user, 'INBOX', before);
      const { device, inbox } = await readyDevice(t, user);
      const first = await device.syncUntilDone(inbox, { options: week });
      expect([...device.items(inbox).keys()].sort()).toEqual(
        [`${inbox}:${seeded[1]!.uid}`, `${inbox}:${seeded[2]!.uid}`].sort(),
      );
      const added = await seedMailbox(t.services, user, 'INBOX', later);
      await withImap(t.services, user, async (imap) => {
        await imap.mailboxOpen('INBOX');
        await imap.messageDelete(String(seeded[1]!.uid), { uid: true });
        await imap.messageFlagsAdd(`${seeded[0]!.uid},${seeded[2]!.uid}`, ['\\Seen'], { uid: true });
      });
      const round = await device.sync(inbox, { options: week });
      expect(round.added).toEqual([`${inbox}:${added[1]!.uid}`]);
      expect(round.deleted).toEqual([`${inbox}:${seeded[1]!.uid}`]);
      expect(round.changed).toEqual([`${inbox}:${seeded[2]!.uid}`]);
      await expectPath(t, device, inbox);
      return { rounds: [...first, round].map(summary), items: deviceItems(device, inbox) };
    });
  });

  it('no session on the Dovecot without CONDSTORE asked for CONDSTORE, QRESYNC or modseqs (rawlog)', () => {
    const dir = noCondstore.rawlogDir!;
    const logs = readdirSync(dir).flatMap((user) =>
      readdirSync(`${dir}/${user}`)
        .filter((f) => f.endsWith('.in'))
        .map((f) => `${dir}/${user}/${f}`),
    );
    // The app's sessions and the seeding helpers' of the scenarios above.
    expect(logs.length).toBeGreaterThan(10);
    // Each line: "<timestamp> <tag> <command> …" (message literals included; theirs do not contain these words).
    const offending = logs.flatMap((f) =>
      readFileSync(f, 'utf8')
        .split('\r\n')
        .filter((line) => /\b(ENABLE|CONDSTORE|QRESYNC|MODSEQ|HIGHESTMODSEQ|CHANGEDSINCE|VANISHED)\b/i.test(line)),
    );
    expect(offending).toEqual([]);
    const commands = logs.flatMap((f) => readFileSync(f, 'utf8').split('\r\n')).join('\n');
    // The sessions did sync: searches and fetches with flags went through this instance.
    expect(commands).toMatch(/UID FETCH .*FLAGS/);
    expect(commands).toMatch(/UID STORE/);
  });
});
