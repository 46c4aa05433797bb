import { describe, expect, it } from 'vitest';
import { calendarWindowStart, isCompletedTask, itemWindow, lastOccurrenceEnd } from './calendar-window.ts';

const cal = (lines: string[], component = 'VEVENT'): string =>
  [
    'BEGIN:VCALENDAR',
    'VERSION:2.0',
    'PRODID:-//t//EN',
    `BEGIN:${component}`,
    'UID:x',
    'DTSTAMP:20260101T000000Z',
    ...lines,
    `END:${component}`,
    'END:VCALENDAR',
    '',
  ].join('\r\n');

describe('FilterType windows', () => {
  const now = Date.parse('2026-06-15T12:00:00Z');

  it('calendar windows reach back 2 weeks, 1, 3 and 6 months; 0 keeps everything', () => {
    expect(calendarWindowStart(0, now)).toBeUndefined();
    expect(calendarWindowStart(4, now)).toBe(now - 14 * 86_400_000);
    expect(calendarWindowStart(7, now)).toBe(now - 186 * 86_400_000);
  });

  it('a series counts by its last occurrence (COUNT, UNTIL, a moved occurrence); an endless one never leaves', () => {
    expect(lastOccurrenceEnd(cal(['DTSTART:20260101T090000Z', 'DTEND:20260101T100000Z']))).toBe(
      Date.parse('2026-01-01T10:00:00Z'),
    );
    expect(
      lastOccurrenceEnd(cal(['DTSTART:20260101T090000Z', 'DTEND:20260101T100000Z', 'RRULE:FREQ=WEEKLY;COUNT=3'])),
    ).toBe(Date.parse('2026-01-15T10:00:00Z'));
    expect(
      lastOccurrenceEnd(
        cal(['DTSTART:20260101T090000Z', 'DTEND:20260101T100000Z', 'RRULE:FREQ=DAILY;UNTIL=20260110T090000Z']),
      ),
    ).toBe(Date.parse('2026-01-10T10:00:00Z'));
    expect(lastOccurrenceEnd(cal(['DTSTART:20260101T090000Z', 'DTEND:20260101T100000Z', 'RRULE:FREQ=MONTHLY']))).toBe(
      Number.POSITIVE_INFINITY,
    );
    const moved = [
      'BEGIN:VCALENDAR',
      'VERSION:2.0',
      'PRODID:-//t//EN',
      'BEGIN:VEVENT',
      'UID:m',
      'DTSTAMP:20260101T000000Z',
      'DTSTART:20260101T090000Z',
      'DTEND:20260101T100000Z',
      'RRULE:FREQ=WEEKLY;COUNT=2',
      'END:VEVENT',
      'BEGIN:VEVENT',
      'UID:m',
      'DTSTAMP:20260101T000000Z',
      'RECURRENCE-ID:20260108T090000Z',
      'DTSTART:20260301T090000Z',
      'DTEND:20260301T100000Z',
      'END:VEVENT',
      'END:VCALENDAR',
      '',
    ].join('\r\n');
    expect(lastOccurrenceEnd(moved)).toBe(Date.parse('2026-03-01T10:00:00Z'));
  });

  it('judges items against the window; tasks by completion under FilterType 8', () => {
    const window = itemWindow('Calendar', 4, now)!;
    expect(window.judge(cal(['DTSTART:20260610T090000Z', 'DTEND:20260610T100000Z'])).inWindow).toBe(true);
    expect(window.judge(cal(['DTSTART:20260510T090000Z', 'DTEND:20260510T100000Z'])).inWindow).toBe(false);
    expect(window.judge(cal(['DTSTART:20250510T090000Z', 'DTEND:20250510T100000Z', 'RRULE:FREQ=YEARLY']))).toEqual({
      inWindow: true,
    });
    expect(itemWindow('Calendar', 0, now)).toBeUndefined();
    expect(itemWindow('Contacts', 4, now)).toBeUndefined();
    const tasks = itemWindow('Tasks', 8, now)!;
    expect(tasks.judge(cal(['STATUS:NEEDS-ACTION'], 'VTODO')).inWindow).toBe(true);
    expect(tasks.judge(cal(['STATUS:COMPLETED'], 'VTODO')).inWindow).toBe(false);
    expect(isCompletedTask(cal(['COMPLETED:20260101T000000Z'], 'VTODO'))).toBe(true);
    expect(itemWindow('Tasks', 0, now)).toBeUndefined();
  });
});
