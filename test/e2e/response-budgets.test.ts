/**
 * Answer budgets (issue 17 item 2), against the real Dovecot with messages of 1 MiB attachments: a Sync loads at most
 * MAX_RESPONSE_BYTES of message source for its Adds and Fetches (MoreAvailable for the Adds left, Status 5 for the
 * Fetches left), serves at most a window of Fetches and only of items the device holds; an ItemOperations answer
 * stops loading at the same budget (Status 11 for the Fetches past it) and takes at most 100 operations.
 */
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../src/backends/types.ts';
import { child, children, childText, el, type WbxmlElement } from '../../src/wbxml/tree.ts';
import { TestDevice, testServer, type TestServer } from '../device/device.ts';
import { createUser, seedMailbox } from '../services/seed.ts';
import type { TestUser } from '../services/types.ts';
import { itemWithSubject } from './session-steps.ts';

const services = inject('services');
/** Two of the big messages (~1.4 MB of source each) fit in an answer, a third does not. */
const BUDGET = 3 * 1024 * 1024;
const BIG = ['Big 1', 'Big 2', 'Big 3', 'Big 4'];
const SMALL = ['Small 1', 'Small 2'];

let server: TestServer;
let user: TestUser;
let device: TestDevice;
let inbox: string;

beforeAll(async () => {
  server = testServer(services, { MAX_RESPONSE_BYTES: String(BUDGET) });
  user = createUser(services);
  await seedMailbox(services, user, 'INBOX', [
    ...BIG.map((subject) => ({
      message: {
        from: 'Bob <bob@example.test>',
        to: user.email,
        subject,
        text: `${subject}.\n`,
        attachments: [{ filename: 'scan.bin', contentType: 'application/octet-stream', content: randomBytes(1 << 20) }],
      },
    })),
    ...SMALL.map((subject) => ({
      message: { from: 'Bob <bob@example.test>', to: user.email, subject, text: `${subject}.\n` },
    })),
  ]);
  device = new TestDevice(server, user);
  await device.folderSync();
  inbox = device.folderByType(FolderType.Inbox).serverId;
}, 120_000);

const serverIdOf = (subject: string): string => itemWithSubject(device, inbox, subject)[0];

/**
 * MIME (Type 4) is read whole, so a big message reads its whole 1.4 MB; other body types read only the parts they
 * need (items/email-parts.ts), a few KB of it. The budget counts what is read.
 */
const MIME = [el('AirSync', 'MIMESupport', '2'), el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '4')])];
const HTML_5K = [
  el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '2'), el('AirSyncBase', 'TruncationSize', '5120')]),
];

function fetchStatuses(collection: WbxmlElement | undefined): [string, string][] {
  return children(child(collection, 'Responses'), 'Fetch').map((f) => [
    childText(f, 'ServerId') ?? '',
    childText(f, 'Status') ?? '',
  ]);
}

describe('Sync', () => {
  it('ends a window at the byte budget with MoreAvailable, and sends the rest in the next', async () => {
    const rounds = await device.syncUntilDone(inbox, { windowSize: 50, options: MIME });
    const adds = rounds.map((r) => r.added.length).filter((n) => n > 0);
    // The newest first: the two small messages and one big one fit (~1.4 MB); then two big ones; then the last.
    expect(adds.reduce((a, b) => a + b, 0)).toBe(BIG.length + SMALL.length);
    expect(adds.length).toBeGreaterThanOrEqual(2);
    for (const round of rounds.filter((r) => r.added.length > 0)) {
      const big = round.added.filter((id) => {
        const data = device.items(inbox).get(id);
        return child(data, 'Attachments', 'AirSyncBase') !== undefined;
      });
      expect(big.length).toBeLessThanOrEqual(2);
    }
    expect(rounds.slice(1, -1).every((r) => r.moreAvailable)).toBe(true);
  });

  it('serves at most a window of Fetches, within the byte budget, of items the device holds', async () => {
    const fetch = (serverId: string) => el('AirSync', 'Fetch', [el('AirSync', 'ServerId', serverId)]);
    // A window of one: the second Fetch is answered with a retry (5), not loaded.
    const small = await device.sync(inbox, {
      windowSize: 1,
      options: MIME,
      commands: SMALL.map((s) => fetch(serverIdOf(s))),
    });
    expect(fetchStatuses(small.collection)).toEqual([
      [serverIdOf('Small 1'), '1'],
      [serverIdOf('Small 2'), '5'],
    ]);
    // Four big messages: two fit in the budget, two are answered with a retry; an item the device does not hold is
    // not found (8), without a read.
    const unknown = `${inbox}:999999`;
    const big = await device.sync(inbox, {
      windowSize: 50,
      options: MIME,
      commands: [...BIG.map((s) => fetch(serverIdOf(s))), fetch(unknown)],
    });
    expect(fetchStatuses(big.collection)).toEqual([
      [serverIdOf('Big 1'), '1'],
      [serverIdOf('Big 2'), '1'],
      [serverIdOf('Big 3'), '5'],
      [serverIdOf('Big 4'), '5'],
      [unknown, '8'],
    ]);
    // Alone, the third is served.
    const alone = await device.sync(inbox, { options: MIME, commands: [fetch(serverIdOf('Big 3'))] });
    expect(fetchStatuses(alone.collection)).toEqual([[serverIdOf('Big 3'), '1']]);
    // HTML cut at 5 KB reads a few KB of each (their attachments are not read): all four fit.
    const parts = await device.sync(inbox, {
      windowSize: 50,
      options: HTML_5K,
      commands: BIG.map((s) => fetch(serverIdOf(s))),
    });
    expect(fetchStatuses(parts.collection)).toEqual(BIG.map((s) => [serverIdOf(s), '1']));
  });
});

describe('ItemOperations', () => {
  const attachmentFetch = (subject: string): WbxmlElement => {
    const data = itemWithSubject(device, inbox, subject)[1];
    const reference = childText(
      child(child(data, 'Attachments', 'AirSyncBase'), 'Attachment', 'AirSyncBase'),
      'FileReference',
      'AirSyncBase',
    )!;
    return el('ItemOperations', 'Fetch', [
      el('ItemOperations', 'Store', 'Mailbox'),
      el('AirSyncBase', 'FileReference', reference),
    ]);
  };
  const statuses = (body: WbxmlElement | undefined): string[] =>
    children(child(body, 'Response'), 'Fetch').map((f) => childText(f, 'Status') ?? '');

  it('answers the Fetches past the byte budget with Status 11; each alone is served', async () => {
    const res = await device.send('ItemOperations', el('ItemOperations', 'ItemOperations', BIG.map(attachmentFetch)));
    expect(res.status).toBe(200);
    expect(childText(res.body, 'Status')).toBe('1');
    expect(statuses(res.body)).toEqual(['1', '1', '11', '11']);
    const data = children(child(res.body, 'Response'), 'Fetch').map((f) => childText(child(f, 'Properties'), 'Data'));
    expect(Buffer.from(data[0]!, 'base64').length).toBe(1 << 20);
    const alone = await device.send(
      'ItemOperations',
      el('ItemOperations', 'ItemOperations', [attachmentFetch('Big 4')]),
    );
    expect(statuses(alone.body)).toEqual(['1']);
  });

  it('judges a message Fetch by what its read takes: as MIME past the budget Status 11, in parts all served', async () => {
    const itemFetch = (subject: string, options: WbxmlElement[]): WbxmlElement =>
      el('ItemOperations', 'Fetch', [
        el('ItemOperations', 'Store', 'Mailbox'),
        el('AirSync', 'CollectionId', inbox),
        el('AirSync', 'ServerId', serverIdOf(subject)),
        el('ItemOperations', 'Options', options),
      ]);
    const whole = await device.send(
      'ItemOperations',
      el(
        'ItemOperations',
        'ItemOperations',
        BIG.map((s) => itemFetch(s, MIME)),
      ),
    );
    expect(statuses(whole.body)).toEqual(['1', '1', '11', '11']);
    // Two as MIME take 2.8 MB of the 3 MB; then two in parts, a few KB each, still fit (judged by their whole 1.4 MB
    // they would not).
    const parts = await device.send(
      'ItemOperations',
      el('ItemOperations', 'ItemOperations', [
        itemFetch('Big 1', MIME),
        itemFetch('Big 2', MIME),
        itemFetch('Big 3', HTML_5K),
        itemFetch('Big 4', HTML_5K),
      ]),
    );
    expect(statuses(parts.body)).toEqual(['1', '1', '1', '1']);
  });

  it('refuses a request of more than 100 operations with Status 2, loading nothing', async () => {
    const item = el('ItemOperations', 'Fetch', [
      el('ItemOperations', 'Store', 'Mailbox'),
      el('AirSync', 'CollectionId', inbox),
      el('AirSync', 'ServerId', serverIdOf('Big 1')),
      // As MIME, which is read whole (other body types read only the parts they need: items/email-parts.ts).
      el('ItemOperations', 'Options', [
        el('AirSync', 'MIMESupport', '2'),
        el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '4')]),
      ]),
    ]);
    const res = await device.send(
      'ItemOperations',
      el(
        'ItemOperations',
        'ItemOperations',
        Array.from({ length: 101 }, () => item),
      ),
    );
    expect(res.status).toBe(200);
    expect(childText(res.body, 'Status')).toBe('2');
    expect(child(res.body, 'Response')).toBeUndefined();
    const hundred = await device.send(
      'ItemOperations',
      el(
        'ItemOperations',
        'ItemOperations',
        Array.from({ length: 100 }, () => item),
      ),
    );
    expect(childText(hundred.body, 'Status')).toBe('1');
    // Within the budget: the first two of them (the same 1.4 MB message), then Status 11.
    expect(statuses(hundred.body).slice(0, 3)).toEqual(['1', '1', '11']);
  });
});
