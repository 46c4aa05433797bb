/**
 * A CalDAV event (iCalendar VEVENT with its overrides) as ActiveSync Calendar ApplicationData (MS-ASCAL). Pure and
 * runtime-neutral: ical.js parses iCalendar; times, zones and recurrences go through timezone.ts and recurrence.ts.
 * The way back is calendar-write.ts; what both share (and the mappings of both directions) is calendar-event.ts.
 *
 * Decisions worth knowing:
 * - Times: StartTime/EndTime are UTC (compact form); `Timezone` is the blob of DTSTART's zone, with the rules in force
 *   in the event's year (for recurring events the later of that and the current year, since devices expand the
 *   series with one rule set). All-day events (DTSTART;VALUE=DATE) and floating times are placed in the user's zone
 *   (`options.timezone`, an IANA name; UTC without one): StartTime is local midnight there, and Timezone its blob.
 * - TZIDs without a VTIMEZONE get one from the built-in table or the runtime's tz database (timezone.ts); a TZID
 *   neither knows is read as floating (the user's zone, else UTC).
 * - Recurrence: RRULEs that ActiveSync cannot express (recurrence.ts) are sent as a single event (the first
 *   occurrence), without exceptions. RDATEs are not sent. EXDATEs and overrides with STATUS:CANCELLED are Deleted
 *   exceptions; other overrides send StartTime/EndTime and the properties that differ from the series.
 */
import ICAL from 'ical.js';
import { el, type WbxmlElement } from '../wbxml/tree.ts';
import { bodyElement, type BodyPreference } from './body.ts';
import { compactDateTime } from './datetime.ts';
import {
  addMissingTimezones,
  bodySourceOf,
  categoriesOf,
  floatingIn,
  instantIn,
  tryParseCalendar,
  sensitivityOf,
  textValue,
  timeValue,
  userZone,
  zoneOfTime,
} from './icalendar.ts';
import { exceptionStartElement, recurrenceElement, recurrenceFromRule } from './recurrence.ts';
import { timeZoneToBase64 } from './timezone.ts';
import {
  ATTENDEE_STATUS,
  BUSY_STATUS,
  CANCELLED,
  endOf,
  findEvents,
  isUser,
  MEETING,
  occurrenceInstant,
  organizerOf,
  personOf,
  rawYear,
  readSeries,
  RECEIVED,
  reminderOf,
  RESPONSE_TYPE,
  versionNumber,
  type Person,
  type Series,
} from './calendar-event.ts';

export interface CalendarOutputOptions {
  /** '12.0' … '16.1'; elements the version lacks are left out. */
  version: string;
  /** Empty = plain text, untruncated (see selectBodyPreference in body.ts). */
  bodyPreferences: readonly BodyPreference[];
  /** The user's IANA zone, for all-day and floating events; UTC when absent. */
  timezone?: string;
  /** The user's addresses: tell meetings the user organizes from those received (MeetingStatus, ResponseType). */
  userEmails?: readonly string[];
  /** "Now", for the zone rules of recurring events (default: the current time). */
  now?: Date;
}

function excludedInstants(series: Series): Date[] {
  return series.master
    .getAllProperties('exdate')
    .flatMap((p) => p.getValues())
    .filter((v): v is ICAL.Time => v instanceof ICAL.Time)
    .map((v) => occurrenceInstant(series, v));
}

function busyStatusOf(event: ICAL.Component): number {
  const declared = BUSY_STATUS.indexOf(
    (textValue(event, 'x-microsoft-cdo-busystatus')?.toUpperCase() ?? '') as (typeof BUSY_STATUS)[number],
  );
  if (declared >= 0) return declared;
  if (textValue(event, 'transp')?.toUpperCase() === 'TRANSPARENT') return 0;
  if (textValue(event, 'status')?.toUpperCase() === 'TENTATIVE') return 1;
  return 2;
}

interface Attendee extends Person {
  status: number;
  type: number;
  rsvp: boolean;
  partstat: string | undefined;
}

function attendeesOf(event: ICAL.Component): Attendee[] {
  const attendees: Attendee[] = [];
  for (const property of event.getAllProperties('attendee')) {
    const person = personOf(property);
    if (!person) continue;
    const partstat = String(property.getFirstParameter('partstat') ?? '').toUpperCase() || undefined;
    const role = String(property.getFirstParameter('role') ?? '').toUpperCase();
    const cutype = String(property.getFirstParameter('cutype') ?? '').toUpperCase();
    const type =
      cutype === 'RESOURCE' || cutype === 'ROOM' ? 3 : role === 'OPT-PARTICIPANT' || role === 'NON-PARTICIPANT' ? 2 : 1;
    const rsvp = String(property.getFirstParameter('rsvp') ?? '').toUpperCase() === 'TRUE';
    attendees.push({ ...person, status: partstat ? (ATTENDEE_STATUS[partstat] ?? 0) : 0, type, rsvp, partstat });
  }
  return attendees;
}

function meetingStatusOf(event: ICAL.Component, userEmails: readonly string[] | undefined): number {
  const organizer = organizerOf(event);
  const someoneElseOrganizes = !!organizer && !!userEmails?.length && !isUser(organizer.email, userEmails);
  if (attendeesOf(event).length === 0 && !someoneElseOrganizes) return 0;
  const cancelled = textValue(event, 'status')?.toUpperCase() === 'CANCELLED';
  return MEETING | (someoneElseOrganizes ? RECEIVED : 0) | (cancelled ? CANCELLED : 0);
}

function attendeesElement(attendees: Attendee[]): WbxmlElement | undefined {
  if (attendees.length === 0) return undefined;
  return el(
    'Calendar',
    'Attendees',
    attendees.map((a) =>
      el('Calendar', 'Attendee', [
        el('Calendar', 'Email', a.email),
        el('Calendar', 'Name', a.name ?? a.email),
        el('Calendar', 'AttendeeStatus', a.status),
        el('Calendar', 'AttendeeType', a.type),
      ]),
    ),
  );
}

function locationElement(event: ICAL.Component, v: number): WbxmlElement | undefined {
  const location = textValue(event, 'location');
  if (v < 160) return location !== undefined ? el('Calendar', 'Location', location) : undefined;
  const geo = event.getFirstPropertyValue('geo');
  const [latitude, longitude] = Array.isArray(geo) ? (geo as unknown[]).map(Number) : [];
  if (location === undefined && latitude === undefined) return undefined;
  return el('AirSyncBase', 'Location', [
    el('AirSyncBase', 'DisplayName', location ?? ''),
    latitude !== undefined && Number.isFinite(latitude) && el('AirSyncBase', 'Latitude', String(latitude)),
    longitude !== undefined && Number.isFinite(longitude) && el('AirSyncBase', 'Longitude', String(longitude)),
  ]);
}

function categoriesElement(categories: string[]): WbxmlElement | undefined {
  return categories.length > 0
    ? el(
        'Calendar',
        'Categories',
        categories.map((c) => el('Calendar', 'Category', c)),
      )
    : undefined;
}

function busyStatusElement(event: ICAL.Component, v: number): WbxmlElement {
  const status = busyStatusOf(event);
  // "Working elsewhere" is 16.0; older clients see busy.
  return el('Calendar', 'BusyStatus', status === 4 && v < 160 ? 2 : status);
}

function bodyOf(event: ICAL.Component, options: CalendarOutputOptions, v: number): WbxmlElement | undefined {
  const source = bodySourceOf(event);
  return source ? bodyElement(source, options.bodyPreferences, 0, { withPreview: v >= 140 }) : undefined;
}

/**
 * The children of <ApplicationData> (Sync Add/Change, ItemOperations Fetch) for the event of an iCalendar object;
 * undefined when the object holds no VEVENT (a VTODO in a calendar collection, for instance) or is not iCalendar.
 */
export function calendarApplicationData(ics: string, options: CalendarOutputOptions): WbxmlElement[] | undefined {
  const parsed = tryParseCalendar(ics);
  if (!parsed) return undefined;
  const { master, overrides } = findEvents(parsed);
  if (!master) return undefined;
  const now = options.now ?? new Date();
  const recurring = master.hasProperty('rrule');
  const startYear = rawYear(master, 'dtstart') ?? now.getUTCFullYear();
  const ruleYear = recurring ? Math.max(startYear, now.getUTCFullYear()) : startYear;
  addMissingTimezones(parsed, ruleYear);
  const series = readSeries(parsed, master, overrides, userZone(options.timezone));
  if (!series) return undefined;
  const v = versionNumber(options.version);

  const rule = master.getFirstPropertyValue('rrule');
  const recurrence = rule instanceof ICAL.Recur ? recurrenceFromRule(rule, series.times) : undefined;
  const uid = textValue(master, 'uid');
  const organizer = organizerOf(master);
  const attendees = attendeesOf(master);
  const meetingStatus = meetingStatusOf(master, options.userEmails);
  const userAttendee = attendees.find((a) => isUser(a.email, options.userEmails));
  const dtstamp = timeValue(master, 'dtstamp');
  const reminder = reminderOf(master, series.start, series.end);
  const isMeeting = (meetingStatus & MEETING) !== 0;
  const organizes = isMeeting && (meetingStatus & RECEIVED) === 0;
  const responseType = !isMeeting
    ? undefined
    : organizes
      ? 1
      : userAttendee
        ? (RESPONSE_TYPE[userAttendee.partstat ?? 'NEEDS-ACTION'] ?? 0)
        : 0;
  const disallowCounter = textValue(master, 'x-microsoft-disallow-counter')?.toUpperCase() === 'TRUE';

  return compact([
    el('Calendar', 'Timezone', timeZoneToBase64(series.zone.rulesIn(ruleYear))),
    dtstamp && el('Calendar', 'DtStamp', compactDateTime(dtstamp.toJSDate())),
    el('Calendar', 'StartTime', compactDateTime(series.start)),
    el('Calendar', 'Subject', textValue(master, 'summary') ?? ''),
    uid !== undefined && uid.length <= 300 && el('Calendar', 'UID', uid),
    organizer?.name !== undefined && el('Calendar', 'OrganizerName', organizer.name),
    organizer && el('Calendar', 'OrganizerEmail', organizer.email),
    attendeesElement(attendees),
    locationElement(master, v),
    el('Calendar', 'EndTime', compactDateTime(series.end)),
    recurrence && recurrenceElement(recurrence, { namespace: 'Calendar', version: options.version }),
    bodyOf(master, options, v),
    el('Calendar', 'Sensitivity', sensitivityOf(master)),
    busyStatusElement(master, v),
    el('Calendar', 'AllDayEvent', series.allDay ? 1 : 0),
    reminder !== undefined && el('Calendar', 'Reminder', reminder),
    recurrence && exceptionsElement(series, options, v),
    el('Calendar', 'MeetingStatus', meetingStatus),
    categoriesElement(categoriesOf(master)),
    v >= 140 && isMeeting && !organizes && el('Calendar', 'ResponseRequested', userAttendee?.rsvp ? 1 : 0),
    v >= 140 && responseType !== undefined && el('Calendar', 'ResponseType', responseType),
    v >= 140 && disallowCounter && el('Calendar', 'DisallowNewTimeProposal', 1),
  ]);
}

function compact(elements: (WbxmlElement | undefined | false | null)[]): WbxmlElement[] {
  return elements.filter((e): e is WbxmlElement => !!e);
}

/** Exceptions: EXDATEs and cancelled overrides as Deleted, other overrides with what differs from the series. */
function exceptionsElement(series: Series, options: CalendarOutputOptions, v: number): WbxmlElement | undefined {
  const entries: { at: Date; element: WbxmlElement }[] = [];
  const deleted = new Set<number>();
  const addDeleted = (at: Date): void => {
    if (deleted.has(at.getTime())) return;
    deleted.add(at.getTime());
    entries.push({
      at,
      element: el('Calendar', 'Exception', [el('Calendar', 'Deleted', 1), exceptionStartElement(at, options.version)]),
    });
  };
  for (const at of excludedInstants(series)) addDeleted(at);
  for (const override of series.overrides) {
    const recurrenceId = timeValue(override, 'recurrence-id');
    if (!recurrenceId) continue;
    const at = occurrenceInstant(series, recurrenceId);
    if (textValue(override, 'status')?.toUpperCase() === 'CANCELLED') addDeleted(at);
    else if (!deleted.has(at.getTime()))
      entries.push({ at, element: overrideException(series, override, at, options, v) });
  }
  if (entries.length === 0) return undefined;
  entries.sort((a, b) => a.at.getTime() - b.at.getTime());
  return el(
    'Calendar',
    'Exceptions',
    entries.map((e) => e.element),
  );
}

function overrideException(
  series: Series,
  override: ICAL.Component,
  originalStart: Date,
  options: CalendarOutputOptions,
  v: number,
): WbxmlElement {
  const { master } = series;
  const dtstart = timeValue(override, 'dtstart');
  const allDay = dtstart?.isDate ?? series.allDay;
  const zone = !dtstart
    ? series.zone
    : dtstart.isDate
      ? floatingIn(series.fallback)
      : zoneOfTime(series.parsed, dtstart, series.fallback);
  const start = dtstart ? instantIn(zone, dtstart) : originalStart;
  const end = dtstart
    ? endOf(series.parsed, override, dtstart, start, zone, series.fallback)
    : new Date(start.getTime() + (series.end.getTime() - series.start.getTime()));
  const differs = (a: unknown, b: unknown): boolean => JSON.stringify(a) !== JSON.stringify(b);
  const subject = textValue(override, 'summary');
  const categories = categoriesOf(override);
  const reminder = reminderOf(override, start, end);
  const attendees = attendeesOf(override);
  const location = locationElement(override, v);
  const dtstamp = timeValue(override, 'dtstamp');
  return el('Calendar', 'Exception', [
    exceptionStartElement(originalStart, options.version),
    differs(subject, textValue(master, 'summary')) && el('Calendar', 'Subject', subject ?? ''),
    el('Calendar', 'StartTime', compactDateTime(start)),
    el('Calendar', 'EndTime', compactDateTime(end)),
    differs(bodySourceOf(override), bodySourceOf(master)) && bodyOf(override, options, v),
    location && differs(location, locationElement(master, v)) && location,
    differs(categories, categoriesOf(master)) && categoriesElement(categories),
    sensitivityOf(override) !== sensitivityOf(master) && el('Calendar', 'Sensitivity', sensitivityOf(override)),
    busyStatusOf(override) !== busyStatusOf(master) && busyStatusElement(override, v),
    allDay !== series.allDay && el('Calendar', 'AllDayEvent', allDay ? 1 : 0),
    reminder !== undefined &&
      reminder !== reminderOf(master, series.start, series.end) &&
      el('Calendar', 'Reminder', reminder),
    dtstamp &&
      differs(dtstamp.toString(), timeValue(master, 'dtstamp')?.toString()) &&
      el('Calendar', 'DtStamp', compactDateTime(dtstamp.toJSDate())),
    differs(attendees, attendeesOf(master)) && attendeesElement(attendees),
  ]);
}
