import { describe, expect, it } from 'vitest';
import { childText, child } from '../wbxml/tree.ts';
import { globalObjectId, meetingRequestElement } from './meeting-request.ts';

const ics = (extra: string[], method = 'REQUEST'): string =>
  [
    'BEGIN:VCALENDAR',
    'VERSION:2.0',
    'PRODID:-//test//EN',
    `METHOD:${method}`,
    'BEGIN:VTIMEZONE',
    'TZID:Europe/Berlin',
    'BEGIN:STANDARD',
    'DTSTART:19701025T030000',
    'RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU',
    'TZOFFSETFROM:+0200',
    'TZOFFSETTO:+0100',
    'END:STANDARD',
    'BEGIN:DAYLIGHT',
    'DTSTART:19700329T020000',
    'RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU',
    'TZOFFSETFROM:+0100',
    'TZOFFSETTO:+0200',
    'END:DAYLIGHT',
    'END:VTIMEZONE',
    'BEGIN:VEVENT',
    'UID:weekly-1',
    'DTSTAMP:20260301T080000Z',
    'DTSTART;TZID=Europe/Berlin:20260302T090000',
    'DTEND;TZID=Europe/Berlin:20260302T100000',
    'SUMMARY:Standup',
    'ORGANIZER;CN=Olga:mailto:olga@example.test',
    'ATTENDEE;RSVP=TRUE;PARTSTAT=NEEDS-ACTION:mailto:me@example.test',
    ...extra,
    'END:VEVENT',
    'END:VCALENDAR',
    '',
  ].join('\r\n');

describe('MeetingRequest', () => {
  it('a weekly invitation: times (extended form), recurrence, reminder in seconds, organizer, zone', () => {
    const mr = meetingRequestElement(
      ics([
        'RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=5',
        'SEQUENCE:0',
        'BEGIN:VALARM',
        'ACTION:DISPLAY',
        'TRIGGER:-PT15M',
        'DESCRIPTION:x',
        'END:VALARM',
      ]),
      'REQUEST',
      '14.1',
    )!;
    expect(childText(mr, 'StartTime')).toBe('2026-03-02T08:00:00.000Z');
    expect(childText(mr, 'EndTime')).toBe('2026-03-02T09:00:00.000Z');
    expect(childText(mr, 'InstanceType')).toBe('1');
    expect(childText(mr, 'Reminder')).toBe('900');
    expect(childText(mr, 'Organizer')).toBe('"Olga" <olga@example.test>');
    expect(childText(mr, 'ResponseRequested')).toBe('1');
    const recurrence = child(child(mr, 'Recurrences'), 'Recurrence');
    expect(childText(recurrence, 'Type')).toBe('1');
    expect(childText(recurrence, 'DayOfWeek')).toBe('2');
    expect(childText(recurrence, 'Occurrences')).toBe('5');
    expect(Buffer.from(childText(mr, 'TimeZone') ?? '', 'base64')).toHaveLength(172);
    expect(childText(mr, 'MeetingMessageType', 'Email2')).toBe('1');
  });

  it('an update is MeetingMessageType 2, a cancellation shows free; 14.0 has no MeetingMessageType', () => {
    expect(
      childText(meetingRequestElement(ics(['SEQUENCE:3']), 'REQUEST', '16.1'), 'MeetingMessageType', 'Email2'),
    ).toBe('2');
    const cancel = meetingRequestElement(ics(['STATUS:CANCELLED']), 'CANCEL', '14.0')!;
    expect(childText(cancel, 'BusyStatus')).toBe('0');
    expect(child(cancel, 'MeetingMessageType', 'Email2')).toBeUndefined();
  });

  it('GlobalObjId wraps a foreign UID the way Outlook does, and keeps an Outlook one', () => {
    const bytes = Buffer.from(globalObjectId('abc'), 'base64');
    expect(bytes.subarray(0, 16).toString('hex').toUpperCase()).toBe('040000008200E00074C5B7101A82E008');
    expect(bytes.readUInt32LE(36)).toBe(bytes.length - 40);
    expect(bytes.subarray(40).toString('latin1')).toBe('vCal-Uid\u0001\u0000\u0000\u0000abc\u0000');
    const outlook = '040000008200E00074C5B7101A82E00800000000A0B1C2D3E4F5A6B70000000000000000100000001122334455667788';
    expect(Buffer.from(globalObjectId(outlook), 'base64').toString('hex').toUpperCase()).toBe(outlook);
  });
});
