/**
 * Sync ConversationMode (MS-ASCMD §2.2.3.36.2; MS-ASCON §3.1.4.9 "Applying a Conversation-based Filter") against the
 * real Dovecot, in the request shape Windows Mail sends (test/fixtures/clients/windows-mail/first-contact-16.1-base64:
 * ConversationMode 1 in the Collection before its Options, FilterType, BodyPreference Type 2 with TruncationSize 32768
 * and Preview 255, MIMESupport 1, WindowSize 25), as Microsoft's MS-ASCON test suite drives it
 * (MSASCON_S01_TC04_Sync_Filter: every message of a conversation in the folder is synchronized):
 * - the window takes the older messages of its conversations, with their preview but without their body;
 * - a reply arriving later brings its conversation's older messages;
 * - without ConversationMode the FilterType window alone applies;
 * - a narrower FilterType keeps a message whose conversation is still in the window.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { child, childText, el, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { itemText, TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { createUser, seedMailbox, type SeedMessage } from '../../services/seed.ts';

const services = inject('services');
const DAY = 86_400_000;
let server: TestServer;

beforeAll(() => {
  server = testServer(services);
});

/** A message `daysAgo` old (Date and INTERNALDATE), in a thread when `references` are given. */
function aged(
  daysAgo: number,
  subject: string,
  messageId: string,
  references: string[] = [],
  text = `${subject}: the body.\n`,
): SeedMessage {
  const date = new Date(Date.now() - daysAgo * DAY);
  return {
    message: {
      from: 'Bob <bob@example.test>',
      to: 'Alice <alice@example.test>',
      subject,
      date,
      messageId,
      ...(references.length ? { inReplyTo: references.at(-1)!, references } : {}),
      text,
    },
    internalDate: date,
  };
}

/** Windows Mail's Options for the Inbox (the corpus session), with this FilterType. */
function windowsMailOptions(filterType: string): WbxmlElement[] {
  return [
    el('AirSync', 'FilterType', filterType),
    el('AirSyncBase', 'BodyPreference', [
      el('AirSyncBase', 'Type', '2'),
      el('AirSyncBase', 'TruncationSize', '32768'),
      el('AirSyncBase', 'Preview', '255'),
    ]),
    el('AirSync', 'MIMESupport', '1'),
  ];
}

function bySubject(device: TestDevice, inbox: string): Map<string, WbxmlElement> {
  return new Map([...device.items(inbox).values()].map((d) => [itemText(d, 'Subject', 'Email') ?? '', d]));
}

async function windowsMail(user: ReturnType<typeof createUser>): Promise<{ device: TestDevice; inbox: string }> {
  const device = new TestDevice(server, user, undefined, '16.1', 'WindowsMail');
  await device.folderSync();
  return { device, inbox: device.folderByType(2).serverId };
}

describe('Sync ConversationMode (Windows Mail request shape)', () => {
  it('brings the older messages of the window conversations, preview only; later replies bring theirs', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'INBOX', [
      aged(40, 'Plans', 'plans@example.test'),
      aged(30, 'Re: Plans', 'plans-r1@example.test', ['plans@example.test']),
      aged(2, 'Re: Plans (dates)', 'plans-r2@example.test', ['plans@example.test', 'plans-r1@example.test']),
      aged(45, 'Old news', 'old@example.test'),
      aged(50, 'Budget', 'budget@example.test'),
      aged(1, 'Fresh', 'fresh@example.test'),
    ]);
    const { device, inbox } = await windowsMail(user);
    const shape = { windowSize: 25, conversationMode: true, options: windowsMailOptions('4') };
    await device.syncUntilDone(inbox, shape);

    const items = bySubject(device, inbox);
    expect([...items.keys()].sort()).toEqual(['Fresh', 'Plans', 'Re: Plans', 'Re: Plans (dates)']);
    // Outside the two weeks, here for its conversation: the preview, not the body (MS-ASCMD §2.2.3.36.2).
    for (const old of ['Plans', 'Re: Plans']) {
      const body = child(items.get(old), 'Body', 'AirSyncBase');
      expect(childText(body, 'Truncated', 'AirSyncBase'), old).toBe('1');
      expect(child(body, 'Data', 'AirSyncBase'), old).toBeUndefined();
      expect(childText(body, 'Preview', 'AirSyncBase'), old).toContain(`${old}: the body.`);
    }
    const inWindow = child(items.get('Re: Plans (dates)'), 'Body', 'AirSyncBase');
    expect(childText(inWindow, 'Truncated', 'AirSyncBase')).toBe('0');
    expect(childText(inWindow, 'Data', 'AirSyncBase')).toContain('Re: Plans (dates): the body.');

    // A reply to the 50-day-old Budget arrives: the next Sync brings Budget with it.
    await seedMailbox(services, user, 'INBOX', [
      aged(0, 'Re: Budget', 'budget-r1@example.test', ['budget@example.test']),
    ]);
    const round = await device.sync(inbox, shape);
    expect(round.status).toBe(1);
    expect([...bySubject(device, inbox).keys()].sort()).toEqual([
      'Budget',
      'Fresh',
      'Plans',
      'Re: Budget',
      'Re: Plans',
      'Re: Plans (dates)',
    ]);
    expect(
      childText(child(bySubject(device, inbox).get('Budget'), 'Body', 'AirSyncBase'), 'Truncated', 'AirSyncBase'),
    ).toBe('1');

    // The same mailbox without ConversationMode: the FilterType window alone.
    const plain = await windowsMail(user);
    await plain.device.syncUntilDone(plain.inbox, { windowSize: 25, options: windowsMailOptions('4') });
    expect([...bySubject(plain.device, plain.inbox).keys()].sort()).toEqual([
      'Fresh',
      'Re: Budget',
      'Re: Plans (dates)',
    ]);
  });

  it('a narrower FilterType keeps what a conversation still in the window holds, and SoftDeletes the rest', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'INBOX', [
      aged(25, 'Trip', 'trip@example.test'),
      aged(3, 'Re: Trip', 'trip-r1@example.test', ['trip@example.test']),
      aged(20, 'Mid', 'mid@example.test'),
      aged(1, 'Fresh', 'fresh@example.test'),
    ]);
    const { device, inbox } = await windowsMail(user);
    // One month (FilterType 5): everything is in the window.
    await device.syncUntilDone(inbox, { windowSize: 25, conversationMode: true, options: windowsMailOptions('5') });
    expect([...bySubject(device, inbox).keys()].sort()).toEqual(['Fresh', 'Mid', 'Re: Trip', 'Trip']);
    // Two weeks (FilterType 4) under the live key: Mid leaves; Trip stays, its reply is in the window.
    const rounds = await device.syncUntilDone(inbox, {
      windowSize: 25,
      conversationMode: true,
      options: windowsMailOptions('4'),
    });
    expect(rounds.flatMap((r) => r.softDeleted)).toHaveLength(1);
    expect([...bySubject(device, inbox).keys()].sort()).toEqual(['Fresh', 'Re: Trip', 'Trip']);
  });
});
