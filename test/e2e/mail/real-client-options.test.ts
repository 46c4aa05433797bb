/**
 * Sync Options as real clients send them, against the real Dovecot and Radicale:
 *
 * - Android's Exchange client (AOSP packages/apps/Exchange, `EasSyncMail.setSyncOptions` and
 *   `EasSyncCalendar.setInitialSyncOptions`, as mirrored in CyanogenMod/android_packages_apps_Exchange) sends its
 *   first Sync of a folder with SyncKey 0 and no Options, then its first real Sync with DeletesAsMoves, GetChanges,
 *   WindowSize 10 and Options FilterType 3 (mail, one week) or 4 (calendar, two weeks) with BodyPreference Type 2,
 *   TruncationSize 200000. Options given for the first time are no change: the collection syncs, no Status 3.
 * - Two Options blocks in one collection, one of them `Class SMS` (MS-ASCMD §2.2.3.125.6, §2.2.3.27.6), with the
 *   children BlueMind's SyncEndpointSMSTests records from an Android phone (FilterType, RightsManagementSupport,
 *   BodyPreference), SMS block first and the Email block with Conflict: the block for the folder's class applies.
 * - A FilterType changed under a live key resyncs the window (items that enter it are added, those that leave it
 *   SoftDeleted), for a calendar as for mail (test/e2e/mail/sync-filter.test.ts).
 * - MIMETruncation with MIMESupport (MS-ASCMD §2.2.3.111, §2.2.3.110.3): the MIME body cut as asked, Truncated, and
 *   the whole size as EstimatedDataSize.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { child, childText, el, textOf, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { itemText, TestDevice, testServer, type TestServer } from '../../device/device.ts';
import {
  createUser,
  makeEvent,
  makeMessage,
  seedCalendar,
  seedMailbox,
  type SeedMessage,
} from '../../services/seed.ts';

const services = inject('services');
const DAY = 86_400_000;
let server: TestServer;

beforeAll(() => {
  server = testServer(services);
});

function aged(daysAgo: number, label = `${daysAgo} days old`): SeedMessage {
  const date = new Date(Date.now() - daysAgo * DAY);
  return {
    message: makeMessage({ from: 'Bob <bob@example.test>', to: 'Alice <alice@example.test>', subject: label, date }),
    internalDate: date,
  };
}

/** AOSP's Options for a mail folder after the initial Sync: the window and an HTML body of up to 200000 bytes. */
function aospMail(filterType: string): WbxmlElement[] {
  return [
    el('AirSync', 'FilterType', filterType),
    el('AirSyncBase', 'BodyPreference', [
      el('AirSyncBase', 'Type', '2'),
      el('AirSyncBase', 'TruncationSize', '200000'),
    ]),
  ];
}

/** The SMS block Android puts before the Email block (its children as BlueMind's capture has them). */
const SMS_BLOCK: WbxmlElement[] = [
  el('AirSync', 'Class', 'SMS'),
  el('AirSync', 'FilterType', '0'),
  el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '1')]),
];

function mailSubjects(device: TestDevice, collectionId: string): string[] {
  return [...device.items(collectionId).values()].map((d) => itemText(d, 'Subject', 'Email') ?? '').sort();
}

function calendarSubjects(device: TestDevice, collectionId: string): string[] {
  return [...device.items(collectionId).values()].map((d) => itemText(d, 'Subject', 'Calendar') ?? '').sort();
}

/** A UTC wall time `ms` from now, as makeEvent takes it. */
function at(ms: number): string {
  return new Date(Date.now() + ms).toISOString().slice(0, 19);
}

async function androidDevice(user: ReturnType<typeof createUser>): Promise<TestDevice> {
  const device = new TestDevice(server, user, undefined, '14.1', 'Android');
  await device.folderSync();
  return device;
}

describe('Android: SyncKey 0 without Options, then the first real Sync with them', () => {
  it('mail with FilterType 3 syncs the last week (no Status 3), and the Options stay for Syncs without them', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'INBOX', [aged(20), aged(2)]);
    const device = await androidDevice(user);
    const inbox = device.folderByType(FolderType.Inbox).serverId;

    const initial = await device.sync(inbox);
    expect(initial.status).toBe(1);
    const first = await device.sync(inbox, { windowSize: 10, options: aospMail('3') });
    expect(first.status).toBe(1);
    expect(mailSubjects(device, inbox)).toEqual(['2 days old']);
    const body = child(device.items(inbox).values().next().value, 'Body', 'AirSyncBase');
    expect(childText(body, 'Type', 'AirSyncBase')).toBe('2');

    // Sticky Options (MS-ASCMD §2.2.3.125.6): a Sync without them keeps the week's window.
    await seedMailbox(services, user, 'INBOX', [aged(30), aged(1)]);
    const next = await device.sync(inbox, { windowSize: 10 });
    expect(next.status).toBe(1);
    expect(mailSubjects(device, inbox)).toEqual(['1 days old', '2 days old']);
    const again = await device.sync(inbox, { windowSize: 10, options: aospMail('3') });
    expect(again.status).toBe(1);
    expect([...again.added, ...again.softDeleted, ...again.deleted]).toEqual([]);
  });

  it('two Options blocks, SMS first: the Email block applies (FilterType, Conflict, body type)', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'INBOX', [aged(20), aged(2)]);
    const device = await androidDevice(user);
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    expect((await device.sync(inbox)).status).toBe(1);

    const emailBlock = [
      el('AirSync', 'FilterType', '3'),
      el('AirSync', 'Conflict', '1'),
      el('RightsManagement', 'RightsManagementSupport', '1'),
      el('AirSyncBase', 'BodyPreference', [
        el('AirSyncBase', 'Type', '2'),
        el('AirSyncBase', 'TruncationSize', '51200'),
        el('AirSyncBase', 'AllOrNone', '0'),
      ]),
    ];
    const round = await device.sync(inbox, { windowSize: 10, classOptions: [SMS_BLOCK], options: emailBlock });
    expect(round.status).toBe(1);
    expect(mailSubjects(device, inbox)).toEqual(['2 days old']);
    const body = child(device.items(inbox).values().next().value, 'Body', 'AirSyncBase');
    expect(childText(body, 'Type', 'AirSyncBase')).toBe('2');
    const stored = await server.state.getCollection(device.scope, inbox);
    expect(stored?.state.options).toMatchObject({ filterType: 3, conflict: 1 });
    expect(stored?.state.options.perClass).toBeUndefined();

    // The same request again (Android repeats its Options on every Sync): nothing new, still Status 1.
    const quiet = await device.sync(inbox, { windowSize: 10, classOptions: [SMS_BLOCK], options: emailBlock });
    expect(quiet.status).toBe(1);
    expect([...quiet.added, ...quiet.softDeleted]).toEqual([]);

    // GetItemEstimate with the same two blocks (MS-ASCMD §2.2.3.27.2): the Email block's week counts, not SMS's all.
    await seedMailbox(services, user, 'INBOX', [aged(30), aged(1)]);
    const estimate = await device.command(
      'GetItemEstimate',
      el('GetItemEstimate', 'GetItemEstimate', [
        el('GetItemEstimate', 'Collections', [
          el('GetItemEstimate', 'Collection', [
            el('AirSync', 'SyncKey', device.collections.get(inbox)!.syncKey),
            el('GetItemEstimate', 'CollectionId', inbox),
            el('AirSync', 'Options', SMS_BLOCK),
            el('AirSync', 'Options', emailBlock),
          ]),
        ]),
      ]),
    );
    const response = child(estimate, 'Response', 'GetItemEstimate');
    expect(childText(response, 'Status', 'GetItemEstimate')).toBe('1');
    expect(childText(child(response, 'Collection', 'GetItemEstimate'), 'Estimate', 'GetItemEstimate')).toBe('1');
  });

  it('a calendar with FilterType 4 syncs the last two weeks, and a later FilterType resyncs its window', async () => {
    const user = createUser(services);
    await seedCalendar(
      services,
      user,
      'cal',
      [
        makeEvent({ uid: 'old', summary: 'Old', start: at(-60 * DAY), tz: 'UTC' }),
        makeEvent({ uid: 'recent', summary: 'Recent', start: at(-3 * DAY), tz: 'UTC' }),
        makeEvent({ uid: 'future', summary: 'Future', start: at(10 * DAY), tz: 'UTC' }),
      ],
      { displayName: 'Cal' },
    );
    const device = await androidDevice(user);
    const cal = device.folderByName('Cal').serverId;
    // EasSyncCalendar: nothing with SyncKey 0; then FilterType 4 and a plain-text body.
    const pim = (filterType: string): WbxmlElement[] => [
      el('AirSync', 'FilterType', filterType),
      el('AirSyncBase', 'BodyPreference', [
        el('AirSyncBase', 'Type', '1'),
        el('AirSyncBase', 'TruncationSize', '200000'),
      ]),
    ];
    expect((await device.sync(cal)).status).toBe(1);
    const first = await device.sync(cal, { windowSize: 10, options: pim('4') });
    expect(first.status).toBe(1);
    expect(calendarSubjects(device, cal)).toEqual(['Future', 'Recent']);

    // FilterType 0 (everything) under the live key: the old event is added, nothing is resent.
    const wider = await device.sync(cal, { windowSize: 10, options: pim('0') });
    expect(wider.status).toBe(1);
    expect(wider.added).toHaveLength(1);
    expect([...wider.changed, ...wider.softDeleted]).toEqual([]);
    expect(calendarSubjects(device, cal)).toEqual(['Future', 'Old', 'Recent']);

    // Back to two weeks: the old event leaves the device as SoftDelete.
    const narrower = await device.sync(cal, { windowSize: 10, options: pim('4') });
    expect(narrower.status).toBe(1);
    expect(narrower.softDeleted).toHaveLength(1);
    expect([...narrower.added, ...narrower.changed]).toEqual([]);
    expect(calendarSubjects(device, cal)).toEqual(['Future', 'Recent']);
    const quiet = await device.sync(cal, { windowSize: 10, options: pim('4') });
    expect([...quiet.added, ...quiet.changed, ...quiet.softDeleted]).toEqual([]);
  });
});

describe('MIMETruncation with MIMESupport', () => {
  it('cuts the MIME body as asked, with Truncated and the whole size as EstimatedDataSize', async () => {
    const user = createUser(services);
    const long = `${'A line of text that makes this message long enough to be cut. '.repeat(200)}\n`;
    const source = makeMessage({ from: 'Bob <bob@example.test>', subject: 'Long', text: long });
    await seedMailbox(services, user, 'INBOX', [{ message: source }, { message: makeMessage({ subject: 'Short' }) }]);
    const device = new TestDevice(server, user);
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    // MIME always (MIMESupport 2), truncated over 4096 characters (MIMETruncation 1), MIME body wanted (Type 4).
    const options = [
      el('AirSync', 'FilterType', '0'),
      el('AirSync', 'MIMESupport', '2'),
      el('AirSync', 'MIMETruncation', '1'),
      el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '4')]),
    ];
    await device.syncUntilDone(inbox, { options });
    const bodies = new Map(
      [...device.items(inbox).values()].map((d) => [itemText(d, 'Subject', 'Email'), child(d, 'Body', 'AirSyncBase')]),
    );
    const cut = bodies.get('Long');
    expect(childText(cut, 'Type', 'AirSyncBase')).toBe('4');
    expect(childText(cut, 'Truncated', 'AirSyncBase')).toBe('1');
    expect(Number(childText(cut, 'EstimatedDataSize', 'AirSyncBase'))).toBe(source.length);
    const data = textOf(child(cut, 'Data', 'AirSyncBase')!);
    expect(Buffer.byteLength(data)).toBeLessThanOrEqual(4096);
    expect(Buffer.byteLength(data)).toBeGreaterThan(4000);
    expect(source.toString('utf8').startsWith(data)).toBe(true);
    const whole = bodies.get('Short');
    expect(childText(whole, 'Truncated', 'AirSyncBase')).toBe('0');
    expect(textOf(child(whole, 'Data', 'AirSyncBase')!)).toContain('Subject: Short');

    // MIMETruncation 0: no body text at all, still the real size.
    const other = new TestDevice(server, user);
    await other.folderSync();
    const none = [el('AirSync', 'MIMESupport', '2'), el('AirSync', 'MIMETruncation', '0'), options[3]!];
    await other.syncUntilDone(inbox, { options: none });
    const empty = [...other.items(inbox).values()].find((d) => itemText(d, 'Subject', 'Email') === 'Long');
    const emptyBody = child(empty, 'Body', 'AirSyncBase');
    expect(childText(emptyBody, 'Truncated', 'AirSyncBase')).toBe('1');
    expect(child(emptyBody, 'Data', 'AirSyncBase')).toBeUndefined();
    expect(Number(childText(emptyBody, 'EstimatedDataSize', 'AirSyncBase'))).toBe(source.length);
  });
});
