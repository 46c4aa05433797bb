import { describe, expect, it } from 'vitest';
import { mergedFreeBusy } from './freebusy.ts';

const event = (lines: string[]): string =>
  [
    'BEGIN:VCALENDAR',
    'VERSION:2.0',
    'PRODID:-//t//EN',
    'BEGIN:VEVENT',
    'UID:x',
    'DTSTAMP:20260101T000000Z',
    ...lines,
    'END:VEVENT',
    'END:VCALENDAR',
    '',
  ].join('\r\n');

describe('MergedFreeBusy', () => {
  const from = new Date('2026-06-01T08:00:00Z');
  const to = new Date('2026-06-01T12:00:00Z');

  it('one digit per half hour; the highest status in a slot wins; free and cancelled events do not count', () => {
    const texts = [
      event(['DTSTART:20260601T090000Z', 'DTEND:20260601T100000Z', 'SUMMARY:busy']),
      event(['DTSTART:20260601T093000Z', 'DTEND:20260601T101500Z', 'STATUS:TENTATIVE']),
      event(['DTSTART:20260601T110000Z', 'DTEND:20260601T113000Z', 'X-MICROSOFT-CDO-BUSYSTATUS:OOF']),
      event(['DTSTART:20260601T080000Z', 'DTEND:20260601T090000Z', 'TRANSP:TRANSPARENT']),
      event(['DTSTART:20260601T113000Z', 'DTEND:20260601T120000Z', 'STATUS:CANCELLED']),
    ];
    // 08:00 … 11:30: busy 09:00–10:00, tentative to 10:15 (busy wins at 09:30), out of office 11:00–11:30.
    expect(mergedFreeBusy(texts, from, to)).toBe('00221030');
  });

  it('expands recurring events, with their zone across DST, and skips excluded occurrences', () => {
    const tz = [
      'BEGIN:VCALENDAR',
      'VERSION:2.0',
      'PRODID:-//t//EN',
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
      'UID:d',
      'DTSTAMP:20260101T000000Z',
      // 10:00 Berlin every day since January: 09:00Z in winter, 08:00Z in summer.
      'DTSTART;TZID=Europe/Berlin:20260105T100000',
      'DTEND;TZID=Europe/Berlin:20260105T103000',
      'RRULE:FREQ=DAILY',
      'EXDATE;TZID=Europe/Berlin:20260602T100000',
      'END:VEVENT',
      'END:VCALENDAR',
      '',
    ].join('\r\n');
    expect(mergedFreeBusy([tz], new Date('2026-06-01T07:00:00Z'), new Date('2026-06-01T10:00:00Z'))).toBe('002000');
    expect(mergedFreeBusy([tz], new Date('2026-06-02T07:00:00Z'), new Date('2026-06-02T10:00:00Z'))).toBe('000000');
    expect(mergedFreeBusy([tz], new Date('2026-01-12T07:00:00Z'), new Date('2026-01-12T10:00:00Z'))).toBe('000020');
  });
});
