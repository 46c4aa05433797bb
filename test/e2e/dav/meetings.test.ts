/**
 * Meetings end to end, against the real Postfix → Dovecot and Radicale, through the scripted device:
 * - an invitation mailed to the user syncs as an Email with its MeetingRequest;
 * - MeetingResponse (accept) sets PARTSTAT=ACCEPTED in the user's calendar copy (created there), answers with its
 *   CalendarId, and (16.x, SendResponse) the iMIP REPLY reaches the organizer's INBOX; a 16.1 proposal is a COUNTER;
 *   an answer about one occurrence (InstanceId) is that occurrence's; up to 14.1 the server mails nothing;
 * - 16.x: an event the device creates with attendees sends them a REQUEST, a move an update, deleting it a CANCEL;
 *   up to 14.1 the device mails those itself (SendMail) and the server sends nothing.
 */
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { child, childText, el } from '../../../src/wbxml/tree.ts';
import { itemText, readyDevice, TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { FolderType } from '../../../src/backends/types.ts';
import {
  createUser,
  davRequest,
  makeEvent,
  sendViaSmtp,
  seedCalendar,
  waitForMessage,
  withImap,
} from '../../services/seed.ts';
import type { TestUser } from '../../services/types.ts';
import { meetingInvitation } from '../session-steps.ts';

const services = inject('services');
let server: TestServer;

beforeAll(() => {
  server = testServer(services);
});

/** The invitation these tests mail: with a LOCATION, and a plain-text part beside the calendar. */
function invitation(organizer: TestUser, attendee: TestUser, uid: string, summary: string): string {
  return meetingInvitation(organizer.email, attendee.email, uid, summary, { location: 'Room 1', withText: true });
}

/** The raw sources of the messages in a user's INBOX. */
async function inboxSources(user: TestUser): Promise<string[]> {
  return withImap(services, user, async (c) => {
    const box = await c.mailboxOpen('INBOX', { readOnly: true });
    if (box.exists === 0) return [];
    const out: string[] = [];
    for await (const m of c.fetch('1:*', { source: true })) out.push(m.source?.toString('utf8') ?? '');
    return out;
  });
}

function unfolded(text: string): string {
  return text.replace(/\r?\n[ \t]/g, '');
}

/** The decoded text/calendar parts of a message (base64 or plain). */
function calendarParts(source: string): string[] {
  const parts = source.split(/\r?\n--/);
  return parts
    .filter((p) => /content-type:\s*text\/calendar/i.test(p))
    .map((p) => {
      const [head, ...rest] = p.split(/\r?\n\r?\n/);
      const body = rest.join('\n\n');
      return /content-transfer-encoding:\s*base64/i.test(head ?? '')
        ? Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8')
        : body;
    });
}

describe('Meetings by mail', () => {
  it('16.1: an invitation syncs with its MeetingRequest; accepting it sets ACCEPTED in the calendar and mails the REPLY', async () => {
    const organizer = createUser(services);
    const attendee = createUser(services);
    const calendar = await seedCalendar(services, attendee, 'calendar', [], { displayName: 'Calendar' });
    const uid = `meet-${randomUUID()}`;
    await sendViaSmtp(services, organizer.email, attendee.email, invitation(organizer, attendee, uid, 'Planning'));
    await waitForMessage(services, attendee, (m) => m.subject === 'Planning');

    const device = new TestDevice(server, attendee, undefined, '16.1');
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.syncUntilDone(inbox);
    const [requestId, mail] = [...device.items(inbox)].find(([, d]) => itemText(d, 'Subject', 'Email') === 'Planning')!;
    expect(itemText(mail, 'MessageClass', 'Email')).toBe('IPM.Schedule.Meeting.Request');
    const meeting = child(mail, 'MeetingRequest', 'Email');
    expect(childText(meeting, 'StartTime', 'Email')).toBe('2026-03-15T09:00:00.000Z');
    expect(childText(meeting, 'EndTime', 'Email')).toBe('2026-03-15T10:00:00.000Z');
    expect(childText(meeting, 'Organizer', 'Email')).toContain(organizer.email);
    expect(childText(child(meeting, 'Location', 'AirSyncBase'), 'DisplayName', 'AirSyncBase')).toBe('Room 1'); // 16.x: airsyncbase:Location
    expect(childText(meeting, 'ResponseRequested', 'Email')).toBe('1');
    expect(childText(meeting, 'InstanceType', 'Email')).toBe('0');
    expect(Buffer.from(childText(meeting, 'GlobalObjId', 'Email') ?? '', 'base64').toString('latin1')).toContain(
      `vCal-Uid\u0001\u0000\u0000\u0000${uid}`,
    );
    expect(childText(meeting, 'MeetingMessageType', 'Email2')).toBe('1');

    const answer = await device.command(
      'MeetingResponse',
      el('MeetingResponse', 'MeetingResponse', [
        el('MeetingResponse', 'Request', [
          el('MeetingResponse', 'UserResponse', '1'),
          el('MeetingResponse', 'CollectionId', inbox),
          el('MeetingResponse', 'RequestId', requestId),
          el('MeetingResponse', 'SendResponse', [
            el('AirSyncBase', 'Body', [el('AirSyncBase', 'Type', '1'), el('AirSyncBase', 'Data', 'Count me in')]),
          ]),
        ]),
      ]),
    );
    const result = child(answer, 'Result');
    expect(childText(result, 'Status')).toBe('1');
    expect(childText(result, 'RequestId')).toBe(requestId);
    const calendarId = childText(result, 'CalendarId');
    expect(calendarId).toBeTruthy();

    // The organizer gets the REPLY, with the attendee's ACCEPTED.
    await waitForMessage(services, organizer, (m) => m.subject === 'Accepted: Planning');
    const reply = (await inboxSources(organizer)).find((s) => s.includes('Accepted: Planning'))!;
    const replyIcs = unfolded(calendarParts(reply)[0] ?? '');
    expect(replyIcs).toMatch(/^METHOD:REPLY/m);
    expect(reply).toContain(Buffer.from('Count me in').toString('base64')); // the device's note
    expect(replyIcs).toContain(`UID:${uid}`);
    expect(replyIcs).toMatch(new RegExp(`^ATTENDEE[^\\n]*PARTSTAT=ACCEPTED[^\\n]*:mailto:${attendee.email}`, 'mi'));

    // The attendee's calendar holds the meeting, ACCEPTED; the device sees it there under the CalendarId.
    const listing = await davRequest(services, attendee, 'PROPFIND', calendar.collectionUrl, {
      depth: '1',
      body: '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getetag/></prop></propfind>',
    });
    const hrefs = [...(await listing.text()).matchAll(/<(?:\w+:)?href>([^<]+\.ics)<\/(?:\w+:)?href>/g)].map(
      (m) => m[1]!,
    );
    expect(hrefs).toHaveLength(1);
    const copy = unfolded(await (await davRequest(services, attendee, 'GET', hrefs[0]!)).text());
    expect(copy).not.toMatch(/^METHOD:/m);
    expect(copy).toMatch(new RegExp(`^ATTENDEE[^\\n]*PARTSTAT=ACCEPTED[^\\n]*:mailto:${attendee.email}`, 'mi'));

    await device.folderSync();
    const calendarFolder = device.folderByName('Calendar').serverId;
    await device.syncUntilDone(calendarFolder);
    const event = device.items(calendarFolder).get(calendarId!);
    expect(itemText(event, 'Subject', 'Calendar')).toBe('Planning');
    expect(itemText(event, 'ResponseType', 'Calendar')).toBe('3');
    expect(itemText(event, 'MeetingStatus', 'Calendar')).toBe('3');
  });

  it('16.1: a decline with a proposed new time sends a COUNTER; without SendResponse nothing is mailed', async () => {
    const organizer = createUser(services);
    const attendee = createUser(services);
    await seedCalendar(services, attendee, 'calendar', [], { displayName: 'Calendar' });
    const uid = `meet-${randomUUID()}`;
    await sendViaSmtp(services, organizer.email, attendee.email, invitation(organizer, attendee, uid, 'Budget'));
    await sendViaSmtp(
      services,
      organizer.email,
      attendee.email,
      invitation(organizer, attendee, `${uid}-2`, 'Offsite'),
    );
    await waitForMessage(services, attendee, (m) => m.subject === 'Offsite');
    const device = new TestDevice(server, attendee, undefined, '16.1');
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.syncUntilDone(inbox);
    const idOf = (subject: string): string =>
      [...device.items(inbox)].find(([, d]) => itemText(d, 'Subject', 'Email') === subject)![0];

    const declined = await device.command(
      'MeetingResponse',
      el('MeetingResponse', 'MeetingResponse', [
        el('MeetingResponse', 'Request', [
          el('MeetingResponse', 'UserResponse', '3'),
          el('MeetingResponse', 'CollectionId', inbox),
          el('MeetingResponse', 'RequestId', idOf('Budget')),
          el('MeetingResponse', 'SendResponse', [
            el('MeetingResponse', 'ProposedStartTime', '20260316T140000Z'),
            el('MeetingResponse', 'ProposedEndTime', '20260316T150000Z'),
          ]),
        ]),
      ]),
    );
    expect(childText(child(declined, 'Result'), 'Status')).toBe('1');
    expect(childText(child(declined, 'Result'), 'CalendarId')).toBeUndefined(); // none for a decline
    await waitForMessage(services, organizer, (m) => m.subject === 'New Time Proposed: Budget');
    const counter = unfolded(
      calendarParts((await inboxSources(organizer)).find((s) => s.includes('New Time Proposed: Budget'))!)[0] ?? '',
    );
    expect(counter).toMatch(/^METHOD:COUNTER/m);
    expect(counter).toMatch(/^DTSTART:20260316T140000Z/m);
    expect(counter).toMatch(/^DTEND:20260316T150000Z/m);
    expect(counter).toMatch(new RegExp(`^ATTENDEE[^\\n]*PARTSTAT=DECLINED[^\\n]*:mailto:${attendee.email}`, 'mi'));

    // 16.x without SendResponse: the calendar is set, the organizer hears nothing (the Budget mail is all there is).
    const quiet = await device.command(
      'MeetingResponse',
      el('MeetingResponse', 'MeetingResponse', [
        el('MeetingResponse', 'Request', [
          el('MeetingResponse', 'UserResponse', '2'),
          el('MeetingResponse', 'CollectionId', inbox),
          el('MeetingResponse', 'RequestId', idOf('Offsite')),
        ]),
      ]),
    );
    expect(childText(child(quiet, 'Result'), 'Status')).toBe('1');
    expect(childText(child(quiet, 'Result'), 'CalendarId')).toBeTruthy();
    const calendarFolder = device.folderByName('Calendar').serverId;
    await device.syncUntilDone(calendarFolder);
    const offsite = device.items(calendarFolder).get(childText(child(quiet, 'Result'), 'CalendarId')!);
    expect(itemText(offsite, 'ResponseType', 'Calendar')).toBe('2');
    // A mail sent after the response arrives after anything the response would have sent.
    await sendViaSmtp(services, attendee.email, organizer.email, { subject: 'Sentinel', text: 'after the response' });
    await waitForMessage(services, organizer, (m) => m.subject === 'Sentinel');
    expect((await inboxSources(organizer)).filter((s) => /Offsite/.test(s))).toEqual([]);
  });

  it('declining one occurrence (InstanceId) of a meeting named by its calendar item sets it in that occurrence only', async () => {
    const organizer = createUser(services);
    const attendee = createUser(services);
    const uid = `weekly-${randomUUID()}`;
    const seeded = await seedCalendar(
      services,
      attendee,
      'calendar',
      [
        makeEvent({
          uid,
          summary: 'Weekly sync',
          start: '2026-03-02T09:00:00',
          tz: 'Europe/Berlin',
          rrule: 'FREQ=WEEKLY;COUNT=4',
          organizer: { email: organizer.email, name: 'Organizer' },
          attendees: [{ email: organizer.email, partstat: 'ACCEPTED' }, { email: attendee.email }],
        }),
      ],
      { displayName: 'Calendar' },
    );
    const device = new TestDevice(server, attendee, undefined, '16.1');
    await device.folderSync();
    const calendarFolder = device.folderByName('Calendar').serverId;
    await device.syncUntilDone(calendarFolder);
    const [eventId] = [...device.items(calendarFolder).keys()];
    const answer = await device.command(
      'MeetingResponse',
      el('MeetingResponse', 'MeetingResponse', [
        el('MeetingResponse', 'Request', [
          el('MeetingResponse', 'UserResponse', '3'),
          el('MeetingResponse', 'CollectionId', calendarFolder),
          el('MeetingResponse', 'RequestId', eventId!),
          // The second occurrence: 09:00 in Berlin, before the DST change.
          el('MeetingResponse', 'InstanceId', '2026-03-09T08:00:00.000Z'),
          el('MeetingResponse', 'SendResponse', []),
        ]),
      ]),
    );
    expect(childText(child(answer, 'Result'), 'Status')).toBe('1');

    await waitForMessage(services, organizer, (m) => m.subject === 'Declined: Weekly sync');
    const reply = unfolded(
      calendarParts((await inboxSources(organizer)).find((s) => s.includes('Declined: Weekly sync'))!)[0] ?? '',
    );
    expect(reply).toMatch(/^METHOD:REPLY/m);
    expect(reply.match(/^BEGIN:VEVENT/gm)).toHaveLength(1);
    expect(reply).toMatch(/^RECURRENCE-ID;TZID=Europe\/Berlin:20260309T090000$/m);
    expect(reply).toMatch(new RegExp(`^ATTENDEE[^\\n]*PARTSTAT=DECLINED[^\\n]*:mailto:${attendee.email}`, 'mi'));

    const copy = unfolded(await (await davRequest(services, attendee, 'GET', seeded.items[0]!.url)).text());
    const [master, override] = copy.split('BEGIN:VEVENT').slice(1);
    expect(master).toMatch(new RegExp(`PARTSTAT=NEEDS-ACTION[^\\n]*:mailto:${attendee.email}`, 'i'));
    expect(override).toMatch(/^RECURRENCE-ID;TZID=Europe\/Berlin:20260309T090000$/m);
    expect(override).toMatch(new RegExp(`PARTSTAT=DECLINED[^\\n]*:mailto:${attendee.email}`, 'i'));
  });

  it('an answered invitation moves from the Inbox to Deleted Items (the device gets a Delete); the answer is unchanged', async () => {
    const organizer = createUser(services);
    const attendee = createUser(services);
    await seedCalendar(services, attendee, 'calendar', [], { displayName: 'Calendar' });
    await sendViaSmtp(
      services,
      organizer.email,
      attendee.email,
      invitation(organizer, attendee, `meet-${randomUUID()}`, 'Kickoff'),
    );
    await waitForMessage(services, attendee, (m) => m.subject === 'Kickoff');
    const { device, inbox } = await readyDevice(server, attendee);
    await device.syncUntilDone(inbox);
    const [requestId] = [...device.items(inbox)].find(([, d]) => itemText(d, 'Subject', 'Email') === 'Kickoff')!;
    const answer = await device.command(
      'MeetingResponse',
      el('MeetingResponse', 'MeetingResponse', [
        el('MeetingResponse', 'Request', [
          el('MeetingResponse', 'UserResponse', '2'),
          el('MeetingResponse', 'CollectionId', inbox),
          el('MeetingResponse', 'RequestId', requestId),
        ]),
      ]),
    );
    const result = child(answer, 'Result');
    expect(childText(result, 'Status')).toBe('1');
    expect(childText(result, 'RequestId')).toBe(requestId);
    const calendarId = childText(result, 'CalendarId')!;
    // The same request again (a phone whose answer was lost) gets the same answer, though the mail has moved.
    const again = child(
      await device.command(
        'MeetingResponse',
        el('MeetingResponse', 'MeetingResponse', [
          el('MeetingResponse', 'Request', [
            el('MeetingResponse', 'UserResponse', '2'),
            el('MeetingResponse', 'CollectionId', inbox),
            el('MeetingResponse', 'RequestId', requestId),
          ]),
        ]),
      ),
      'Result',
    );
    expect(childText(again, 'Status')).toBe('1');
    expect(childText(again, 'CalendarId')).toBe(calendarId);

    // The Inbox no longer has it; Deleted Items does.
    const round = await device.sync(inbox);
    expect(round.deleted).toEqual([requestId]);
    const trash = device.folderByType(FolderType.DeletedItems).serverId;
    await device.syncUntilDone(trash);
    expect([...device.items(trash).values()].map((d) => itemText(d, 'Subject', 'Email'))).toEqual(['Kickoff']);
    // The calendar holds the answer under the CalendarId given.
    const calendarFolder = device.folderByName('Calendar').serverId;
    await device.syncUntilDone(calendarFolder);
    expect(itemText(device.items(calendarFolder).get(calendarId), 'ResponseType', 'Calendar')).toBe('2');
  });

  it('14.1: the calendar takes the answer; the server mails nothing (the client sends its answer with SendMail)', async () => {
    const organizer = createUser(services);
    const attendee = createUser(services);
    await seedCalendar(services, attendee, 'calendar', [], { displayName: 'Calendar' });
    await sendViaSmtp(
      services,
      organizer.email,
      attendee.email,
      invitation(organizer, attendee, `meet-${randomUUID()}`, 'Retro'),
    );
    await waitForMessage(services, attendee, (m) => m.subject === 'Retro');
    const { device, inbox } = await readyDevice(server, attendee);
    await device.syncUntilDone(inbox);
    const [requestId, mail] = [...device.items(inbox)].find(([, d]) => itemText(d, 'Subject', 'Email') === 'Retro')!;
    expect(childText(child(mail, 'MeetingRequest', 'Email'), 'Location', 'Email')).toBe('Room 1'); // ≤ 14.1: email:Location
    const answer = await device.command(
      'MeetingResponse',
      el('MeetingResponse', 'MeetingResponse', [
        el('MeetingResponse', 'Request', [
          el('MeetingResponse', 'UserResponse', '1'),
          el('MeetingResponse', 'CollectionId', inbox),
          el('MeetingResponse', 'RequestId', requestId),
        ]),
      ]),
    );
    const calendarId = childText(child(answer, 'Result'), 'CalendarId')!;
    const calendarFolder = device.folderByName('Calendar').serverId;
    await device.syncUntilDone(calendarFolder);
    expect(itemText(device.items(calendarFolder).get(calendarId), 'ResponseType', 'Calendar')).toBe('3');
    await sendViaSmtp(services, attendee.email, organizer.email, { subject: 'Sentinel', text: 'after the response' });
    await waitForMessage(services, organizer, (m) => m.subject === 'Sentinel');
    expect((await inboxSources(organizer)).filter((s) => /Retro/.test(s))).toEqual([]);
  });

  it('14.1: a meeting created on the device is not mailed by the server (the device sends its invitations with SendMail)', async () => {
    const user = createUser(services);
    const guest = createUser(services);
    await seedCalendar(services, user, 'calendar', [], { displayName: 'Calendar' });
    const { device } = await readyDevice(server, user);
    const calendarFolder = device.folderByName('Calendar').serverId;
    await device.syncUntilDone(calendarFolder);
    const round = await device.sync(calendarFolder, {
      commands: [
        el('AirSync', 'Add', [
          el('AirSync', 'ClientId', 'm2'),
          el('AirSync', 'ApplicationData', [
            el('Calendar', 'Subject', 'Quiet meeting'),
            el('Calendar', 'StartTime', '20260321T130000Z'),
            el('Calendar', 'EndTime', '20260321T140000Z'),
            el('Calendar', 'MeetingStatus', '1'),
            el('Calendar', 'Attendees', [
              el('Calendar', 'Attendee', [el('Calendar', 'Email', guest.email), el('Calendar', 'Name', 'Guest')]),
            ]),
          ]),
        ]),
      ],
    });
    expect(round.addResponses[0]?.status).toBe(1);
    await sendViaSmtp(services, user.email, guest.email, { subject: 'Sentinel', text: 'after the add' });
    await waitForMessage(services, guest, (m) => m.subject === 'Sentinel');
    expect((await inboxSources(guest)).filter((s) => s.includes('Quiet meeting'))).toEqual([]);
  });

  it('an answer to something that is not an invitation is Status 2; a malformed request is HTTP 400', async () => {
    const user = createUser(services);
    await seedCalendar(services, user, 'calendar', [], { displayName: 'Calendar' });
    const { device, inbox } = await readyDevice(server, user);
    const bad = await device.command(
      'MeetingResponse',
      el('MeetingResponse', 'MeetingResponse', [
        el('MeetingResponse', 'Request', [
          el('MeetingResponse', 'UserResponse', '1'),
          el('MeetingResponse', 'CollectionId', inbox),
          el('MeetingResponse', 'RequestId', `${inbox}:999`),
        ]),
      ]),
    );
    expect(childText(child(bad, 'Result'), 'Status')).toBe('2');
    const malformed = await device.send('MeetingResponse', el('MeetingResponse', 'MeetingResponse', []));
    expect(malformed.status).toBe(400);
  });

  it('16.1: an event created on the device with an attendee sends a REQUEST, a move another (SEQUENCE 1), deleting it a CANCEL', async () => {
    const user = createUser(services);
    const guest = createUser(services);
    await seedCalendar(services, user, 'calendar', [], { displayName: 'Calendar' });
    const device = new TestDevice(server, user, undefined, '16.1');
    await device.folderSync();
    const calendarFolder = device.folderByName('Calendar').serverId;
    await device.syncUntilDone(calendarFolder);
    const round = await device.sync(calendarFolder, {
      commands: [
        el('AirSync', 'Add', [
          el('AirSync', 'ClientId', 'm1'),
          el('AirSync', 'ApplicationData', [
            el('Calendar', 'Subject', 'Design review'),
            el('Calendar', 'StartTime', '20260320T130000Z'),
            el('Calendar', 'EndTime', '20260320T140000Z'),
            el('Calendar', 'AllDayEvent', '0'),
            el('Calendar', 'BusyStatus', '2'),
            el('Calendar', 'MeetingStatus', '1'),
            el('Calendar', 'Attendees', [
              el('Calendar', 'Attendee', [
                el('Calendar', 'Email', guest.email),
                el('Calendar', 'Name', 'Guest'),
                el('Calendar', 'AttendeeType', '1'),
              ]),
            ]),
          ]),
        ]),
      ],
    });
    const added = round.addResponses[0]!;
    expect(added.status).toBe(1);
    await waitForMessage(services, guest, (m) => m.subject === 'Design review');
    const request = unfolded(
      calendarParts((await inboxSources(guest)).find((s) => s.includes('Design review'))!)[0] ?? '',
    );
    expect(request).toMatch(/^METHOD:REQUEST/m);
    expect(request).toMatch(new RegExp(`^ORGANIZER[^\\n]*:mailto:${user.email}`, 'mi'));
    expect(request).toMatch(new RegExp(`^ATTENDEE[^\\n]*:mailto:${guest.email}`, 'mi'));

    expect(request).not.toMatch(/^SEQUENCE:[1-9]/m); // absent or 0: the first version

    // Moved to another hour: an update (SEQUENCE 1); a new reminder only: no mail.
    const change = (data: ReturnType<typeof el>[]): ReturnType<typeof el> =>
      el('AirSync', 'Change', [el('AirSync', 'ServerId', added.serverId!), el('AirSync', 'ApplicationData', data)]);
    await device.sync(calendarFolder, {
      commands: [
        change([
          el('Calendar', 'Subject', 'Design review (moved)'),
          el('Calendar', 'StartTime', '20260320T150000Z'),
          el('Calendar', 'EndTime', '20260320T160000Z'),
        ]),
      ],
    });
    await waitForMessage(services, guest, (m) => m.subject === 'Design review (moved)');
    const update = unfolded(
      calendarParts((await inboxSources(guest)).find((s) => s.includes('Subject: Design review (moved)'))!)[0] ?? '',
    );
    expect(update).toMatch(/^METHOD:REQUEST/m);
    expect(update).toMatch(/^SEQUENCE:1$/m);
    expect(update).toMatch(/^DTSTART[^\n]*:20260320T150000Z$/m);
    await device.sync(calendarFolder, { commands: [change([el('Calendar', 'Reminder', '30')])] });
    await sendViaSmtp(services, user.email, guest.email, { subject: 'Sentinel', text: 'after the reminder change' });
    await waitForMessage(services, guest, (m) => m.subject === 'Sentinel');
    expect((await inboxSources(guest)).filter((s) => s.includes('Design review'))).toHaveLength(2);

    await device.sync(calendarFolder, {
      commands: [el('AirSync', 'Delete', [el('AirSync', 'ServerId', added.serverId!)])],
    });
    await waitForMessage(services, guest, (m) => m.subject === 'Canceled: Design review (moved)');
    const cancel = unfolded(
      calendarParts((await inboxSources(guest)).find((s) => s.includes('Canceled: Design review (moved)'))!)[0] ?? '',
    );
    expect(cancel).toMatch(/^METHOD:CANCEL/m);
    expect(cancel).toMatch(/^STATUS:CANCELLED/m);
    expect(cancel).toMatch(/^SEQUENCE:2$/m);
  });
});
