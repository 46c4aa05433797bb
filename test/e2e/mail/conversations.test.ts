/**
 * Conversations against the real Dovecot, driven as 14.x clients (Outlook for iOS/Android, iOS Mail) drive them:
 * - email2:ConversationId (MS-ASEMAIL §2.2.2.20) is the same for every message of a thread, in every folder;
 * - ItemOperations Move of a conversation (MS-ASCMD §2.2.3.117.1 Move, §2.2.3.35.1 ConversationId, §2.2.3.51.1
 *   DstFldId, §2.2.3.118 MoveAlways; MS-ASCON §3.1.4.6), in the request shape of MS-ASCMD's ItemOperations Move
 *   and of Microsoft's MS-ASCON test suite (S03_ItemOperations MSASCON_S03_TC02_ItemOperations_MoveAlways): the
 *   conversation leaves every folder but Sent Items, and a later reply that arrives in the Inbox is moved too;
 * - the Status codes MS-ASCON §2.2.2.10 lists for Move: 2, 6, 105/156 and, without MoveAlways, 155;
 * - a Move reads the header fields of the conversation's messages (and of the device's own, to find it), not of
 *   every message of every folder: IMAP SEARCH HEADER finds the rest (folders/conversations.ts).
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { buildApp } from '../../../src/app/build.ts';
import { imapDavBackends } from '../../../src/backends/combined.ts';
import { pooledImapSessions } from '../../../src/backends/imap/sessions.ts';
import { nodemailerSubmitter } from '../../../src/backends/smtp/nodemailer.ts';
import { FolderType, type TenantBackends } from '../../../src/backends/types.ts';
import { loadConfig } from '../../../src/config.ts';
import { openSqliteStateStore } from '../../../src/state/sqlite-node.ts';
import { bytesOf, child, childText, el, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { readyDevice, TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { createMailbox, createUser, listMessages, seedCalendar, seedMailbox } from '../../services/seed.ts';

const services = inject('services');
let server: TestServer;

beforeAll(() => {
  server = testServer(services);
});

const from = 'Bob <bob@example.test>';
const to = 'Alice <alice@example.test>';

function conversationIdOf(device: TestDevice, collectionId: string, subject: string): Uint8Array {
  const data = [...device.items(collectionId).values()].find((d) => childText(d, 'Subject', 'Email') === subject);
  expect(data, `${subject} on the device`).toBeDefined();
  const id = bytesOf(child(data, 'ConversationId', 'Email2'));
  expect(id.length).toBe(16);
  return id;
}

/** ItemOperations Move as MS-ASCMD §2.2.3.117.1 shapes it (ConversationId opaque, DstFldId, Options/MoveAlways). */
function moveRequest(conversationId: Uint8Array, dstFldId: string, options: WbxmlElement[] | undefined): WbxmlElement {
  return el('ItemOperations', 'ItemOperations', [
    el('ItemOperations', 'Move', [
      el('ItemOperations', 'ConversationId', conversationId),
      el('ItemOperations', 'DstFldId', dstFldId),
      options && el('ItemOperations', 'Options', options),
    ]),
  ]);
}

async function move(
  device: TestDevice,
  conversationId: Uint8Array,
  dstFldId: string,
  options: WbxmlElement[] | undefined = [el('ItemOperations', 'MoveAlways')],
): Promise<{ status: string | undefined; conversationId: Uint8Array }> {
  const body = await device.command('ItemOperations', moveRequest(conversationId, dstFldId, options));
  expect(childText(body, 'Status')).toBe('1');
  const answer = child(child(body, 'Response'), 'Move');
  return { status: childText(answer, 'Status'), conversationId: bytesOf(child(answer, 'ConversationId')) };
}

async function subjectsIn(user: Parameters<typeof listMessages>[1], folder: string): Promise<string[]> {
  return (await listMessages(services, user, folder)).map((m) => m.subject ?? '').sort();
}

describe('Conversations', () => {
  it('one ConversationId per thread across folders; Move with MoveAlways moves it and its later replies', async () => {
    const user = createUser(services);
    await createMailbox(services, user, 'Archive');
    await createMailbox(services, user, 'Project');
    await seedMailbox(services, user, 'INBOX', [
      { message: { from, to, subject: 'Budget', messageId: 'budget@example.test', text: 'B\n' } },
      {
        message: {
          from,
          to,
          subject: 'Re: Budget',
          messageId: 'budget-r1@example.test',
          inReplyTo: 'budget@example.test',
          references: ['budget@example.test'],
          text: 'R1\n',
        },
      },
      { message: { from, to, subject: 'Lunch', messageId: 'lunch@example.test', text: 'L\n' } },
    ]);
    await seedMailbox(services, user, 'Project', [
      {
        message: {
          from,
          to,
          subject: 'RE: Budget',
          messageId: 'budget-r2@example.test',
          inReplyTo: 'budget-r1@example.test',
          references: ['budget@example.test', 'budget-r1@example.test'],
          text: 'R2\n',
        },
      },
    ]);
    await seedMailbox(services, user, 'Sent', [
      {
        message: {
          from: to,
          to: from,
          subject: 'AW: Budget',
          messageId: 'budget-mine@example.test',
          inReplyTo: 'budget@example.test',
          references: ['budget@example.test'],
          text: 'Mine\n',
        },
      },
    ]);
    const { device, inbox } = await readyDevice(server, user);
    const project = device.folderByName('Project').serverId;
    const archive = device.folderByName('Archive').serverId;
    const sent = device.folderByType(FolderType.SentItems).serverId;
    for (const id of [inbox, project, archive, sent]) await device.syncUntilDone(id);

    // The same conversation in the Inbox, another folder and Sent Items; another thread differs.
    const budget = conversationIdOf(device, inbox, 'Budget');
    expect(conversationIdOf(device, inbox, 'Re: Budget')).toEqual(budget);
    expect(conversationIdOf(device, project, 'RE: Budget')).toEqual(budget);
    expect(conversationIdOf(device, sent, 'AW: Budget')).toEqual(budget);
    expect(conversationIdOf(device, inbox, 'Lunch')).not.toEqual(budget);

    const moved = await move(device, budget, archive);
    expect(moved.status).toBe('1');
    expect(moved.conversationId).toEqual(budget);
    expect(await subjectsIn(user, 'INBOX')).toEqual(['Lunch']);
    expect(await subjectsIn(user, 'Project')).toEqual([]);
    expect(await subjectsIn(user, 'Sent')).toEqual(['AW: Budget']);
    expect(await subjectsIn(user, 'Archive')).toEqual(['Budget', 'RE: Budget', 'Re: Budget']);
    // The device learns it by Sync: Deletes where they were, Adds in Archive.
    await device.syncUntilDone(inbox);
    await device.syncUntilDone(archive);
    expect([...device.items(inbox).values()].map((d) => childText(d, 'Subject', 'Email'))).toEqual(['Lunch']);
    expect(device.items(archive).size).toBe(3);

    // MoveAlways: a reply that arrives later goes to Archive when the Inbox is synced, not to the device's Inbox.
    await seedMailbox(services, user, 'INBOX', [
      {
        message: {
          from,
          to,
          subject: 'Re: Budget (numbers)',
          messageId: 'budget-r3@example.test',
          inReplyTo: 'budget-r2@example.test',
          references: ['budget@example.test', 'budget-r1@example.test', 'budget-r2@example.test'],
          text: 'R3\n',
        },
      },
      { message: { from, to, subject: 'Unrelated', messageId: 'other@example.test', text: 'O\n' } },
    ]);
    const round = await device.sync(inbox);
    expect(round.status).toBe(1);
    expect([...device.items(inbox).values()].map((d) => childText(d, 'Subject', 'Email')).sort()).toEqual([
      'Lunch',
      'Unrelated',
    ]);
    expect(await subjectsIn(user, 'INBOX')).toEqual(['Lunch', 'Unrelated']);
    await device.syncUntilDone(archive);
    expect(conversationIdOf(device, archive, 'Re: Budget (numbers)')).toEqual(budget);

    // A second device of the user applies the same rule (it is the user's, not the device's).
    const tablet = await readyDevice(server, user);
    await tablet.device.syncUntilDone(tablet.inbox);
    await seedMailbox(services, user, 'INBOX', [
      {
        message: {
          from,
          to,
          subject: 'Re: Budget (final)',
          messageId: 'budget-r4@example.test',
          inReplyTo: 'budget@example.test',
          references: ['budget@example.test'],
          text: 'R4\n',
        },
      },
    ]);
    await tablet.device.sync(tablet.inbox);
    expect(await subjectsIn(user, 'INBOX')).toEqual(['Lunch', 'Unrelated']);
    expect(await subjectsIn(user, 'Archive')).toContain('Re: Budget (final)');
  });

  it('answers the Status codes of MS-ASCON §2.2.2.10 and moves nothing', async () => {
    const user = createUser(services);
    await createMailbox(services, user, 'Archive');
    await seedMailbox(services, user, 'INBOX', [
      { message: { from, to, subject: 'Plans', messageId: 'plans@example.test', text: 'P\n' } },
    ]);
    await seedCalendar(services, user, 'home', [], { displayName: 'Home' });
    const { device, inbox } = await readyDevice(server, user);
    const archive = device.folderByName('Archive').serverId;
    await device.syncUntilDone(inbox);
    const plans = conversationIdOf(device, inbox, 'Plans');

    // No such conversation; no such destination (MS-ASCON S03_TC04).
    expect((await move(device, new Uint8Array(randomBytes(16)), archive)).status).toBe('6');
    expect((await move(device, plans, '9999')).status).toBe('6');
    // MoveAlways with content is invalid (S03_TC03); without MoveAlways: 155 (MS-ASCMD §2.2.3.118).
    expect((await move(device, plans, archive, [el('ItemOperations', 'MoveAlways', 'MoveAlwaysContent')])).status).toBe(
      '2',
    );
    expect((await move(device, plans, archive, [])).status).toBe('155');
    // A calendar is no mail folder (S03_TC06).
    const calendar = device.folderByName('Home').serverId;
    expect((await move(device, plans, calendar)).status).toBe('156');
    expect(await subjectsIn(user, 'INBOX')).toEqual(['Plans']);
    expect(await subjectsIn(user, 'Archive')).toEqual([]);
  });

  it('Move reads the headers of the conversation, not of every message (IMAP SEARCH HEADER)', async () => {
    // The real IMAP backend, with the UIDs whose header fields or sources are read counted.
    const read = { headerFields: 0, wholeFolders: 0 };
    const counting = (inner: TenantBackends): TenantBackends => ({
      forRequest() {
        const request = inner.forRequest();
        return {
          ...request,
          backends: {
            ...request.backends,
            async open(who) {
              const backends = await request.backends.open(who);
              const real = backends.mail;
              const mail = new Proxy(real, {
                get(target, prop) {
                  if (prop === 'fetchHeaderFields') {
                    return (folder: string, fields: string[], uids?: number[]) => {
                      if (uids === undefined) read.wholeFolders++;
                      else read.headerFields += uids.length;
                      return real.fetchHeaderFields(folder, fields, uids);
                    };
                  }
                  const value: unknown = Reflect.get(target, prop, target);
                  return typeof value === 'function' ? value.bind(target) : value;
                },
              });
              return { ...backends, mail };
            },
          },
        };
      },
    });
    const state = openSqliteStateStore(':memory:').store;
    const { app } = buildApp({
      settings: loadConfig({
        IMAP_HOST: services.imap.host,
        IMAP_PORT: String(services.imap.port),
        IMAP_SECURE: 'false',
        TENANT: 'test',
      }),
      state,
      imapSessions: (imap) => pooledImapSessions(imap),
      backends: (config, parts) =>
        counting(imapDavBackends(config, parts.imapSessions(config.imap), nodemailerSubmitter(config.smtp))),
      log: () => {},
    });
    const user = createUser(services);
    await createMailbox(services, user, 'Archive');
    const old = new Date(Date.now() - 60 * 86_400_000);
    await seedMailbox(
      services,
      user,
      'INBOX',
      Array.from({ length: 60 }, (_, i) => ({
        message: { from, to, subject: `Older ${i}`, messageId: `older-${i}@example.test`, date: old, text: 'O\n' },
        internalDate: old,
      })),
    );
    await seedMailbox(services, user, 'INBOX', [
      { message: { from, to, subject: 'Offsite', messageId: 'offsite@example.test', text: 'O\n' } },
      {
        message: {
          from,
          to,
          subject: 'Re: Offsite',
          messageId: 'offsite-r1@example.test',
          inReplyTo: 'offsite@example.test',
          references: ['offsite@example.test'],
          text: 'R\n',
        },
      },
    ]);
    const device = new TestDevice({ fetch: async (url, init) => app.request(url, init), state, logs: [] }, user);
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    const archive = device.folderByName('Archive').serverId;
    // One week (FilterType 3): the device holds the conversation, not the 60 older messages.
    await device.syncUntilDone(inbox, { options: [el('AirSync', 'FilterType', '3')] });
    const offsite = conversationIdOf(device, inbox, 'Offsite');

    read.headerFields = 0;
    read.wholeFolders = 0;
    expect((await move(device, offsite, archive)).status).toBe('1');
    expect(await subjectsIn(user, 'Archive')).toEqual(['Offsite', 'Re: Offsite']);
    expect((await subjectsIn(user, 'INBOX')).length).toBe(60);
    // The device's two messages to find the conversation, then its two messages found by SEARCH.
    expect(read.wholeFolders).toBe(0);
    expect(read.headerFields).toBeLessThanOrEqual(4);
  });
});
