/**
 * Meeting mail sent once when a retried request meets an earlier attempt's work, against the real Radicale, Postfix
 * and Dovecot (16.1 devices; the server mails iMIP):
 * - an Add of a meeting with an attendee, resent under the older SyncKey after the key moved on (Status 3, the folder
 *   started over, the Add sent again with the same ClientId): one event, one invitation;
 * - a MeetingResponse resent after a lost answer: one REPLY to the organizer.
 */
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../src/backends/types.ts';
import { child, childText, el } from '../../src/wbxml/tree.ts';
import { itemText, TestDevice, testServer, type TestServer } from '../device/device.ts';
import { createUser, davRequest, makeEvent, sendViaSmtp, seedCalendar, waitForMessage } from '../services/seed.ts';
import { countAfter, readFolder } from '../e2e/mail/compose-helpers.ts';
import { eventSummaries, syncToEnd } from './converge.ts';
import { acceptMeeting, meetingInvitation } from '../e2e/session-steps.ts';

const services = inject('services');
let server: TestServer;

beforeAll(() => {
  server = testServer(services);
});

describe('meeting mail of a retried request', () => {
  it('an Add with an attendee resent after Status 3: one event, one invitation', async () => {
    expect(services.smtp, services.smtpSkipReason ?? '').not.toBeNull();
    const [organizer, guest] = [createUser(services), createUser(services)];
    const calendar = await seedCalendar(services, organizer, 'calendar', [], { displayName: 'Calendar' });
    const device = new TestDevice(server, organizer, undefined, '16.1');
    await device.folderSync();
    const folder = device.folderByName('Calendar').serverId;
    await syncToEnd(device, folder);
    const title = `Review ${randomUUID().slice(0, 8)}`;
    const add = el('AirSync', 'Add', [
      el('AirSync', 'ClientId', 'meeting-1'),
      el('AirSync', 'ApplicationData', [
        el('Calendar', 'Subject', title),
        el('Calendar', 'StartTime', '20260321T130000Z'),
        el('Calendar', 'EndTime', '20260321T140000Z'),
        el('Calendar', 'MeetingStatus', '1'),
        el('Calendar', 'Attendees', [
          el('Calendar', 'Attendee', [el('Calendar', 'Email', guest.email), el('Calendar', 'Name', 'Guest')]),
        ]),
      ]),
    ]);
    const olderKey = device.collections.get(folder)!.syncKey;
    expect((await device.sync(folder, { commands: [add] })).addResponses[0]?.status).toBe(1);
    await waitForMessage(services, guest, (m) => m.subject === title);

    // The device lost that answer. The server has news, so its next Sync moves the key on; then it resends the Add
    // under the older key, gets Status 3, starts the folder over and sends the Add again.
    const other = makeEvent({ uid: `other-${randomUUID()}`, summary: 'Other', start: '2026-03-22T09:00:00' });
    await (
      await davRequest(services, organizer, 'PUT', new URL(`other-${randomUUID()}.ics`, calendar.collectionUrl).href, {
        body: other,
        contentType: 'text/calendar; charset=utf-8',
      })
    ).text();
    await device.sync(folder);
    const held = device.collections.get(folder)!;
    held.syncKey = olderKey;
    expect((await device.sync(folder, { commands: [add] })).status).toBe(3);
    device.collections.delete(folder);
    await device.sync(folder);
    expect((await device.sync(folder, { commands: [add] })).addResponses[0]?.status).toBe(1);
    await syncToEnd(device, folder);

    expect((await eventSummaries(services, organizer, calendar.collectionUrl)).filter((s) => s === title)).toHaveLength(
      1,
    );
    expect(await countAfter(services, guest, title)).toBe(1);
  });

  it('a MeetingResponse resent after a lost answer: one REPLY', async () => {
    expect(services.smtp, services.smtpSkipReason ?? '').not.toBeNull();
    const [organizer, attendee] = [createUser(services), createUser(services)];
    await seedCalendar(services, attendee, 'calendar', [], { displayName: 'Calendar' });
    const uid = `meet-${randomUUID()}`;
    const title = `Planning ${randomUUID().slice(0, 8)}`;
    await sendViaSmtp(
      services,
      organizer.email,
      attendee.email,
      meetingInvitation(organizer.email, attendee.email, uid, title),
    );
    await waitForMessage(services, attendee, (m) => m.subject === title);
    const device = new TestDevice(server, attendee, undefined, '16.1');
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.syncUntilDone(inbox);
    const [requestId] = [...device.items(inbox)].find(([, d]) => itemText(d, 'Subject', 'Email') === title)!;
    const respond = () => acceptMeeting(device, inbox, requestId, 'Yes');
    expect(childText(child(await respond(), 'Result'), 'Status')).toBe('1');
    await waitForMessage(services, organizer, (m) => m.subject === `Accepted: ${title}`);
    // The answer was lost; the phone sends the same response again.
    expect(childText(child(await respond(), 'Result'), 'Status')).toBe('1');
    expect(await countAfter(services, organizer, `Accepted: ${title}`)).toBe(1);
    expect((await readFolder(services, organizer)).length).toBe(1);
  });
});
