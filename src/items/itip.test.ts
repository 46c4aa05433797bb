import { describe, expect, it } from 'vitest';
import {
  attendeeCopy,
  forwardedMeeting,
  imipMime,
  meetingSummary,
  organizedMeeting,
  organizerMessageCalendar,
  replyCalendar,
} from './itip.ts';

const REQUEST = [
  'BEGIN:VCALENDAR',
  'VERSION:2.0',
  'PRODID:-//test//EN',
  'METHOD:REQUEST',
  'BEGIN:VEVENT',
  'UID:m1',
  'DTSTAMP:20260301T080000Z',
  'DTSTART:20260315T090000Z',
  'DTEND:20260315T100000Z',
  'SUMMARY:Planning',
  'ORGANIZER;CN=Olga:mailto:olga@example.test',
  'ATTENDEE;PARTSTAT=ACCEPTED:mailto:olga@example.test',
  'ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:me@example.test',
  'ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:other@example.test',
  'BEGIN:VALARM',
  'ACTION:DISPLAY',
  'TRIGGER:-PT15M',
  'DESCRIPTION:x',
  'END:VALARM',
  'END:VEVENT',
  'END:VCALENDAR',
  '',
].join('\r\n');

const unfold = (s: string): string => s.replace(/\r?\n[ \t]/g, '');

describe('iTIP', () => {
  it('reads who organizes and who attends', () => {
    const m = meetingSummary(REQUEST)!;
    expect(m).toMatchObject({
      uid: 'm1',
      method: 'REQUEST',
      summary: 'Planning',
      organizer: { email: 'olga@example.test', name: 'Olga' },
      sequence: 0,
      cancelled: false,
    });
    expect(m.attendees.map((a) => a.email)).toEqual(['olga@example.test', 'me@example.test', 'other@example.test']);
    expect(organizedMeeting(REQUEST, ['me@example.test'])).toBeUndefined();
    expect(organizedMeeting(REQUEST, ['olga@example.test'])?.uid).toBe('m1');
  });

  it('a REPLY carries only the replying attendee with the new PARTSTAT, no alarm', () => {
    const reply = unfold(replyCalendar(REQUEST, 'me@example.test', 'TENTATIVE'));
    expect(reply).toMatch(/^METHOD:REPLY$/m);
    expect(reply.match(/^ATTENDEE/gm)).toHaveLength(1);
    expect(reply).toMatch(/^ATTENDEE;PARTSTAT=TENTATIVE:mailto:me@example.test$/m);
    expect(reply).toMatch(/^ORGANIZER/m);
    expect(reply).not.toMatch(/VALARM/);
  });

  it('a proposal is a COUNTER with the proposed times', () => {
    const counter = unfold(
      replyCalendar(REQUEST, 'me@example.test', 'DECLINED', {
        start: new Date('2026-03-16T14:00:00Z'),
        end: new Date('2026-03-16T15:00:00Z'),
      }),
    );
    expect(counter).toMatch(/^METHOD:COUNTER$/m);
    expect(counter).toMatch(/^DTSTART:20260316T140000Z$/m);
    expect(counter).toMatch(/^DTEND:20260316T150000Z$/m);
  });

  it("the attendee's copy has no METHOD and the user's PARTSTAT; a user the request did not name is added", () => {
    const copy = unfold(attendeeCopy(REQUEST, ['me@example.test'], 'ACCEPTED'));
    expect(copy).not.toMatch(/^METHOD/m);
    expect(copy).toMatch(/^ATTENDEE;PARTSTAT=ACCEPTED:mailto:me@example.test$/m);
    expect(copy).toMatch(/^ATTENDEE;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:other@example.test$/m);
    const viaList = unfold(attendeeCopy(REQUEST, ['list-member@example.test'], 'DECLINED'));
    expect(viaList).toMatch(/^ATTENDEE;PARTSTAT=DECLINED:mailto:list-member@example.test$/m);
  });

  it('a CANCEL is STATUS:CANCELLED with the SEQUENCE raised', () => {
    const cancel = unfold(organizerMessageCalendar(REQUEST, 'CANCEL'));
    expect(cancel).toMatch(/^METHOD:CANCEL$/m);
    expect(cancel).toMatch(/^STATUS:CANCELLED$/m);
    expect(cancel).toMatch(/^SEQUENCE:1$/m);
  });

  it('the iMIP message has the calendar part with its method', () => {
    const mime = new TextDecoder().decode(
      imipMime({
        from: { email: 'me@example.test' },
        to: [{ email: 'olga@example.test', name: 'Olga Ö' }],
        subject: 'Accepted: Planning',
        method: 'REPLY',
        ics: 'BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n',
        text: 'ok',
      }),
    );
    expect(mime).toMatch(/^To: "=\?UTF-8\?B\?[^?]+\?=" <olga@example.test>$/m);
    expect(mime).toMatch(/^Content-Type: text\/calendar; charset=utf-8; method=REPLY$/m);
    expect(mime).toContain(Buffer.from('BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n').toString('base64'));
  });

  it('a forwarded meeting is a REQUEST with the new people asked to answer, the organizer kept; one occurrence alone with InstanceId', () => {
    const whole = forwardedMeeting(REQUEST, undefined, [
      { email: 'new@example.test', name: 'New' },
      { email: 'OTHER@example.test' },
    ])!;
    const text = unfold(whole.request);
    expect(text).toMatch(/^METHOD:REQUEST/m);
    expect(text).not.toMatch(/BEGIN:VALARM/);
    expect(text).toMatch(/^ORGANIZER;CN=Olga:mailto:olga@example.test/m);
    expect(text).toMatch(
      /^ATTENDEE;CN=New;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:new@example.test/m,
    );
    expect(text.match(/other@example.test/gi)).toHaveLength(1); // invited already: not twice
    expect(whole.meeting.summary).toBe('Planning');
    expect(whole.end?.toISOString()).toBe('2026-03-15T10:00:00.000Z');

    const series = REQUEST.replace('DTEND:20260315T100000Z', 'DTEND:20260315T100000Z\r\nRRULE:FREQ=DAILY;COUNT=3');
    const one = unfold(forwardedMeeting(series, '20260316T090000Z', [{ email: 'new@example.test' }])!.request);
    expect(one.match(/^BEGIN:VEVENT/gm)).toHaveLength(1);
    expect(one).toMatch(/^RECURRENCE-ID:20260316T090000Z/m);
    expect(one).not.toMatch(/^RRULE/m);
    expect(one).toMatch(/mailto:new@example.test/);
    // A single event named with an InstanceId is the event itself; an InstanceId that is not a time names nothing.
    expect(unfold(forwardedMeeting(REQUEST, '20260315T090000Z', [])!.request)).not.toMatch(/RECURRENCE-ID/);
    expect(forwardedMeeting(series, 'soon', [])).toBeUndefined();
  });
});
