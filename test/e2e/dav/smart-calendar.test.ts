/**
 * SmartForward and SmartReply of a calendar item (Source: the calendar's FolderId + the event's ItemId, and InstanceId
 * for one occurrence), end to end: Radicale holds the meeting, the scripted device sends, Postfix delivers to Dovecot.
 * A forward carries the meeting quoted and its REQUEST (that occurrence only) with the new people invited; a reply is
 * a plain mail to the organizer with the meeting quoted.
 */
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { itemText, TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { createUser, makeEvent, seedCalendar } from '../../services/seed.ts';
import type { TestUser } from '../../services/types.ts';
import { compose, composeStatus, readFolder, waitForStored } from '../mail/compose-helpers.ts';

const services = inject('services');
let server: TestServer;

beforeAll(() => {
  server = testServer(services);
});

function unfolded(text: string): string {
  return text.replace(/\r?\n[ \t]/g, '');
}

function deviceMime(from: TestUser, to: TestUser | undefined, subject: string, text: string): string {
  return [
    `From: <${from.email}>`,
    ...(to ? [`To: <${to.email}>`] : []),
    `Subject: ${subject}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    '',
    text,
    '',
  ].join('\r\n');
}

/** A weekly meeting organized by `organizer` in `attendee`'s calendar, synced by a 16.1 device. */
async function scene(): Promise<{
  organizer: TestUser;
  alice: TestUser;
  device: TestDevice;
  calendar: string;
  eventId: string;
  summary: string;
}> {
  const [organizer, alice] = [createUser(services), createUser(services)];
  const summary = `Weekly sync ${randomUUID().slice(0, 6)}`;
  await seedCalendar(
    services,
    alice,
    'calendar',
    [
      makeEvent({
        summary,
        description: 'Agenda: the numbers',
        location: 'Room 4',
        start: '2026-03-02T09:00:00',
        tz: 'Europe/Berlin',
        rrule: 'FREQ=WEEKLY;COUNT=4',
        organizer: { email: organizer.email, name: 'Organizer' },
        attendees: [
          { email: organizer.email, partstat: 'ACCEPTED' },
          { email: alice.email, partstat: 'ACCEPTED' },
        ],
        alarmMinutes: 15,
      }),
    ],
    { displayName: 'Calendar' },
  );
  const device = new TestDevice(server, alice, undefined, '16.1');
  await device.folderSync();
  const calendar = device.folderByName('Calendar').serverId;
  await device.syncUntilDone(calendar);
  const [eventId] = [...device.items(calendar).keys()];
  return { organizer, alice, device, calendar, eventId: eventId!, summary };
}

describe('SmartForward and SmartReply of a calendar occurrence', () => {
  it('a forward of one occurrence sends its REQUEST to the new people (To and Forwardees) with the meeting quoted', async () => {
    const s = await scene();
    const [carol, dave] = [createUser(services), createUser(services)];
    const res = await compose(
      s.device,
      'SmartForward',
      deviceMime(s.alice, carol, `Fwd: ${s.summary}`, 'Join us this once.'),
      {
        source: { folderId: s.calendar, itemId: s.eventId, instanceId: '20260309T080000Z' },
        forwardees: [{ name: 'Dave', email: dave.email }],
      },
    );
    expect(composeStatus(res)).toBeUndefined();

    for (const person of [carol, dave]) {
      const got = await waitForStored(services, person, (m) => m.email.subject === `Fwd: ${s.summary}`);
      expect(got.email.text).toContain('Join us this once.');
      expect(got.email.text).toContain('Agenda: the numbers'); // the meeting, quoted
      expect(got.email.text).toContain('Where: Room 4');
      const source = got.source.toString('utf8');
      expect(source).toMatch(/Content-Type: text\/calendar; charset=utf-8; method=REQUEST/i);
      const invite =
        got.email.attachments.find((a) => a.mimeType === 'text/calendar') ??
        got.email.attachments.find((a) => a.mimeType === 'application/ics');
      const ics = unfolded(new TextDecoder().decode(invite!.content as ArrayBuffer));
      expect(ics).toMatch(/^METHOD:REQUEST/m);
      expect(ics.match(/^BEGIN:VEVENT/gm)).toHaveLength(1); // that occurrence only
      expect(ics).toMatch(/^RECURRENCE-ID;TZID=Europe\/Berlin:20260309T090000$/m);
      expect(ics.slice(ics.indexOf('BEGIN:VEVENT'))).not.toMatch(/^RRULE/m); // (the VTIMEZONE has its own)
      expect(ics).not.toMatch(/BEGIN:VALARM/);
      expect(ics).toMatch(new RegExp(`^ORGANIZER[^\\n]*:mailto:${s.organizer.email}`, 'mi')); // answers go to the organizer
      expect(ics).toMatch(new RegExp(`^ATTENDEE[^\\n]*PARTSTAT=NEEDS-ACTION[^\\n]*:mailto:${person.email}`, 'mi'));
      expect(ics).toMatch(new RegExp(`^ATTENDEE[^\\n]*:mailto:${s.alice.email}`, 'mi'));
    }

    // Carol's phone sees a meeting request.
    const phone = new TestDevice(server, carol, undefined, '16.1');
    await phone.folderSync();
    const inbox = phone.folderByType(FolderType.Inbox).serverId;
    await phone.syncUntilDone(inbox);
    const mail = [...phone.items(inbox).values()].find((d) => itemText(d, 'Subject', 'Email') === `Fwd: ${s.summary}`);
    expect(itemText(mail, 'MessageClass', 'Email')).toBe('IPM.Schedule.Meeting.Request');

    // Alice's Sent Items keep the forward.
    expect((await readFolder(services, s.alice, 'Sent')).map((m) => m.email.subject)).toContain(`Fwd: ${s.summary}`);
  });

  it('a reply to an occurrence is a mail to the organizer with the meeting quoted, without a REQUEST', async () => {
    const s = await scene();
    // The device names nobody: the organizer is the recipient.
    const res = await compose(
      s.device,
      'SmartReply',
      deviceMime(s.alice, undefined, `Re: ${s.summary}`, 'Running late.'),
      {
        source: { folderId: s.calendar, itemId: s.eventId, instanceId: '20260316T080000Z' },
      },
    );
    expect(composeStatus(res)).toBeUndefined();
    const got = await waitForStored(services, s.organizer, (m) => m.email.subject === `Re: ${s.summary}`);
    expect(got.email.text).toContain('Running late.');
    expect(got.email.text).toMatch(/^> Agenda: the numbers/m);
    expect(got.email.text).toContain('When: 20260316T080000Z');
    expect(got.source.toString('utf8')).not.toMatch(/text\/calendar/i);
  });

  it('a forward of the whole series with ReplaceMime carries the series REQUEST and only the device text', async () => {
    const s = await scene();
    const carol = createUser(services);
    const res = await compose(
      s.device,
      'SmartForward',
      deviceMime(s.alice, carol, `Fwd: ${s.summary}`, 'The whole series.'),
      {
        source: { folderId: s.calendar, itemId: s.eventId },
        replaceMime: true,
        saveInSent: false,
      },
    );
    expect(composeStatus(res)).toBeUndefined();
    const got = await waitForStored(services, carol, (m) => m.email.subject === `Fwd: ${s.summary}`);
    expect(got.email.text).toContain('The whole series.');
    expect(got.email.text).not.toContain('Agenda: the numbers');
    const invite =
      got.email.attachments.find((a) => a.mimeType === 'text/calendar') ??
      got.email.attachments.find((a) => a.mimeType === 'application/ics');
    const event = unfolded(new TextDecoder().decode(invite!.content as ArrayBuffer))
      .split('BEGIN:VEVENT')
      .slice(1);
    expect(event).toHaveLength(1);
    expect(event[0]).toMatch(/^RRULE:FREQ=WEEKLY;COUNT=4/m);
    expect(event[0]).toMatch(new RegExp(`^ATTENDEE[^\\n]*PARTSTAT=NEEDS-ACTION[^\\n]*:mailto:${carol.email}`, 'mi'));
    expect(await readFolder(services, s.alice, 'Sent')).toEqual([]);
  });

  it('an InstanceId that is not a time, or an event the device does not have, is 150 and sends nothing', async () => {
    const s = await scene();
    const carol = createUser(services);
    for (const source of [
      { folderId: s.calendar, itemId: s.eventId, instanceId: 'garbage' },
      { folderId: s.calendar, itemId: `${s.calendar}:nothere`, instanceId: '20260309T080000Z' },
    ]) {
      expect(
        composeStatus(await compose(s.device, 'SmartForward', deviceMime(s.alice, carol, 'Never', 'x'), { source })),
      ).toBe(150);
    }
    expect(await readFolder(services, s.alice, 'Sent')).toEqual([]);
  });
});
