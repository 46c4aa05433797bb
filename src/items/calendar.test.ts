import ICAL from 'ical.js';
import { describe, expect, it } from 'vitest';
import { loadDavFixture, occurrences } from '../../test/fixtures/dav/fixtures.ts';
import { comparable, libwbxmlDecode, parseLibwbxmlXml } from '../../test/wbxml/libwbxml.ts';
import { encodeWbxml } from '../wbxml/encoder.ts';
import { child, children, childText, el, type WbxmlElement } from '../wbxml/tree.ts';
import { calendarApplicationData, type CalendarOutputOptions } from './calendar-read.ts';
import { calendarFromApplicationData, deleteCalendarOccurrence } from './calendar-write.ts';
import { timeZoneFromBase64, timeZoneInformationForTzid, timeZoneToBase64 } from './timezone.ts';

const NOW = new Date('2024-06-01T00:00:00Z');
const BERLIN_BLOB = timeZoneToBase64(timeZoneInformationForTzid('Europe/Berlin', 2024)!);
const NEW_YORK_BLOB = timeZoneToBase64(timeZoneInformationForTzid('America/New_York', 2024)!);

function toDevice(ics: string, options: Partial<CalendarOutputOptions> = {}): WbxmlElement[] {
  const app = calendarApplicationData(ics, {
    version: '14.1',
    bodyPreferences: [{ type: 1 }],
    timezone: 'Europe/Berlin',
    now: NOW,
    ...options,
  });
  if (!app) throw new Error('no event');
  return app;
}

function appData(items: (WbxmlElement | false | undefined)[]): WbxmlElement {
  return el('AirSync', 'ApplicationData', items);
}

function fromDevice(
  items: WbxmlElement[],
  options: Partial<Parameters<typeof calendarFromApplicationData>[1]> = {},
): string {
  return calendarFromApplicationData(appData(items), {
    version: '14.1',
    timezone: 'Europe/Berlin',
    now: NOW,
    ...options,
  });
}

function value(items: WbxmlElement[], tag: string, ns = 'Calendar'): string | undefined {
  return childText(appData(items), tag, ns as 'Calendar');
}

/**
 * A tree in a comparable form, element order aside (containers of repeated elements keep theirs); Body as Type + Data.
 */
interface Canonical {
  tag: string;
  text?: string;
  children?: Canonical[];
}

function canonical(element: WbxmlElement): Canonical {
  const tag = `${element.ns}:${element.tag}`;
  if (element.tag === 'Body' && element.ns === 'AirSyncBase') {
    return {
      tag,
      children: [
        canonical(child(element, 'Type')!),
        canonical(child(element, 'Data') ?? el('AirSyncBase', 'Data', '')),
      ],
    };
  }
  if (element.children.length === 0) return { tag, text: element.text ?? '' };
  const keepsOrder = ['Attendees', 'Categories', 'Exceptions', 'Children'].includes(element.tag);
  const mapped = element.children.map(canonical);
  return { tag, children: keepsOrder ? mapped : mapped.sort((a, b) => a.tag.localeCompare(b.tag)) };
}

/** ApplicationData children in comparable form, in any order. */
function canonicalList(items: WbxmlElement[]): Canonical[] {
  return items.map(canonical).sort((a, b) => a.tag.localeCompare(b.tag));
}

function icsEvent(lines: string[], extra: string[] = []): string {
  return [
    'BEGIN:VCALENDAR',
    'VERSION:2.0',
    'PRODID:-//test//EN',
    ...extra,
    'BEGIN:VEVENT',
    'UID:test-1',
    'DTSTAMP:20240101T000000Z',
    ...lines,
    'END:VEVENT',
    'END:VCALENDAR',
    '',
  ].join('\r\n');
}

function event(ics: string): ICAL.Component {
  const events = new ICAL.Component(ICAL.parse(ics)).getAllSubcomponents('vevent');
  return events.find((e) => !e.hasProperty('recurrence-id'))!;
}

describe('Europe/Berlin across DST', () => {
  it.each([
    ['January', '20240115T090000', '20240115T080000Z'],
    ['July', '20240715T090000', '20240715T070000Z'],
  ])('an event at 09:00 local in %s starts at %s UTC, with the W. Europe blob', (_month, local, utc) => {
    for (const zone of [
      [],
      loadDavFixture('outlook-meeting.ics')
        .match(/BEGIN:VTIMEZONE[\s\S]*END:VTIMEZONE/)![0]
        .split('\r\n'),
    ]) {
      const tzid = zone.length ? '"W. Europe Standard Time"' : 'Europe/Berlin';
      // Without a VTIMEZONE the table supplies Europe/Berlin; Outlook's VTIMEZONE gives the same rules.
      const app = toDevice(
        icsEvent(
          [`DTSTART;TZID=${tzid}:${local}`, `DTEND;TZID=${tzid}:${local.replace('T09', 'T10')}`, 'SUMMARY:Standup'],
          zone,
        ),
      );
      expect(value(app, 'StartTime')).toBe(utc);
      expect(value(app, 'Timezone')).toBe(BERLIN_BLOB);
      expect(value(app, 'EndTime')).toBe(utc.replace(/T0(\d)/, (_m, h: string) => `T0${Number(h) + 1}`));
    }
  });

  it.each([
    ['20240115T080000Z', '20240115T090000'],
    ['20240715T070000Z', '20240715T090000'],
  ])('a device event at %s with the Berlin blob is written at 09:00 Europe/Berlin', (utc, local) => {
    const ics = fromDevice([
      el('Calendar', 'Timezone', BERLIN_BLOB),
      el('Calendar', 'StartTime', utc),
      el('Calendar', 'EndTime', utc),
      el('Calendar', 'Subject', 'Standup'),
    ]);
    expect(ics).toContain(`DTSTART;TZID=Europe/Berlin:${local}`);
    expect(ics).toContain('BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin');
    expect(occurrences(ics, new Date('2025-01-01'))[0]!.start).toBe(
      new Date(`${utc.slice(0, 4)}-${utc.slice(4, 6)}-${utc.slice(6, 8)}T${utc.slice(9, 11)}:00:00Z`).toISOString(),
    );
  });

  it('a weekly 09:00 Berlin series keeps 09:00 local on both sides of the change to summer time', () => {
    const ics = icsEvent([
      'DTSTART;TZID=Europe/Berlin:20240318T090000',
      'DTEND;TZID=Europe/Berlin:20240318T093000',
      'RRULE:FREQ=WEEKLY;COUNT=3',
      'SUMMARY:Weekly',
    ]);
    const back = fromDevice(toDevice(ics));
    expect(occurrences(back, new Date('2025-01-01')).map((o) => o.start)).toEqual([
      '2024-03-18T08:00:00.000Z',
      '2024-03-25T08:00:00.000Z',
      '2024-04-01T07:00:00.000Z',
    ]);
  });
});

describe('server → device', () => {
  it('converts the Google series: attendees, organizer, reminder, weekly recurrence with Until and WKST, exceptions', () => {
    const app = toDevice(loadDavFixture('google-recurring.ics'), { userEmails: ['bob@example.org'] });
    expect(value(app, 'Timezone')).toBe(NEW_YORK_BLOB);
    expect(value(app, 'StartTime')).toBe('20240304T143000Z');
    expect(value(app, 'EndTime')).toBe('20240304T150000Z');
    expect(value(app, 'Subject')).toBe('Release sync');
    expect(value(app, 'UID')).toBe('7kukuqrfedlm2f9t0vb3q1lmnc@google.com');
    expect(value(app, 'OrganizerEmail')).toBe('alice@example.com');
    expect(value(app, 'OrganizerName')).toBe('Alice Example');
    expect(value(app, 'Location')).toBe('Room 4.12, Building A');
    expect(value(app, 'Reminder')).toBe('10');
    expect(value(app, 'BusyStatus')).toBe('2');
    expect(value(app, 'MeetingStatus')).toBe('3'); // Bob was invited by Alice
    expect(value(app, 'ResponseType')).toBe('5');
    expect(value(app, 'ResponseRequested')).toBe('1');
    const attendees = children(child(appData(app), 'Attendees', 'Calendar'), 'Attendee', 'Calendar').map((a) =>
      a.children.map((c) => c.text).join('|'),
    );
    expect(attendees).toEqual([
      'alice@example.com|Alice Example|3|1',
      'bob@example.org|bob@example.org|5|1',
      'carol@example.net|Carol Chen|2|2',
      'c_1888room412@resource.calendar.google.com|Room 4.12|3|3',
    ]);
    const recurrence = child(appData(app), 'Recurrence', 'Calendar')!;
    expect(recurrence.children.map((c) => `${c.tag}=${c.text}`)).toEqual([
      'Type=1',
      'Interval=1',
      'DayOfWeek=10',
      'Until=20240429T133000Z',
      'FirstDayOfWeek=0',
    ]);
    const exceptions = children(child(appData(app), 'Exceptions', 'Calendar'), 'Exception', 'Calendar').map((e) =>
      e.children.map((c) => `${c.tag}=${c.text ?? ''}`),
    );
    expect(exceptions).toEqual([
      ['Deleted=1', 'ExceptionStartTime=20240313T133000Z'],
      [
        'ExceptionStartTime=20240320T133000Z',
        'Subject=Release sync (moved to the afternoon)',
        'StartTime=20240320T180000Z',
        'EndTime=20240320T183000Z',
      ],
      ['Deleted=1', 'ExceptionStartTime=20240401T133000Z'],
      [
        'ExceptionStartTime=20240408T133000Z',
        'StartTime=20240408T133000Z',
        'EndTime=20240408T140000Z',
        'Location=Online (eclipse day)',
      ],
    ]);
  });

  it('counts the user as organizer without userEmails, and as organizer when the ORGANIZER is theirs', () => {
    const google = loadDavFixture('google-recurring.ics');
    expect(value(toDevice(google), 'MeetingStatus')).toBe('1');
    expect(value(toDevice(google, { userEmails: ['ALICE@example.com'] }), 'MeetingStatus')).toBe('1');
    expect(value(toDevice(google, { userEmails: ['ALICE@example.com'] }), 'ResponseType')).toBe('1');
    const cancelled = google.replace('STATUS:CONFIRMED', 'STATUS:CANCELLED');
    expect(value(toDevice(cancelled, { userEmails: ['bob@example.org'] }), 'MeetingStatus')).toBe('7');
    expect(value(toDevice(icsEvent(['DTSTART:20240101T100000Z', 'SUMMARY:Alone'])), 'MeetingStatus')).toBe('0');
  });

  it("converts Outlook's meeting: Windows TZID, OOF, private, HTML body, no counter proposals", () => {
    const ics = loadDavFixture('outlook-meeting.ics');
    const app = toDevice(ics, { bodyPreferences: [{ type: 2, truncationSize: 100_000 }] });
    expect(value(app, 'Timezone')).toBe(BERLIN_BLOB);
    expect(value(app, 'StartTime')).toBe('20240711T070000Z');
    expect(value(app, 'BusyStatus')).toBe('3');
    expect(value(app, 'Sensitivity')).toBe('2');
    expect(value(app, 'Reminder')).toBe('15');
    expect(value(app, 'DisallowNewTimeProposal')).toBe('1');
    const body = child(appData(app), 'Body', 'AirSyncBase')!;
    expect(childText(body, 'Type', 'AirSyncBase')).toBe('2');
    expect(childText(body, 'Data', 'AirSyncBase')).toContain('<B>Zahlen</B>');
    const plain = child(
      appData(toDevice(ics, { bodyPreferences: [{ type: 1, truncationSize: 20 }] })),
      'Body',
      'AirSyncBase',
    )!;
    expect(childText(plain, 'Data', 'AirSyncBase')).toBe('Quartalsplanung Q3\n\n');
    expect(childText(plain, 'Truncated', 'AirSyncBase')).toBe('1');
  });

  it("places an all-day event at local midnight of the user's zone, with that zone's blob", () => {
    const app = toDevice(loadDavFixture('apple-allday.ics'));
    expect(value(app, 'AllDayEvent')).toBe('1');
    expect(value(app, 'StartTime')).toBe('20240811T220000Z');
    expect(value(app, 'EndTime')).toBe('20240815T220000Z');
    expect(value(app, 'Timezone')).toBe(BERLIN_BLOB);
    expect(value(app, 'BusyStatus')).toBe('0');
    expect(value(app, 'Reminder')).toBe('900');
    const utc = toDevice(loadDavFixture('apple-allday.ics'), { timezone: undefined });
    expect(value(utc, 'StartTime')).toBe('20240812T000000Z');
    expect(timeZoneFromBase64(value(utc, 'Timezone')!)).toMatchObject({ bias: 0, standardDate: { month: 0 } });
  });

  it('in 16.0: Location as airsyncbase:Location with GEO, exceptions by InstanceId, UID kept, working elsewhere', () => {
    const ics = icsEvent([
      'DTSTART:20240610T080000Z',
      'DTEND:20240610T090000Z',
      'SUMMARY:Site visit',
      'LOCATION:Plant 2',
      'GEO:52.52;13.405',
      'X-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE',
      'RRULE:FREQ=DAILY;COUNT=3',
      'EXDATE:20240611T080000Z',
    ]);
    const app = toDevice(ics, { version: '16.0' });
    const location = child(appData(app), 'Location', 'AirSyncBase')!;
    expect(location.children.map((c) => `${c.tag}=${c.text}`)).toEqual([
      'DisplayName=Plant 2',
      'Latitude=52.52',
      'Longitude=13.405',
    ]);
    expect(value(app, 'UID')).toBe('test-1');
    expect(value(app, 'BusyStatus')).toBe('4');
    expect(value(toDevice(ics, { version: '14.1' }), 'BusyStatus')).toBe('2');
    const [exception] = children(child(appData(app), 'Exceptions', 'Calendar'), 'Exception', 'Calendar');
    expect(exception!.children.map((c) => `${c.ns}:${c.tag}=${c.text}`)).toEqual([
      'Calendar:Deleted=1',
      'AirSyncBase:InstanceId=20240611T080000Z',
    ]);
  });

  it("reads a TZID nobody knows as floating: in the user's zone, else UTC", () => {
    const ics = icsEvent(['DTSTART;TZID=Mars/Olympus_Mons:20240715T090000', 'SUMMARY:?']);
    expect(value(toDevice(ics), 'StartTime')).toBe('20240715T070000Z');
    expect(value(toDevice(ics, { timezone: undefined }), 'StartTime')).toBe('20240715T090000Z');
  });

  it('sends a rule ActiveSync cannot express as its first occurrence, without recurrence or exceptions', () => {
    const app = toDevice(
      icsEvent([
        'DTSTART:20240101T100000Z',
        'RRULE:FREQ=MONTHLY;BYDAY=1MO,3MO',
        'EXDATE:20240115T100000Z',
        'SUMMARY:Twice a month',
      ]),
    );
    expect(value(app, 'StartTime')).toBe('20240101T100000Z');
    expect(child(appData(app), 'Recurrence', 'Calendar')).toBeUndefined();
    expect(child(appData(app), 'Exceptions', 'Calendar')).toBeUndefined();
  });

  it('returns undefined for an object without VEVENT', () => {
    expect(
      calendarApplicationData(loadDavFixture('thunderbird-todo.ics'), { version: '14.1', bodyPreferences: [] }),
    ).toBeUndefined();
  });

  it('uses the rules of the current year for a recurring series that started before a rule change', () => {
    // A New York series from 2005 (old US rules in the VTIMEZONE) is sent with the rules in force in 2024.
    const zone = [
      'BEGIN:VTIMEZONE',
      'TZID:America/New_York',
      'BEGIN:DAYLIGHT',
      'TZOFFSETFROM:-0500',
      'TZOFFSETTO:-0400',
      'DTSTART:19870405T020000',
      'RRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU;UNTIL=20060402T070000Z',
      'END:DAYLIGHT',
      'BEGIN:DAYLIGHT',
      'TZOFFSETFROM:-0500',
      'TZOFFSETTO:-0400',
      'DTSTART:20070311T020000',
      'RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU',
      'END:DAYLIGHT',
      'BEGIN:STANDARD',
      'TZOFFSETFROM:-0400',
      'TZOFFSETTO:-0500',
      'DTSTART:19671029T020000',
      'RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU;UNTIL=20061029T060000Z',
      'END:STANDARD',
      'BEGIN:STANDARD',
      'TZOFFSETFROM:-0400',
      'TZOFFSETTO:-0500',
      'DTSTART:20071104T020000',
      'RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU',
      'END:STANDARD',
      'END:VTIMEZONE',
    ];
    const app = toDevice(
      icsEvent(['DTSTART;TZID=America/New_York:20050110T090000', 'RRULE:FREQ=YEARLY', 'SUMMARY:Anniversary'], zone),
    );
    expect(value(app, 'Timezone')).toBe(NEW_YORK_BLOB);
    expect(value(app, 'StartTime')).toBe('20050110T140000Z');
  });
});

describe('server → device → server', () => {
  it.each(['google-recurring.ics', 'outlook-meeting.ics', 'apple-allday.ics'] as const)(
    '%s keeps its occurrences (ical.js expansion) and its ApplicationData',
    (name) => {
      const original = loadDavFixture(name);
      const options = { userEmails: ['alice@example.com'] };
      const app = toDevice(original, options);
      const written = fromDevice(app, options);
      const until = new Date('2025-01-01');
      expect(occurrences(written, until)).toEqual(occurrences(original, until));
      expect(occurrences(written, until).length).toBeGreaterThan(0);
      expect(canonicalList(toDevice(written, options))).toEqual(canonicalList(app));
    },
  );

  it("keeps the Google series' occurrences in every version", () => {
    const original = loadDavFixture('google-recurring.ics');
    const until = new Date('2024-05-01');
    const expected = occurrences(original, until);
    expect(expected).toHaveLength(15); // 17 Mondays and Wednesdays from 4 March to 29 April, 2 excluded
    for (const version of ['12.1', '14.0', '14.1', '16.0', '16.1']) {
      const written = fromDevice(toDevice(original, { version }), { version });
      expect(occurrences(written, until), version).toEqual(expected);
    }
  });
});

describe('device → server → device', () => {
  const attendee = (email: string, name: string, status: number, type: number): WbxmlElement =>
    el('Calendar', 'Attendee', [
      el('Calendar', 'Email', email),
      el('Calendar', 'Name', name),
      el('Calendar', 'AttendeeStatus', status),
      el('Calendar', 'AttendeeType', type),
    ]);

  /** What an Android (14.1) client sends for a new weekly meeting with one cancelled and one moved occurrence. */
  const meeting = (): WbxmlElement[] => [
    el('Calendar', 'Timezone', BERLIN_BLOB),
    el('Calendar', 'DtStamp', '20240601T120000Z'),
    el('Calendar', 'StartTime', '20240603T080000Z'),
    el('Calendar', 'Subject', 'Design review'),
    el('Calendar', 'UID', 'android-7f3a9c'),
    el('Calendar', 'OrganizerName', 'Alice Example'),
    el('Calendar', 'OrganizerEmail', 'alice@example.com'),
    el('Calendar', 'Attendees', [
      attendee('bob@example.org', 'Bob Builder', 3, 1),
      attendee('carol@example.net', 'Carol Chen', 0, 2),
      attendee('room1@example.com', 'Room 1', 5, 3),
    ]),
    el('Calendar', 'Location', 'Room 1'),
    el('Calendar', 'EndTime', '20240603T090000Z'),
    el('Calendar', 'Recurrence', [
      el('Calendar', 'Type', 1),
      el('Calendar', 'Interval', 1),
      el('Calendar', 'DayOfWeek', 2),
      el('Calendar', 'Until', '20240701T080000Z'),
      el('Calendar', 'FirstDayOfWeek', 0),
    ]),
    el('AirSyncBase', 'Body', [el('AirSyncBase', 'Type', 1), el('AirSyncBase', 'Data', 'Agenda:\n1. Mockups\n2. API')]),
    el('Calendar', 'Sensitivity', 1),
    el('Calendar', 'BusyStatus', 1),
    el('Calendar', 'AllDayEvent', 0),
    el('Calendar', 'Reminder', 30),
    el('Calendar', 'Exceptions', [
      el('Calendar', 'Exception', [
        el('Calendar', 'Deleted', 1),
        el('Calendar', 'ExceptionStartTime', '20240610T080000Z'),
      ]),
      el('Calendar', 'Exception', [
        el('Calendar', 'ExceptionStartTime', '20240617T080000Z'),
        el('Calendar', 'Subject', 'Design review (short)'),
        el('Calendar', 'StartTime', '20240617T120000Z'),
        el('Calendar', 'EndTime', '20240617T123000Z'),
        el('Calendar', 'Location', 'Online'),
      ]),
    ]),
    el('Calendar', 'MeetingStatus', 1),
    el('Calendar', 'Categories', [el('Calendar', 'Category', 'Project X'), el('Calendar', 'Category', 'Reviews')]),
    el('Calendar', 'ResponseType', 1),
  ];

  it('gives the same ApplicationData back (14.1)', () => {
    const ics = fromDevice(meeting(), { userEmails: ['alice@example.com'] });
    expect(ics).toContain('DTSTART;TZID=Europe/Berlin:20240603T100000');
    expect(ics).toContain('RRULE:FREQ=WEEKLY;BYDAY=MO;UNTIL=20240701T080000Z;WKST=SU');
    expect(ics).toContain('EXDATE;TZID=Europe/Berlin:20240610T100000');
    expect(ics).toContain('RECURRENCE-ID;TZID=Europe/Berlin:20240617T100000');
    expect(ics).toContain('CLASS:X-PERSONAL');
    expect(ics).toContain('X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE');
    const back = toDevice(ics, { userEmails: ['alice@example.com'] });
    expect(canonicalList(back)).toEqual(canonicalList(meeting()));
  });

  it('gives the same ApplicationData back in 16.0 (ClientUid becomes the UID, Location and InstanceId of 16.0)', () => {
    const sixteen = meeting()
      .filter((e) => e.tag !== 'UID')
      .map((e) =>
        e.tag === 'Location' ? el('AirSyncBase', 'Location', [el('AirSyncBase', 'DisplayName', 'Room 1')]) : e,
      )
      .map((e) =>
        e.tag === 'Exceptions'
          ? el('Calendar', 'Exceptions', [
              el('Calendar', 'Exception', [
                el('Calendar', 'Deleted', 1),
                el('AirSyncBase', 'InstanceId', '20240610T080000Z'),
              ]),
              el('Calendar', 'Exception', [
                el('AirSyncBase', 'InstanceId', '20240617T080000Z'),
                el('Calendar', 'StartTime', '20240617T120000Z'),
                el('Calendar', 'EndTime', '20240617T123000Z'),
              ]),
            ])
          : e,
      );
    const ics = fromDevice([...sixteen, el('Calendar', 'ClientUid', 'client-uid-42')], {
      version: '16.0',
      userEmails: ['alice@example.com'],
    });
    expect(ics).toContain('UID:client-uid-42');
    const back = toDevice(ics, { version: '16.0', userEmails: ['alice@example.com'] });
    expect(canonicalList(back)).toEqual(canonicalList([...sixteen, el('Calendar', 'UID', 'client-uid-42')]));
  });

  it('gives the same ApplicationData back for an all-day event from a New York device', () => {
    const allDay = [
      el('Calendar', 'Timezone', NEW_YORK_BLOB),
      el('Calendar', 'DtStamp', '20240601T120000Z'),
      el('Calendar', 'StartTime', '20240704T040000Z'),
      el('Calendar', 'Subject', 'Independence Day'),
      el('Calendar', 'UID', 'ios-allday-1'),
      el('Calendar', 'EndTime', '20240705T040000Z'),
      el('Calendar', 'Sensitivity', 0),
      el('Calendar', 'BusyStatus', 0),
      el('Calendar', 'AllDayEvent', 1),
      el('Calendar', 'MeetingStatus', 0),
      el('Calendar', 'Recurrence', [
        el('Calendar', 'Type', 5),
        el('Calendar', 'Interval', 1),
        el('Calendar', 'MonthOfYear', 7),
        el('Calendar', 'DayOfMonth', 4),
      ]),
    ];
    const ics = fromDevice(allDay, { timezone: 'America/New_York' });
    expect(ics).toContain('DTSTART;VALUE=DATE:20240704');
    expect(ics).toContain('DTEND;VALUE=DATE:20240705');
    expect(canonicalList(toDevice(ics, { timezone: 'America/New_York' }))).toEqual(canonicalList(allDay));
  });

  it('takes the UTC date of an all-day event a client sends at UTC midnight with a non-UTC blob', () => {
    const ics = fromDevice([
      el('Calendar', 'Timezone', NEW_YORK_BLOB),
      el('Calendar', 'AllDayEvent', 1),
      el('Calendar', 'StartTime', '20240704T000000Z'),
      el('Calendar', 'EndTime', '20240705T000000Z'),
    ]);
    expect(ics).toContain('DTSTART;VALUE=DATE:20240704');
    expect(ics).toContain('DTEND;VALUE=DATE:20240705');
  });

  it('writes UTC times for a UTC blob, and an IANA zone for a nameless iOS blob', () => {
    const utc = fromDevice([
      el('Calendar', 'Timezone', `${'A'.repeat(230)}==`),
      el('Calendar', 'StartTime', '20240603T080000Z'),
      el('Calendar', 'EndTime', '20240603T090000Z'),
    ]);
    expect(utc).toContain('DTSTART:20240603T080000Z');
    expect(utc).not.toContain('VTIMEZONE');
    const tzi = { ...timeZoneFromBase64(NEW_YORK_BLOB)!, standardName: '', daylightName: '' };
    const ios = fromDevice(
      [
        el('Calendar', 'Timezone', timeZoneToBase64(tzi)),
        el('Calendar', 'StartTime', '20240603T130000Z'),
        el('Calendar', 'EndTime', '20240603T140000Z'),
      ],
      { timezone: undefined },
    );
    expect(ios).toContain('DTSTART;TZID=America/New_York:20240603T090000');
  });

  it('generates a UID for an Add without UID or ClientUid', () => {
    const ics = fromDevice([el('Calendar', 'StartTime', '20240603T080000Z'), el('Calendar', 'Subject', 'No id')]);
    expect(event(ics).getFirstPropertyValue('uid')).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe('changes (merges into the server copy)', () => {
  const outlook = loadDavFixture('outlook-meeting.ics');

  it("keeps what ActiveSync does not carry, and the event's own TZID and VTIMEZONE when the blob has its rules", () => {
    const app = toDevice(outlook);
    const changed = app.map((e) =>
      e.tag === 'Subject' ? el('Calendar', 'Subject', 'Quartalsplanung Q3 (verschoben)') : e,
    );
    const ics = fromDevice(changed, { existing: outlook });
    expect(ics).toContain('SUMMARY;LANGUAGE=de:Quartalsplanung Q3 (verschoben)');
    expect(ics).toContain('DTSTART;TZID=W. Europe Standard Time:20240711T090000');
    expect(ics).toContain('DTSTART:16011028T030000'); // Outlook's VTIMEZONE, untouched
    for (const kept of [
      'X-MICROSOFT-CDO-IMPORTANCE:1',
      'X-MS-OLK-CONFTYPE:0',
      'PRIORITY:5',
      'X-ALT-DESC;FMTTYPE=text/html',
      'TRIGGER:-PT15M',
      'RSVP=TRUE',
    ])
      expect(ics).toContain(kept);
    expect(occurrences(ics, new Date('2025-01-01'))[0]!.start).toBe('2024-07-11T07:00:00.000Z');
  });

  it('keeps properties whose element is absent, unless the Supported list names it', () => {
    const minimal = [el('Calendar', 'Subject', 'Renamed')];
    const kept = fromDevice(minimal, { existing: outlook });
    expect(event(kept).getFirstPropertyValue('location')).toBe('Besprechungsraum Rhein');
    expect(event(kept).getAllSubcomponents('valarm')).toHaveLength(1);
    const deleted = fromDevice(minimal, {
      existing: outlook,
      supported: ['Location', 'Reminder', 'Body', 'Categories'],
    });
    expect(event(deleted).getFirstPropertyValue('location')).toBeNull();
    expect(event(deleted).getAllSubcomponents('valarm')).toHaveLength(0);
    expect(event(deleted).getFirstPropertyValue('description')).toBeNull();
    expect(event(deleted).hasProperty('x-alt-desc')).toBe(false);
    expect(event(deleted).getFirstPropertyValue('class')).toBe('PRIVATE'); // Sensitivity was not in the list
  });

  it('replaces the alarm only when the reminder changes', () => {
    const same = fromDevice([el('Calendar', 'Reminder', 15)], { existing: outlook });
    expect(same).toContain('DESCRIPTION:Reminder\r\n');
    const changed = fromDevice([el('Calendar', 'Reminder', 5)], { existing: outlook });
    expect(changed).toContain('TRIGGER:-PT5M');
    expect(event(changed).getAllSubcomponents('valarm')).toHaveLength(1);
  });

  it('moves the event to the zone of a new blob', () => {
    const ics = fromDevice(
      [
        el('Calendar', 'Timezone', NEW_YORK_BLOB),
        el('Calendar', 'StartTime', '20240711T130000Z'),
        el('Calendar', 'EndTime', '20240711T143000Z'),
      ],
      { existing: outlook },
    );
    expect(ics).toContain('DTSTART;TZID=America/New_York:20240711T090000');
    expect(occurrences(ics, new Date('2025-01-01'))[0]).toMatchObject({
      start: '2024-07-11T13:00:00.000Z',
      end: '2024-07-11T14:30:00.000Z',
    });
  });

  it("replaces the exceptions with the device's list (14.1), keeping an override's own attendees", () => {
    const google = loadDavFixture('google-recurring.ics');
    const app = toDevice(google);
    const exceptions = el('Calendar', 'Exceptions', [
      el('Calendar', 'Exception', [
        el('Calendar', 'Deleted', 1),
        el('Calendar', 'ExceptionStartTime', '20240306T143000Z'),
      ]),
      el('Calendar', 'Exception', [
        el('Calendar', 'ExceptionStartTime', '20240320T133000Z'),
        el('Calendar', 'StartTime', '20240320T190000Z'),
        el('Calendar', 'EndTime', '20240320T193000Z'),
      ]),
    ]);
    const ics = fromDevice(
      app.map((e) => (e.tag === 'Exceptions' ? exceptions : e)),
      { existing: google },
    );
    const list = occurrences(ics, new Date('2024-04-01'));
    expect(list.map((o) => o.start)).not.toContain('2024-03-06T14:30:00.000Z');
    expect(list.map((o) => o.start)).toContain('2024-03-13T13:30:00.000Z'); // its EXDATE is gone with the old list
    // The moved occurrence keeps the series' subject (an exception without Subject inherits it).
    expect(list.find((o) => o.start === '2024-03-20T19:00:00.000Z')).toMatchObject({ summary: 'Release sync' });
    expect(ics.match(/RECURRENCE-ID/g)).toHaveLength(1);
    expect(ics).toContain('X-NUM-GUESTS=0');
  });

  it('changes and deletes single occurrences in 16.0 (InstanceId)', () => {
    const google = loadDavFixture('google-recurring.ics');
    const changed = calendarFromApplicationData(
      appData([
        el('Calendar', 'Subject', 'Release sync (Q&A)'),
        el('Calendar', 'StartTime', '20240415T150000Z'),
        el('Calendar', 'EndTime', '20240415T160000Z'),
      ]),
      {
        version: '16.0',
        existing: google,
        instanceId: '20240415T133000Z',
        now: NOW,
      },
    );
    const list = occurrences(changed, new Date('2024-05-01'));
    expect(list.find((o) => o.start === '2024-04-15T15:00:00.000Z')).toMatchObject({
      summary: 'Release sync (Q&A)',
      end: '2024-04-15T16:00:00.000Z',
    });
    expect(list.map((o) => o.start)).not.toContain('2024-04-15T13:30:00.000Z');
    expect(list).toHaveLength(occurrences(google, new Date('2024-05-01')).length);

    const deleted = deleteCalendarOccurrence(changed, '20240415T133000Z');
    expect(occurrences(deleted, new Date('2024-05-01'))).toHaveLength(list.length - 1);
    expect(deleted).toContain('EXDATE;TZID=America/New_York:20240415T093000');
  });

  it('keeps a rule ActiveSync cannot express (the device saw one event) even when Recurrence is supported', () => {
    const twiceMonthly = icsEvent([
      'DTSTART:20240101T100000Z',
      'RRULE:FREQ=MONTHLY;BYDAY=1MO,3MO',
      'EXDATE:20240115T100000Z',
      'SUMMARY:Twice a month',
    ]);
    const ics = fromDevice(
      toDevice(twiceMonthly).map((e) => (e.tag === 'Subject' ? el('Calendar', 'Subject', 'Twice a month!') : e)),
      {
        existing: twiceMonthly,
        supported: ['Recurrence', 'Exceptions', 'Subject', 'StartTime', 'EndTime'],
      },
    );
    expect(ics).toContain('RRULE:FREQ=MONTHLY;BYDAY=1MO,3MO');
    expect(ics).toContain('EXDATE:20240115T100000Z');
    expect(ics).toContain('SUMMARY:Twice a month!');
  });

  it('drops the exceptions of a 16.0 series whose recurrence changes', () => {
    const google = loadDavFixture('google-recurring.ics');
    const ics = calendarFromApplicationData(
      appData([
        el('Calendar', 'Recurrence', [
          el('Calendar', 'Type', 1),
          el('Calendar', 'Interval', 1),
          el('Calendar', 'DayOfWeek', 2),
        ]),
      ]),
      { version: '16.0', existing: google, now: NOW },
    );
    expect(ics).not.toContain('RECURRENCE-ID');
    expect(ics).not.toContain('EXDATE');
    const kept = calendarFromApplicationData(appData([el('Calendar', 'Subject', 'Renamed')]), {
      version: '16.0',
      existing: google,
      now: NOW,
    });
    expect(kept.match(/RECURRENCE-ID/g)).toHaveLength(2);
  });
});

describe('WBXML', () => {
  it('a calendar ApplicationData inside a Sync Add decodes with libwbxml to the same tree', () => {
    const app = toDevice(loadDavFixture('google-recurring.ics'), {
      userEmails: ['bob@example.org'],
      bodyPreferences: [{ type: 1, truncationSize: 512 }],
    });
    const sync = el('AirSync', 'Sync', [
      el('AirSync', 'Collections', [
        el('AirSync', 'Collection', [
          el('AirSync', 'SyncKey', '{0c1d2e3f-4a5b-6c7d-8e9f-a0b1c2d3e4f5}3'),
          el('AirSync', 'CollectionId', '8'),
          el('AirSync', 'Status', '1'),
          el('AirSync', 'Commands', [
            el('AirSync', 'Add', [el('AirSync', 'ServerId', '8:k2j3h4g5f6d7s'), el('AirSync', 'ApplicationData', app)]),
          ]),
        ]),
      ]),
    ]);
    expect(parseLibwbxmlXml(libwbxmlDecode(encodeWbxml(sync)))).toEqual(comparable(sync));
  });
});
