import ICAL from 'ical.js';
import { describe, expect, it } from 'vitest';
import { loadDavFixture } from '../../test/fixtures/dav/fixtures.ts';
import {
  decodeTimeZoneInformation,
  encodeTimeZoneInformation,
  fromLocalTime,
  ianaZoneFor,
  sameTimeZoneRules,
  timeZoneFromBase64,
  timeZoneInformationForTzid,
  timeZoneInformationFromVtimezone,
  timeZoneToBase64,
  toLocalTime,
  transitionDay,
  UTC_TIME_ZONE,
  utcOffsetAt,
  vtimezoneForTzid,
  vtimezoneOf,
  zoneFromTimeZoneInformation,
  type TimeZoneInformation,
} from './timezone.ts';

// Time zone blobs as clients send them, each 172 bytes (MS-ASDTYPE §2.7.6).
const PACIFIC_BLOB =
  '4AEAAFAAYQBjAGkAZgBpAGMAIABTAHQAYQBuAGQAYQByAGQAIABUAGkAbQBlAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAsAAAABAAIAAAAAAAAAAAAAAFAAYQBjAGkAZgBpAGMAIABEAGEAeQBsAGkAZwBoAHQAIABUAGkAbQBlAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAMAAAACAAIAAAAAAAAAxP///w==';
const CENTRAL_EUROPE_BLOB =
  'xP///1cALgAgAEUAdQByAG8AcABlACAAUwB0AGEAbgBkAGEAcgBkACAAVABpAG0AZQAAAAAAAAAAAAAAAAAAAAAAAAAAAAoAAAAFAAMAAAAAAAAAAAAAAFcALgAgAEUAdQByAG8AcABlACAARABhAHkAbABpAGcAaAB0ACAAVABpAG0AZQAAAAAAAAAAAAAAAAAAAAAAAAAAAAMAAAAFAAIAAAAAAAAAxP///w==';
const UTC_BLOB = `${'A'.repeat(230)}==`;

function vtimezoneOfCalendar(ics: string): ICAL.Component {
  return new ICAL.Component(ICAL.parse(ics)).getFirstSubcomponent('vtimezone')!;
}

/** A blob as iOS sends it: the rules without names. */
function nameless(tzi: TimeZoneInformation): TimeZoneInformation {
  return { ...tzi, standardName: '', daylightName: '' };
}

/** Offsets every hour of a year from ical.js (expanding the VTIMEZONE) and from the blob's rules. */
function hourlyOffsets(
  vtimezone: ICAL.Component,
  tzi: TimeZoneInformation,
  year: number,
): { ical: number[]; blob: number[] } {
  const zone = new ICAL.Timezone({ component: vtimezone, tzid: String(vtimezone.getFirstPropertyValue('tzid')) });
  const ical: number[] = [];
  const blob: number[] = [];
  // ical.js answers for local wall times: the hours next to a transition (repeated or skipped on the wall) are left
  // out.
  for (let t = Date.UTC(year, 0, 1); t < Date.UTC(year + 1, 0, 1); t += 3600_000) {
    const instant = new Date(t);
    const offset = utcOffsetAt(tzi, instant);
    if (
      utcOffsetAt(tzi, new Date(t - 2 * 3600_000)) !== offset ||
      utcOffsetAt(tzi, new Date(t + 2 * 3600_000)) !== offset
    )
      continue;
    const wall = ICAL.Time.fromData({ ...toLocalTime(tzi, instant), isDate: false }, zone);
    ical.push(zone.utcOffset(wall) / 60);
    blob.push(offset);
  }
  return { ical, blob };
}

describe('the TIME_ZONE_INFORMATION blob', () => {
  it("decodes the brief's examples and encodes them back byte for byte", () => {
    for (const blob of [PACIFIC_BLOB, CENTRAL_EUROPE_BLOB, UTC_BLOB]) {
      const tzi = timeZoneFromBase64(blob)!;
      expect(encodeTimeZoneInformation(tzi)).toHaveLength(172);
      expect(timeZoneToBase64(tzi)).toBe(blob);
    }
    expect(timeZoneFromBase64(PACIFIC_BLOB)).toMatchObject({
      bias: 480,
      standardName: 'Pacific Standard Time',
      standardDate: { year: 0, month: 11, dayOfWeek: 0, day: 1, hour: 2 },
      daylightName: 'Pacific Daylight Time',
      daylightDate: { month: 3, dayOfWeek: 0, day: 2, hour: 2 },
      daylightBias: -60,
    });
    expect(timeZoneFromBase64(UTC_BLOB)).toEqual(UTC_TIME_ZONE);
  });

  it('is built for IANA zones from the table exactly as Windows writes them', () => {
    expect(timeZoneToBase64(timeZoneInformationForTzid('America/Los_Angeles', 2024)!)).toBe(PACIFIC_BLOB);
    expect(timeZoneToBase64(timeZoneInformationForTzid('Europe/Berlin', 2024)!)).toBe(CENTRAL_EUROPE_BLOB);
    expect(timeZoneToBase64(timeZoneInformationForTzid('UTC', 2024)!)).toBe(UTC_BLOB);
  });

  it('cuts names at 31 characters and rejects short or non-base64 values', () => {
    const long = { ...UTC_TIME_ZONE, standardName: 'A very long time zone name that does not fit' };
    expect(decodeTimeZoneInformation(encodeTimeZoneInformation(long))!.standardName).toBe(
      long.standardName.slice(0, 31),
    );
    expect(timeZoneFromBase64('AAAA')).toBeUndefined();
    expect(timeZoneFromBase64('not base64!')).toBeUndefined();
  });
});

describe('rules arithmetic', () => {
  const berlin = timeZoneInformationForTzid('Europe/Berlin', 2024)!;
  const sydney = timeZoneInformationForTzid('Australia/Sydney', 2024)!;

  it('finds the nth and the last weekday of a month', () => {
    expect(transitionDay(berlin.daylightDate, 2024)).toBe(31); // last Sunday of March 2024
    expect(transitionDay(berlin.standardDate, 2024)).toBe(27); // last Sunday of October 2024
    expect(transitionDay(timeZoneInformationForTzid('America/New_York', 2024)!.daylightDate, 2024)).toBe(10);
  });

  it('switches at the exact minute, north and south', () => {
    expect(utcOffsetAt(berlin, new Date('2024-03-31T00:59:59Z'))).toBe(60);
    expect(utcOffsetAt(berlin, new Date('2024-03-31T01:00:00Z'))).toBe(120);
    expect(utcOffsetAt(berlin, new Date('2024-10-27T00:59:59Z'))).toBe(120);
    expect(utcOffsetAt(berlin, new Date('2024-10-27T01:00:00Z'))).toBe(60);
    expect(utcOffsetAt(sydney, new Date('2024-01-15T00:00:00Z'))).toBe(660);
    expect(utcOffsetAt(sydney, new Date('2024-07-15T00:00:00Z'))).toBe(600);
    expect(utcOffsetAt(sydney, new Date('2024-04-06T15:59:00Z'))).toBe(660); // 02:59 AEDT, 7 April
    expect(utcOffsetAt(sydney, new Date('2024-04-06T16:00:00Z'))).toBe(600);
  });

  it('reads 09:00 in Berlin as 08:00 UTC in January and 07:00 UTC in July', () => {
    expect(fromLocalTime(berlin, { year: 2024, month: 1, day: 15, hour: 9, minute: 0, second: 0 }).toISOString()).toBe(
      '2024-01-15T08:00:00.000Z',
    );
    expect(fromLocalTime(berlin, { year: 2024, month: 7, day: 15, hour: 9, minute: 0, second: 0 }).toISOString()).toBe(
      '2024-07-15T07:00:00.000Z',
    );
    expect(toLocalTime(berlin, new Date('2024-07-15T07:00:00Z'))).toEqual({
      year: 2024,
      month: 7,
      day: 15,
      hour: 9,
      minute: 0,
      second: 0,
    });
  });

  it('reads a time in the spring-forward gap as standard time', () => {
    expect(fromLocalTime(berlin, { year: 2024, month: 3, day: 31, hour: 2, minute: 30, second: 0 }).toISOString()).toBe(
      '2024-03-31T01:30:00.000Z',
    );
  });
});

describe('VTIMEZONE → blob', () => {
  it("reads Outlook's VTIMEZONE (1601 observances, Windows TZID) as W. Europe", () => {
    const tzi = timeZoneInformationFromVtimezone(vtimezoneOfCalendar(loadDavFixture('outlook-meeting.ics')), 2024);
    expect(timeZoneToBase64(tzi)).toBe(CENTRAL_EUROPE_BLOB);
  });

  it("reads Google's New York VTIMEZONE with the US rules and Windows names", () => {
    const tzi = timeZoneInformationFromVtimezone(vtimezoneOfCalendar(loadDavFixture('google-recurring.ics')), 2024);
    expect(timeZoneToBase64(tzi)).toBe(timeZoneToBase64(timeZoneInformationForTzid('America/New_York', 2024)!));
    expect(tzi.standardName).toBe('Eastern Standard Time');
  });

  it("reads Thunderbird's VTIMEZONE (+010000 offsets, a 1980 observance without RRULE) as Berlin", () => {
    const tzi = timeZoneInformationFromVtimezone(vtimezoneOfCalendar(loadDavFixture('thunderbird-todo.ics')), 2024);
    expect(sameTimeZoneRules(tzi, timeZoneInformationForTzid('Europe/Berlin', 2024)!)).toBe(true);
  });

  it('takes the rules in force in the year asked for (US rules before and after 2007)', () => {
    const ny = `BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:America/New_York\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\nDTSTART:19870405T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU;UNTIL=20060402T070000Z\r\nEND:DAYLIGHT\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\nDTSTART:20070311T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nDTSTART:19671029T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU;UNTIL=20061029T060000Z\r\nEND:STANDARD\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nDTSTART:20071104T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n`;
    const vtimezone = vtimezoneOfCalendar(ny);
    const before = vtimezone.toString();
    expect(timeZoneInformationFromVtimezone(vtimezone, 2005)).toMatchObject({
      daylightDate: { month: 4, day: 1 },
      standardDate: { month: 10, day: 5 },
    });
    expect(timeZoneInformationFromVtimezone(vtimezone, 2024)).toMatchObject({
      daylightDate: { month: 3, day: 2 },
      standardDate: { month: 11, day: 1 },
    });
    // The zone is read, not changed.
    expect(vtimezone.toString()).toBe(before);
  });

  it('settles "4th" against "last" with the RRULE (BYDAY=4SU in a month whose 4th Sunday is its last)', () => {
    const zone = (byday: string): string =>
      `BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:Test\r\nBEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nDTSTART:19700301T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=2;BYDAY=${byday}\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nDTSTART:19701001T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n`;
    // February 2026: Sundays 1, 8, 15, 22; the 22nd is both the 4th and the last.
    expect(timeZoneInformationFromVtimezone(vtimezoneOfCalendar(zone('4SU')), 2026).daylightDate.day).toBe(4);
    expect(timeZoneInformationFromVtimezone(vtimezoneOfCalendar(zone('-1SU')), 2026).daylightDate.day).toBe(5);
  });
});

describe('TZID → blob without a VTIMEZONE', () => {
  it('knows the zones of the table under IANA names, aliases, Windows names and vendor prefixes', () => {
    const berlin = timeZoneInformationForTzid('Europe/Berlin', 2024)!;
    for (const tzid of [
      'Europe/Amsterdam',
      'W. Europe Standard Time',
      '/mozilla.org/20050126_1/Europe/Berlin',
      'europe/berlin',
    ]) {
      expect(sameTimeZoneRules(timeZoneInformationForTzid(tzid, 2024)!, berlin)).toBe(true);
    }
    expect(timeZoneInformationForTzid('Asia/Tokyo', 2024)).toMatchObject({
      bias: -540,
      standardDate: { month: 0 },
      standardName: 'Tokyo Standard Time',
    });
    expect(timeZoneInformationForTzid('Australia/Sydney', 2024)).toMatchObject({
      bias: -600,
      daylightDate: { month: 10, day: 1, hour: 2 },
      standardDate: { month: 4, day: 1, hour: 3 },
    });
  });

  it('falls back to the runtime tz database (Intl) for zones outside the table', () => {
    // Chile: first Sunday of September to first Sunday of April, at midnight.
    expect(timeZoneInformationForTzid('America/Santiago', 2024)).toMatchObject({
      bias: 240,
      daylightBias: -60,
      daylightDate: { month: 9, dayOfWeek: 0 },
      standardDate: { month: 4, dayOfWeek: 0, day: 1 },
    });
    expect(timeZoneInformationForTzid('Asia/Kathmandu', 2024)).toMatchObject({ bias: -345 });
    // Lord Howe Island's DST is half an hour.
    expect(timeZoneInformationForTzid('Australia/Lord_Howe', 2024)).toMatchObject({ bias: -630, daylightBias: -30 });
  });

  it('returns undefined for a TZID nobody knows (callers read such times as floating)', () => {
    expect(timeZoneInformationForTzid('Mars/Olympus_Mons', 2024)).toBeUndefined();
    expect(vtimezoneForTzid('Customized Time Zone', 2024)).toBeUndefined();
  });
});

describe('blob → VTIMEZONE', () => {
  it('matches a nameless iOS blob to the first known zone of its rules, or to a preferred one', () => {
    const berlin = nameless(timeZoneInformationForTzid('Europe/Berlin', 2024)!);
    expect(zoneFromTimeZoneInformation(berlin)).toMatchObject({ tzid: 'Europe/Berlin', isIana: true, isUtc: false });
    expect(zoneFromTimeZoneInformation(berlin, 'Europe/Paris').tzid).toBe('Europe/Paris');
    expect(zoneFromTimeZoneInformation(berlin, 'America/New_York').tzid).toBe('Europe/Berlin');
    expect(ianaZoneFor(nameless(timeZoneFromBase64(PACIFIC_BLOB)!))).toBe('America/Los_Angeles');
    expect(ianaZoneFor(nameless(timeZoneInformationForTzid('Asia/Tokyo', 2024)!))).toBe('Asia/Tokyo');
  });

  it('uses the StandardName to choose among zones with the same rules', () => {
    const romance = timeZoneInformationForTzid('Europe/Paris', 2024)!;
    expect(romance.standardName).toBe('Romance Standard Time');
    expect(zoneFromTimeZoneInformation(romance).tzid).toBe('Europe/Paris');
  });

  it('recognises UTC', () => {
    expect(zoneFromTimeZoneInformation(UTC_TIME_ZONE)).toMatchObject({ tzid: 'UTC', isUtc: true });
  });

  it('writes Etc/GMT±N for whole-hour zones without DST that the table lacks', () => {
    const zone = zoneFromTimeZoneInformation({ ...UTC_TIME_ZONE, bias: -14 * 60 + 60 * 1 });
    expect(zone).toMatchObject({ tzid: 'Etc/GMT-13', isIana: true });
  });

  it("builds a VTIMEZONE from unknown rules, and ical.js expands it to the blob's offsets all year", () => {
    // A made-up zone: UTC+03:30, DST (+1 h) from the 2nd Friday of April 00:00 to the last Saturday of September 01:00.
    const custom: TimeZoneInformation = {
      bias: -210,
      standardName: '',
      standardDate: { year: 0, month: 9, dayOfWeek: 6, day: 5, hour: 1, minute: 0, second: 0, milliseconds: 0 },
      standardBias: 0,
      daylightName: '',
      daylightDate: { year: 0, month: 4, dayOfWeek: 5, day: 2, hour: 0, minute: 0, second: 0, milliseconds: 0 },
      daylightBias: -60,
    };
    const zone = zoneFromTimeZoneInformation(custom);
    expect(zone).toMatchObject({ tzid: 'UTC+03:30', isIana: false });
    for (const year of [2024, 2025, 2030]) {
      const { ical, blob } = hourlyOffsets(zone.vtimezone, custom, year);
      expect(ical.length).toBeGreaterThan(8700);
      expect(ical).toEqual(blob);
      expect(sameTimeZoneRules(timeZoneInformationFromVtimezone(zone.vtimezone, year), custom)).toBe(true);
    }
  });

  it('round-trips every zone of the table: blob → VTIMEZONE → blob, and the offsets agree with ical.js hour by hour', () => {
    for (const tzid of [
      'Europe/Berlin',
      'America/New_York',
      'Asia/Tokyo',
      'Australia/Sydney',
      'UTC',
      'Pacific/Auckland',
      'America/St_Johns',
      'Asia/Kolkata',
    ]) {
      const tzi = timeZoneInformationForTzid(tzid, 2024)!;
      const vtimezone = vtimezoneOf(tzid, tzi);
      expect(timeZoneToBase64(timeZoneInformationFromVtimezone(vtimezone, 2024))).toBe(timeZoneToBase64(tzi));
      const { ical, blob } = hourlyOffsets(vtimezone, tzi, 2024);
      expect(ical).toEqual(blob);
    }
  });

  it('agrees with the runtime tz database for the test zones in January and July', () => {
    for (const tzid of ['Europe/Berlin', 'America/New_York', 'Asia/Tokyo', 'Australia/Sydney', 'UTC']) {
      const tzi = timeZoneInformationForTzid(tzid, 2024)!;
      for (const date of ['2024-01-15T12:00:00Z', '2024-07-15T12:00:00Z']) {
        const instant = new Date(date);
        const parts = new Intl.DateTimeFormat('en-US', {
          timeZone: tzid,
          hourCycle: 'h23',
          hour: 'numeric',
          minute: 'numeric',
        }).formatToParts(instant);
        const hour = Number(parts.find((p) => p.type === 'hour')!.value);
        expect(toLocalTime(tzi, instant).hour).toBe(hour);
      }
    }
  });
});
