/**
 * A CalDAV event (iCalendar VEVENT with its overrides) as ActiveSync Calendar ApplicationData (MS-ASCAL; BRIEF
 * §4.3), and the device's Add/Change back as iCalendar text. Pure and runtime-neutral: ical.js parses and writes
 * iCalendar; times, zones and recurrences go through timezone.ts and recurrence.ts.
 *
 * Decisions worth knowing:
 * - Times: StartTime/EndTime are UTC (compact form); `Timezone` is the blob of DTSTART's zone, with the rules in force
 *   in the event's year (for recurring events the later of that and the current year, since devices expand the
 *   series with one rule set). All-day events (DTSTART;VALUE=DATE) and floating times are placed in the user's zone
 *   (`options.timezone`, an IANA name; UTC without one): StartTime is local midnight there, and Timezone its blob.
 * - TZIDs without a VTIMEZONE get one from the built-in table or the runtime's tz database (timezone.ts); a TZID
 *   neither knows is read as floating (the user's zone, else UTC).
 * - From the device: the blob becomes the event's TZID (kept when the event's current zone has the same rules,
 *   else the best matching IANA zone, else a VTIMEZONE built from the blob; a UTC blob writes `Z` times).
 *   All-day events become DATE values from the local date of StartTime in the blob's zone (clients that send UTC
 *   midnight with a non-UTC blob get the UTC date).
 * - UID: sent in every version (16.0 servers generate it; ours is the iCalendar UID). On Add, 16.0's ClientUid (else
 *   UID) becomes the iCalendar UID, so that a resent Add finds the same object. ClientUid is request-only in MS-ASCAL
 *   and never sent.
 * - Location: a string up to 14.1; in 16.0 an airsyncbase:Location with DisplayName (and GEO as Latitude/Longitude).
 * - BusyStatus ⇄ X-MICROSOFT-CDO-BUSYSTATUS, else TRANSP (TRANSPARENT = free) and STATUS:TENTATIVE.
 *   Sensitivity ⇄ CLASS (personal = X-PERSONAL). Reminder ⇄ the first DISPLAY/AUDIO/EMAIL VALARM.
 * - MeetingStatus: 0 without attendees; 1 when the user organizes (no ORGANIZER, or one of `userEmails`, or no
 *   `userEmails` known), 3 when someone else does; +4 when STATUS:CANCELLED.
 * - Recurrence: RRULEs that ActiveSync cannot express (recurrence.ts) are sent as a single event (the first
 *   occurrence), without exceptions. RDATEs are not sent. EXDATEs and overrides with STATUS:CANCELLED are Deleted
 *   exceptions; other overrides send StartTime/EndTime and the properties that differ from the series.
 * - Changes (Supported/ghosting): an element present in a Change replaces the property; an absent one deletes it when
 *   the element is in `supported` (the collection's Supported list), else the server's value is kept (also when no
 *   Supported list was sent, as Z-Push does). Properties ActiveSync has no element for (X-props, RDATE, attendee
 *   parameters, VALARMs beyond the first…) are always kept.
 * - Device Exceptions (≤ 14.1) replace the overrides and EXDATEs. Properties an exception leaves out are the series'
 *   (MS-ASCAL), except Attendees, which keep the override's own (their replies are per occurrence). In 16.0 a
 *   single occurrence is changed with `instanceId` (a Change carrying airsyncbase:InstanceId), or deleted with
 *   `deleteCalendarOccurrence`; changing a 16.0 series' recurrence or times deletes its exceptions (MS-ASCAL §2.2.2.22).
 */
import ICAL from 'ical.js';
import { child, children, childText, el, textOf, type WbxmlElement } from '../wbxml/tree.ts';
import { bodyElement, type BodyPreference } from './body.ts';
import { compactDateTime, parseDateTime } from './datetime.ts';
import { plainAddress, plainName } from './address.ts';
import {
  addMissingTimezones,
  addTimeProperty,
  alarmInstant,
  bareAddress,
  bodySourceOf,
  categoriesFrom,
  categoriesOf,
  deviceBody,
  displayAlarm,
  floatingIn,
  instantIn,
  newCalendar,
  newUid,
  parseCalendar,
  tryParseCalendar,
  sensitivityOf,
  serializeCalendar,
  setCategories,
  setDescription,
  setSensitivity,
  setText,
  setTimeProperty,
  textValue,
  timeIn,
  timeValue,
  userAlarms,
  userZone,
  UTC_ZONE,
  zoneOfTime,
  zoneOfTzid,
  type ParsedCalendar,
  type Zone,
} from './icalendar.ts';
import {
  exceptionOriginalStart,
  exceptionStartElement,
  isDeletedException,
  readRecurrence,
  recurrenceElement,
  recurrenceFromRule,
  recurrenceToRule,
  type SeriesTimes,
} from './recurrence.ts';
import { sameTimeZoneRules, timeZoneFromBase64, timeZoneToBase64, toLocalTime, zoneFromTimeZoneInformation, type TimeZoneInformation } from './timezone.ts';

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

export interface CalendarInputOptions {
  version: string;
  /** The object as the server has it: the Change is merged into it. Absent for an Add. */
  existing?: string;
  /** The collection's Supported list (element names): absent elements that are listed are deleted. */
  supported?: readonly string[];
  /** The user's IANA zone, when the device sends no Timezone. */
  timezone?: string;
  /** The user's addresses; the first organizes meetings the device creates without an organizer. */
  userEmails?: readonly string[];
  now?: Date;
  /** 16.0: the Change is about the occurrence that originally started at this time (airsyncbase:InstanceId). */
  instanceId?: string;
}

const BUSY_STATUS = ['FREE', 'TENTATIVE', 'BUSY', 'OOF', 'WORKINGELSEWHERE'] as const;
const MEETING = 1;
const RECEIVED = 2;
const CANCELLED = 4;
/** AttendeeStatus ⇄ PARTSTAT. 0 (unknown) is an absent PARTSTAT. */
const ATTENDEE_STATUS: Readonly<Record<string, number>> = { TENTATIVE: 2, ACCEPTED: 3, DECLINED: 4, 'NEEDS-ACTION': 5 };
/** ResponseType ⇄ the user's PARTSTAT (1 = organizer). */
const RESPONSE_TYPE: Readonly<Record<string, number>> = { TENTATIVE: 2, ACCEPTED: 3, DECLINED: 4, 'NEEDS-ACTION': 5 };

function versionNumber(version: string): number {
  return Math.round(Number.parseFloat(version) * 10);
}

// ---------------------------------------------------------------------------------------------------------------
// Reading an event

/** The series and how its times read. */
interface Series {
  parsed: ParsedCalendar;
  master: ICAL.Component;
  overrides: ICAL.Component[];
  /** The zone the series' times are written in (floating in the user's zone for all-day events). */
  zone: Zone;
  /** The user's zone, for all-day and floating values. */
  fallback: Zone;
  allDay: boolean;
  start: Date;
  end: Date;
  times: SeriesTimes;
}

/** The year of a property's raw value, read without resolving its zone (zones may still have to be added). */
function rawYear(component: ICAL.Component | undefined, name: string): number | undefined {
  const raw = component?.getFirstProperty(name)?.jCal[3];
  const year = typeof raw === 'string' ? Number.parseInt(raw.slice(0, 4), 10) : NaN;
  return Number.isFinite(year) ? year : undefined;
}

function findEvents(parsed: ParsedCalendar): { master: ICAL.Component | undefined; overrides: ICAL.Component[] } {
  const events = parsed.calendar.getAllSubcomponents('vevent');
  const master = events.find((e) => !e.hasProperty('recurrence-id')) ?? events[0];
  if (!master || master.hasProperty('recurrence-id')) return { master, overrides: [] };
  const uid = textValue(master, 'uid');
  return { master, overrides: events.filter((e) => e !== master && e.hasProperty('recurrence-id') && textValue(e, 'uid') === uid) };
}

/** The instant of an event's end: DTEND, else DTSTART + DURATION, else a day after a date, else its start. */
function endOf(parsed: ParsedCalendar, event: ICAL.Component, start: ICAL.Time, startInstant: Date, zone: Zone, fallback: Zone): Date {
  const dtend = timeValue(event, 'dtend');
  if (dtend) return instantIn(dtend.isDate ? floatingIn(fallback) : zoneOfTime(parsed, dtend, fallback), dtend);
  const duration = event.getFirstPropertyValue('duration');
  if (duration instanceof ICAL.Duration) {
    if (!start.isDate) return new Date(startInstant.getTime() + duration.toSeconds() * 1000);
    const endDate = start.clone();
    endDate.addDuration(duration);
    return instantIn(zone, endDate);
  }
  if (start.isDate) {
    const next = start.clone();
    next.day += 1;
    return instantIn(zone, next);
  }
  return startInstant;
}

function readSeries(parsed: ParsedCalendar, master: ICAL.Component, overrides: ICAL.Component[], fallback: Zone): Series | undefined {
  const dtstart = timeValue(master, 'dtstart');
  if (!dtstart) return undefined;
  const allDay = dtstart.isDate;
  const zone = allDay ? floatingIn(fallback) : zoneOfTime(parsed, dtstart, fallback);
  const start = instantIn(zone, dtstart);
  const end = endOf(parsed, master, dtstart, start, zone, fallback);
  const times: SeriesTimes = {
    start: dtstart,
    toSeriesTime: (instant, asDate) => timeIn(zone, instant, asDate),
    toInstant: (time) => instantIn(zone, time),
  };
  return { parsed, master, overrides, zone, fallback, allDay, start, end, times };
}

/** The instant a RECURRENCE-ID or EXDATE value names; a DATE in a timed series means that day's occurrence. */
function occurrenceInstant(series: Series, value: ICAL.Time): Date {
  if (value.isDate && !series.allDay) {
    const atStartTime = series.times.start.clone();
    atStartTime.year = value.year;
    atStartTime.month = value.month;
    atStartTime.day = value.day;
    return series.times.toInstant(atStartTime);
  }
  if (value.isDate) return instantIn(series.zone, value);
  return instantIn(zoneOfTime(series.parsed, value, series.fallback), value);
}

function excludedInstants(series: Series): Date[] {
  return series.master
    .getAllProperties('exdate')
    .flatMap((p) => p.getValues())
    .filter((v): v is ICAL.Time => v instanceof ICAL.Time)
    .map((v) => occurrenceInstant(series, v));
}

function busyStatusOf(event: ICAL.Component): number {
  const declared = BUSY_STATUS.indexOf((textValue(event, 'x-microsoft-cdo-busystatus')?.toUpperCase() ?? '') as (typeof BUSY_STATUS)[number]);
  if (declared >= 0) return declared;
  if (textValue(event, 'transp')?.toUpperCase() === 'TRANSPARENT') return 0;
  if (textValue(event, 'status')?.toUpperCase() === 'TENTATIVE') return 1;
  return 2;
}

/** Minutes before the start of the first user alarm; undefined without one (or when it fires after the start). */
function reminderOf(event: ICAL.Component, start: Date, end: Date): number | undefined {
  const [alarm] = userAlarms(event);
  const fires = alarm ? alarmInstant(alarm, { start, end }) : undefined;
  if (!fires) return undefined;
  const minutes = Math.round((start.getTime() - fires.getTime()) / 60_000);
  return minutes >= 0 ? minutes : undefined;
}

interface Person {
  email: string;
  name?: string;
}

function personOf(property: ICAL.Property): Person | undefined {
  const value = String(property.getFirstValue() ?? '');
  const email = bareAddress(/^mailto:/i.test(value) ? value : String(property.getFirstParameter('email') ?? value));
  if (!email.includes('@')) return undefined;
  const name = property.getFirstParameter('cn');
  return typeof name === 'string' && name ? { email, name } : { email };
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
    const type = cutype === 'RESOURCE' || cutype === 'ROOM' ? 3 : role === 'OPT-PARTICIPANT' || role === 'NON-PARTICIPANT' ? 2 : 1;
    const rsvp = String(property.getFirstParameter('rsvp') ?? '').toUpperCase() === 'TRUE';
    attendees.push({ ...person, status: partstat ? (ATTENDEE_STATUS[partstat] ?? 0) : 0, type, rsvp, partstat });
  }
  return attendees;
}

function organizerOf(event: ICAL.Component): Person | undefined {
  const property = event.getFirstProperty('organizer');
  return property ? personOf(property) : undefined;
}

function isUser(email: string | undefined, userEmails: readonly string[] | undefined): boolean {
  return !!email && !!userEmails?.some((u) => u.toLowerCase() === email.toLowerCase());
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
  return categories.length > 0 ? el('Calendar', 'Categories', categories.map((c) => el('Calendar', 'Category', c))) : undefined;
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
  const responseType = !isMeeting ? undefined : organizes ? 1 : userAttendee ? (RESPONSE_TYPE[userAttendee.partstat ?? 'NEEDS-ACTION'] ?? 0) : 0;
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
    entries.push({ at, element: el('Calendar', 'Exception', [el('Calendar', 'Deleted', 1), exceptionStartElement(at, options.version)]) });
  };
  for (const at of excludedInstants(series)) addDeleted(at);
  for (const override of series.overrides) {
    const recurrenceId = timeValue(override, 'recurrence-id');
    if (!recurrenceId) continue;
    const at = occurrenceInstant(series, recurrenceId);
    if (textValue(override, 'status')?.toUpperCase() === 'CANCELLED') addDeleted(at);
    else if (!deleted.has(at.getTime())) entries.push({ at, element: overrideException(series, override, at, options, v) });
  }
  if (entries.length === 0) return undefined;
  entries.sort((a, b) => a.at.getTime() - b.at.getTime());
  return el('Calendar', 'Exceptions', entries.map((e) => e.element));
}

function overrideException(series: Series, override: ICAL.Component, originalStart: Date, options: CalendarOutputOptions, v: number): WbxmlElement {
  const { master } = series;
  const dtstart = timeValue(override, 'dtstart');
  const allDay = dtstart?.isDate ?? series.allDay;
  const zone = !dtstart ? series.zone : dtstart.isDate ? floatingIn(series.fallback) : zoneOfTime(series.parsed, dtstart, series.fallback);
  const start = dtstart ? instantIn(zone, dtstart) : originalStart;
  const end = dtstart ? endOf(series.parsed, override, dtstart, start, zone, series.fallback) : new Date(start.getTime() + (series.end.getTime() - series.start.getTime()));
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
    reminder !== undefined && reminder !== reminderOf(master, series.start, series.end) && el('Calendar', 'Reminder', reminder),
    dtstamp && differs(dtstamp.toString(), timeValue(master, 'dtstamp')?.toString()) && el('Calendar', 'DtStamp', compactDateTime(dtstamp.toJSDate())),
    differs(attendees, attendeesOf(master)) && attendeesElement(attendees),
  ]);
}

// ---------------------------------------------------------------------------------------------------------------
// Writing an event

type Mode = 'set' | 'delete' | 'keep';

/** Where a field's value is in ApplicationData or an Exception. */
function fieldElement(source: WbxmlElement, tag: string): WbxmlElement | undefined {
  if (tag === 'Body') return child(source, 'Body', 'AirSyncBase');
  if (tag === 'Location') return child(source, 'Location', 'Calendar') ?? child(source, 'Location', 'AirSyncBase');
  return child(source, tag, 'Calendar');
}

/** The iCalendar properties (and `valarm` components) each element owns, for deletes and inheritance. */
const OWNED: Readonly<Record<string, readonly string[]>> = {
  Subject: ['summary'],
  Location: ['location', 'geo'],
  Body: ['description', 'x-alt-desc'],
  Categories: ['categories'],
  Sensitivity: ['class'],
  BusyStatus: ['transp', 'x-microsoft-cdo-busystatus'],
  Reminder: ['valarm'],
  Attendees: ['attendee'],
  DisallowNewTimeProposal: ['x-microsoft-disallow-counter'],
};

function removeOwned(target: ICAL.Component, tag: string): void {
  for (const name of OWNED[tag] ?? []) {
    if (name === 'valarm') for (const alarm of userAlarms(target)) target.removeSubcomponent(alarm);
    else target.removeAllProperties(name);
  }
}

/** Gives `target` the series' value of a field (an exception that leaves it out inherits it). */
function inheritOwned(target: ICAL.Component, master: ICAL.Component, tag: string): void {
  removeOwned(target, tag);
  for (const name of OWNED[tag] ?? []) {
    if (name === 'valarm') for (const alarm of userAlarms(master)) target.addSubcomponent(new ICAL.Component(structuredClone(alarm.jCal)));
    else for (const property of master.getAllProperties(name)) target.addProperty(new ICAL.Property(structuredClone(property.jCal)));
  }
}

/** What writing fields needs to know. */
interface WriteContext {
  options: CalendarInputOptions;
  v: number;
  /** ResponseRequested of the item: new attendees are asked to reply (RSVP=TRUE). */
  responseRequested: boolean;
  /** The event's start and end after this change, for alarms. */
  start: () => Date | undefined;
  end: () => Date | undefined;
}

/** Writes the value of one element into the event. */
function writeField(target: ICAL.Component, tag: string, element: WbxmlElement, ctx: WriteContext): void {
  const text = textOf(element);
  switch (tag) {
    case 'Subject':
      setText(target, 'summary', text);
      return;
    case 'Location': {
      if (element.ns === 'Calendar') {
        setText(target, 'location', text);
        return;
      }
      const displayName = childText(element, 'DisplayName', 'AirSyncBase');
      const address = ['Street', 'City', 'State', 'PostalCode', 'Country'].map((t) => childText(element, t, 'AirSyncBase')).filter((s) => s);
      setText(target, 'location', displayName || address.join(', ') || childText(element, 'Annotation', 'AirSyncBase'));
      const latitude = Number.parseFloat(childText(element, 'Latitude', 'AirSyncBase') ?? '');
      const longitude = Number.parseFloat(childText(element, 'Longitude', 'AirSyncBase') ?? '');
      target.removeAllProperties('geo');
      if (Number.isFinite(latitude) && Number.isFinite(longitude)) target.addPropertyWithValue('geo', [latitude, longitude]);
      return;
    }
    case 'Body': {
      const body = deviceBody(element);
      if (body) setDescription(target, body.text || body.html ? body : undefined);
      return;
    }
    case 'Categories':
      setCategories(target, categoriesFrom(element));
      return;
    case 'Sensitivity':
      setSensitivity(target, clampInt(text, 0, 3) ?? 0);
      return;
    case 'BusyStatus': {
      const status = clampInt(text, 0, 4) ?? 2;
      setText(target, 'transp', status === 0 ? 'TRANSPARENT' : 'OPAQUE');
      // TRANSP says free or busy; the Microsoft property carries the rest (tentative, away, elsewhere).
      if (status === 1 || status >= 3 || target.hasProperty('x-microsoft-cdo-busystatus')) setText(target, 'x-microsoft-cdo-busystatus', BUSY_STATUS[status]);
      return;
    }
    case 'Reminder': {
      const minutes = clampInt(text, 0, 1_000_000);
      const start = ctx.start();
      if (minutes === undefined) return;
      if (start && reminderOf(target, start, ctx.end() ?? start) === minutes) return; // unchanged: keep the alarm as it is
      removeOwned(target, 'Reminder');
      target.addSubcomponent(displayAlarm(ICAL.Duration.fromSeconds(-minutes * 60), textValue(target, 'summary') ?? 'Reminder'));
      return;
    }
    case 'Attendees':
      writeAttendees(target, element, ctx);
      return;
    case 'MeetingStatus': {
      const status = clampInt(text, 0, 15) ?? 0;
      if (status & CANCELLED) setText(target, 'status', 'CANCELLED');
      else if (textValue(target, 'status')?.toUpperCase() === 'CANCELLED') target.removeAllProperties('status');
      return;
    }
    case 'DtStamp': {
      const stamp = parseDateTime(text);
      if (stamp) setTimeProperty(target, 'dtstamp', ICAL.Time.fromJSDate(stamp, true), UTC_ZONE);
      return;
    }
    case 'DisallowNewTimeProposal':
      setText(target, 'x-microsoft-disallow-counter', text.trim() === '1' ? 'TRUE' : undefined);
      return;
    case 'ResponseType': {
      const partstat = Object.entries(RESPONSE_TYPE).find(([, n]) => n === clampInt(text, 0, 5))?.[0];
      const user = target.getAllProperties('attendee').find((p) => isUser(personOf(p)?.email, ctx.options.userEmails));
      if (partstat && user) user.setParameter('partstat', partstat);
      return;
    }
  }
}

function clampInt(text: string, min: number, max: number): number | undefined {
  const n = Number.parseInt(text.trim(), 10);
  return Number.isFinite(n) && n >= min && n <= max ? n : undefined;
}

/** Rebuilds ATTENDEE properties from the device's list, keeping the parameters of attendees that stay. */
function writeAttendees(target: ICAL.Component, element: WbxmlElement, ctx: WriteContext): void {
  const existing = new Map<string, ICAL.Property>();
  for (const property of target.getAllProperties('attendee')) {
    const email = personOf(property)?.email.toLowerCase();
    if (email && !existing.has(email)) existing.set(email, property);
  }
  target.removeAllProperties('attendee');
  for (const attendee of children(element, 'Attendee', 'Calendar')) {
    // Only plain addresses: a CR/LF in one would break the iCalendar line (and any mail built from it).
    const email = plainAddress(bareAddress(childText(attendee, 'Email', 'Calendar') ?? ''));
    if (!email) continue;
    const kept = existing.get(email.toLowerCase());
    const property = kept ? new ICAL.Property(structuredClone(kept.jCal)) : new ICAL.Property('attendee');
    property.setValue(`mailto:${email}`);
    const name = plainName(childText(attendee, 'Name', 'Calendar'));
    if (name && name !== email) property.setParameter('cn', name);
    else property.removeParameter('cn');
    const status = clampInt(childText(attendee, 'AttendeeStatus', 'Calendar') ?? '', 0, 5);
    const partstat = Object.entries(ATTENDEE_STATUS).find(([, n]) => n === status)?.[0];
    if (partstat) property.setParameter('partstat', partstat);
    else if (status === 0) property.removeParameter('partstat');
    const type = clampInt(childText(attendee, 'AttendeeType', 'Calendar') ?? '', 1, 3);
    if (type === 3) {
      if (!['RESOURCE', 'ROOM'].includes(String(property.getFirstParameter('cutype') ?? '').toUpperCase())) property.setParameter('cutype', 'RESOURCE');
      property.removeParameter('role');
    } else if (type !== undefined) {
      if (['RESOURCE', 'ROOM'].includes(String(property.getFirstParameter('cutype') ?? '').toUpperCase())) property.removeParameter('cutype');
      const role = String(property.getFirstParameter('role') ?? '').toUpperCase();
      if (type === 2 && role !== 'OPT-PARTICIPANT' && role !== 'NON-PARTICIPANT') property.setParameter('role', 'OPT-PARTICIPANT');
      if (type === 1 && role !== 'REQ-PARTICIPANT' && role !== 'CHAIR') property.setParameter('role', 'REQ-PARTICIPANT');
    }
    if (!kept && ctx.responseRequested) property.setParameter('rsvp', 'TRUE');
    target.addProperty(property);
  }
}

/** ORGANIZER from OrganizerEmail/OrganizerName (each kept from the current value when absent). */
function writeOrganizer(target: ICAL.Component, source: WbxmlElement, mode: (tag: string) => Mode): void {
  const current = organizerOf(target);
  const emailMode = mode('OrganizerEmail');
  const nameMode = mode('OrganizerName');
  if (emailMode === 'delete') {
    target.removeAllProperties('organizer');
    return;
  }
  if (emailMode === 'keep' && nameMode === 'keep') return;
  const email = emailMode === 'set' ? plainAddress(bareAddress(childText(source, 'OrganizerEmail', 'Calendar') ?? '')) : current?.email;
  const name = nameMode === 'set' ? plainName(childText(source, 'OrganizerName', 'Calendar')) : nameMode === 'delete' ? undefined : current?.name;
  if (!email?.includes('@')) return;
  const property = target.getFirstProperty('organizer') ?? target.addPropertyWithValue('organizer', '');
  property.setValue(`mailto:${email}`);
  if (name && name !== email) property.setParameter('cn', name);
  else property.removeParameter('cn');
}

/**
 * The iCalendar object for a device's Add (no `existing`) or Change (merged into `existing`; see the module comment
 * for which properties an absent element deletes). Throws when `existing` is not iCalendar.
 */
export function calendarFromApplicationData(app: WbxmlElement, options: CalendarInputOptions): string {
  const now = options.now ?? new Date();
  const parsed = options.existing ? parseCalendar(options.existing) : newCalendar();
  const found = findEvents(parsed);
  const startElement = parseDateTime(childText(app, 'StartTime', 'Calendar'));
  const year = startElement?.getUTCFullYear() ?? rawYear(found.master, 'dtstart') ?? now.getUTCFullYear();
  addMissingTimezones(parsed, year);
  const blob = timeZoneFromBase64(childText(app, 'Timezone', 'Calendar') ?? '');
  const fallback: Zone = blob ? { kind: 'floating', rulesIn: () => blob } : userZone(options.timezone);
  const v = versionNumber(options.version);

  let master = found.master;
  if (!master) {
    master = new ICAL.Component('vevent');
    master.addPropertyWithValue('uid', childText(app, 'ClientUid', 'Calendar') || childText(app, 'UID', 'Calendar') || newUid());
    setTimeProperty(master, 'created', ICAL.Time.fromJSDate(now, true), UTC_ZONE);
    parsed.calendar.addSubcomponent(master);
  }
  const present = (tag: string): boolean => fieldElement(app, tag) !== undefined;
  const mode = (tag: string): Mode => (present(tag) ? 'set' : options.existing && options.supported?.includes(tag) ? 'delete' : 'keep');

  // An InstanceId names an occurrence of a series; on a single event it can only mean the event itself.
  if (options.instanceId !== undefined && master.hasProperty('rrule')) {
    const originalStart = parseDateTime(options.instanceId);
    if (!originalStart) throw new Error(`invalid InstanceId ${options.instanceId}`);
    const series = readSeries(parsed, master, found.overrides, fallback);
    if (!series) throw new Error('the event has no DTSTART');
    const override = findOrCreateOverride(series, originalStart);
    writeEvent(override, app, (tag) => (present(tag) ? 'set' : 'keep'), { parsed, fallback, blob, options, v, year, isOverride: true, series });
    stampModified(override, now);
    return serializeCalendar(parsed);
  }

  const before = seriesSignature(master);
  writeEvent(master, app, mode, { parsed, fallback, blob, options, v, year, isOverride: false });
  if (!master.hasProperty('dtstamp')) setTimeProperty(master, 'dtstamp', ICAL.Time.fromJSDate(now, true), UTC_ZONE);
  stampModified(master, now);

  const seriesChanged = options.existing !== undefined && seriesSignature(master) !== before;
  // Exceptions of a series the device got as a single event (its rule has no ActiveSync form) are not the device's to delete.
  const exceptionsMode = mode('Exceptions') === 'delete' && unrepresentable(parsed, master, fallback) ? 'keep' : mode('Exceptions');
  if (!master.hasProperty('rrule') || exceptionsMode === 'delete' || (v >= 160 && seriesChanged && exceptionsMode === 'keep')) {
    removeExceptions(parsed, master, found.overrides);
  } else if (exceptionsMode === 'set') {
    const series = readSeries(parsed, master, found.overrides, fallback);
    if (series) writeExceptions(series, fieldElement(app, 'Exceptions')!, { parsed, fallback, blob, options, v, year, isOverride: true, series }, now);
  }
  return serializeCalendar(parsed);
}

/** True when the series has an RRULE that ActiveSync cannot express (the device got its first occurrence only). */
function unrepresentable(parsed: ParsedCalendar, master: ICAL.Component, fallback: Zone): boolean {
  const rule = master.getFirstPropertyValue('rrule');
  const series = readSeries(parsed, master, [], fallback);
  return rule instanceof ICAL.Recur && !!series && !recurrenceFromRule(rule, series.times);
}

/** What, if changed in 16.0, deletes a series' exceptions. */
function seriesSignature(master: ICAL.Component): string {
  return ['dtstart', 'dtend', 'duration', 'rrule'].map((n) => master.getFirstProperty(n)?.toICALString() ?? '').join('\n');
}

function stampModified(event: ICAL.Component, now: Date): void {
  setTimeProperty(event, 'last-modified', ICAL.Time.fromJSDate(now, true), UTC_ZONE);
}

function removeExceptions(parsed: ParsedCalendar, master: ICAL.Component, overrides: ICAL.Component[]): void {
  master.removeAllProperties('exdate');
  for (const override of overrides) parsed.calendar.removeSubcomponent(override);
}

interface EventWriteContext {
  parsed: ParsedCalendar;
  /** Where all-day and floating values are placed: the device's blob when it sent one, else the user's zone. */
  fallback: Zone;
  /** The item's Timezone blob, when the device sent one. */
  blob: TimeZoneInformation | undefined;
  options: CalendarInputOptions;
  v: number;
  year: number;
  isOverride: boolean;
  /** For overrides: the series they belong to. */
  series?: Series;
}

/** The tags written generically, in the order they are applied (Subject before Reminder: the alarm text). */
const GENERIC_FIELDS = ['Subject', 'Location', 'Body', 'Categories', 'Sensitivity', 'BusyStatus', 'Attendees', 'MeetingStatus', 'DtStamp', 'DisallowNewTimeProposal', 'ResponseType', 'Reminder'];

/** Writes a master or an override from ApplicationData / an Exception. */
function writeEvent(event: ICAL.Component, source: WbxmlElement, mode: (tag: string) => Mode, ctx: EventWriteContext): void {
  const zone = writeTimes(event, source, mode, ctx);
  const ctxWrite: WriteContext = {
    options: ctx.options,
    v: ctx.v,
    responseRequested: childText(source, 'ResponseRequested', 'Calendar')?.trim() === '1',
    start: () => eventInstant(ctx, event, 'dtstart', zone),
    end: () => eventInstant(ctx, event, 'dtend', zone) ?? eventInstant(ctx, event, 'dtstart', zone),
  };
  for (const tag of GENERIC_FIELDS) {
    const m = mode(tag);
    if (m === 'set') writeField(event, tag, fieldElement(source, tag)!, ctxWrite);
    else if (m === 'delete') removeOwned(event, tag);
  }
  if (!ctx.isOverride) {
    writeOrganizer(event, source, mode);
    // A meeting the device creates without an organizer is the user's.
    if (event.hasProperty('attendee') && !event.hasProperty('organizer') && ctx.options.userEmails?.[0]) {
      event.addPropertyWithValue('organizer', `mailto:${ctx.options.userEmails[0]}`);
    }
    writeRecurrence(event, source, mode, ctx, zone);
  }
}

function eventInstant(ctx: EventWriteContext, event: ICAL.Component, name: string, zone: Zone): Date | undefined {
  const time = timeValue(event, name);
  if (!time) return undefined;
  return instantIn(time.isDate ? floatingIn(ctx.fallback) : zoneOfTime(ctx.parsed, time, zone), time);
}

/**
 * DTSTART/DTEND from StartTime/EndTime, AllDayEvent and the Timezone blob; returns the zone the event's times are
 * now written in.
 */
function writeTimes(event: ICAL.Component, source: WbxmlElement, mode: (tag: string) => Mode, ctx: EventWriteContext): Zone {
  const currentStart = timeValue(event, 'dtstart');
  const currentZone = currentStart && !currentStart.isDate ? zoneOfTime(ctx.parsed, currentStart, ctx.fallback) : undefined;
  const allDayText = childText(source, 'AllDayEvent', 'Calendar');
  const allDay = allDayText !== undefined ? allDayText.trim() === '1' : (currentStart?.isDate ?? ctx.series?.allDay ?? false);
  // Dates need no zone; overrides take the series' zone; the series takes the blob's (or keeps its own).
  const zone = allDay
    ? floatingIn(ctx.fallback)
    : ctx.isOverride
      ? ctx.series?.allDay === false
        ? ctx.series.zone
        : (currentZone ?? defaultZone(ctx))
      : chooseZone(ctx.blob, currentZone, ctx);
  const rules = (year: number): TimeZoneInformation => ctx.blob ?? zone.rulesIn(year);
  const start = parseDateTime(childText(source, 'StartTime', 'Calendar'));
  const end = parseDateTime(childText(source, 'EndTime', 'Calendar'));

  if (start) {
    if (allDay) setTimeProperty(event, 'dtstart', deviceLocalDate(start, rules(start.getUTCFullYear())), zone);
    else setTimeProperty(event, 'dtstart', timeIn(zone, start), zone);
  }
  if (end) {
    event.removeAllProperties('duration');
    if (allDay) {
      const startDate = timeValue(event, 'dtstart')!;
      let endDate = deviceLocalDate(end, rules(end.getUTCFullYear()));
      if (endDate.compare(startDate) <= 0) {
        endDate = startDate.clone();
        endDate.day += 1;
      }
      setTimeProperty(event, 'dtend', endDate, zone);
    } else {
      setTimeProperty(event, 'dtend', timeIn(zone, end), zone);
    }
  } else if (mode('EndTime') === 'delete') {
    event.removeAllProperties('dtend');
  }
  return zone;
}

function defaultZone(ctx: EventWriteContext): Zone {
  const tzid = ctx.options.timezone;
  if (!tzid) return UTC_ZONE;
  const tzi = userZone(tzid).rulesIn(ctx.year);
  const resolved = zoneFromTimeZoneInformation(tzi, tzid);
  return resolved.isUtc ? UTC_ZONE : ensureZone(ctx.parsed, resolved.tzid, resolved.vtimezone, tzi, ctx.year);
}

/** The zone to write a device's times in: the event's own when it has the blob's rules, else the blob's best zone. */
function chooseZone(blob: TimeZoneInformation | undefined, current: Zone | undefined, ctx: EventWriteContext): Zone {
  if (!blob) return current ?? defaultZone(ctx);
  if (current && current.kind !== 'floating' && sameTimeZoneRules(current.rulesIn(ctx.year), blob)) return current;
  const resolved = zoneFromTimeZoneInformation(blob, current?.tzid ?? ctx.options.timezone);
  if (resolved.isUtc) return UTC_ZONE;
  return ensureZone(ctx.parsed, resolved.tzid, resolved.vtimezone, blob, ctx.year);
}

/** The object's zone for a TZID, adding the VTIMEZONE; a TZID already defined with other rules gets a new name. */
function ensureZone(parsed: ParsedCalendar, tzid: string, vtimezone: ICAL.Component, rules: TimeZoneInformation, year: number): Zone {
  const existing = zoneOfTzid(parsed, tzid);
  if (existing && sameTimeZoneRules(existing.rulesIn(year), rules)) return existing;
  const name = existing ? `${tzid} (ActiveSync)` : tzid;
  if (!existing || !zoneOfTzid(parsed, name)) {
    vtimezone.updatePropertyWithValue('tzid', name);
    parsed.calendar.addSubcomponent(vtimezone);
  }
  return zoneOfTzid(parsed, name)!;
}

/**
 * The local date of an all-day StartTime/EndTime in the device's zone. Devices mean local midnight; those that send
 * UTC midnight with another zone mean the UTC date; anything else rounds to the nearest local midnight.
 */
function deviceLocalDate(instant: Date, rules: TimeZoneInformation): ICAL.Time {
  let local = toLocalTime(rules, instant);
  if (local.hour !== 0 || local.minute !== 0) {
    const utcMidnight = instant.getUTCHours() === 0 && instant.getUTCMinutes() === 0;
    local = utcMidnight
      ? { ...local, year: instant.getUTCFullYear(), month: instant.getUTCMonth() + 1, day: instant.getUTCDate() }
      : toLocalTime(rules, new Date(instant.getTime() + 12 * 3600_000));
  }
  return ICAL.Time.fromData({ year: local.year, month: local.month, day: local.day, isDate: true });
}

function writeRecurrence(event: ICAL.Component, source: WbxmlElement, mode: (tag: string) => Mode, ctx: EventWriteContext, zone: Zone): void {
  const m = mode('Recurrence');
  const dtstart = timeValue(event, 'dtstart');
  if (!dtstart || m === 'keep') return;
  const seriesZone = dtstart.isDate ? floatingIn(ctx.fallback) : zone;
  const times: SeriesTimes = {
    start: dtstart,
    toSeriesTime: (instant, asDate) => timeIn(seriesZone, instant, asDate),
    toInstant: (time) => instantIn(seriesZone, time),
  };
  if (m === 'delete') {
    // A rule ActiveSync cannot express was never on the device: its absence says nothing.
    const rule = event.getFirstPropertyValue('rrule');
    if (rule instanceof ICAL.Recur && !recurrenceFromRule(rule, times)) return;
    for (const name of ['rrule', 'rdate', 'exdate']) event.removeAllProperties(name);
    return;
  }
  const recurrence = readRecurrence(fieldElement(source, 'Recurrence')!);
  if (!recurrence) return;
  event.removeAllProperties('rrule');
  event.addPropertyWithValue('rrule', recurrenceToRule(recurrence, times));
}

/** An occurrence's original start written like the series' DTSTART (RECURRENCE-ID, EXDATE). */
function addOccurrenceProperty(series: Series, target: ICAL.Component, name: string, at: Date): void {
  const zone = series.allDay ? floatingIn(series.fallback) : series.zone;
  addTimeProperty(target, name, timeIn(zone, at, series.allDay), zone);
}

function findOverride(series: Series, originalStart: Date): ICAL.Component | undefined {
  return series.overrides.find((o) => {
    const id = timeValue(o, 'recurrence-id');
    return id && occurrenceInstant(series, id).getTime() === originalStart.getTime();
  });
}

/** The override of one occurrence: the existing one, or a copy of the series at that occurrence. */
function findOrCreateOverride(series: Series, originalStart: Date): ICAL.Component {
  const existing = findOverride(series, originalStart);
  if (existing) return existing;
  const override = new ICAL.Component(structuredClone(series.master.jCal));
  for (const name of ['rrule', 'rdate', 'exdate', 'created']) override.removeAllProperties(name);
  const zone = series.allDay ? floatingIn(series.fallback) : series.zone;
  override.removeAllProperties('duration');
  setTimeProperty(override, 'dtstart', timeIn(zone, originalStart, series.allDay), zone);
  const end = new Date(originalStart.getTime() + (series.end.getTime() - series.start.getTime()));
  setTimeProperty(override, 'dtend', timeIn(zone, end, series.allDay), zone);
  addOccurrenceProperty(series, override, 'recurrence-id', originalStart);
  series.parsed.calendar.addSubcomponent(override);
  series.overrides.push(override);
  return override;
}

/** Replaces EXDATEs and overrides with the device's Exceptions (≤ 14.1). */
function writeExceptions(series: Series, exceptions: WbxmlElement, ctx: EventWriteContext, now: Date): void {
  const { master } = series;
  const previous = [...series.overrides];
  const keptOverrides = new Set<ICAL.Component>();
  master.removeAllProperties('exdate');
  for (const exception of children(exceptions, 'Exception', 'Calendar')) {
    const originalStart = exceptionOriginalStart(exception);
    if (!originalStart) continue;
    if (isDeletedException(exception)) {
      addOccurrenceProperty(series, master, 'exdate', originalStart);
      continue;
    }
    const existed = findOverride(series, originalStart);
    const override = findOrCreateOverride(series, originalStart);
    keptOverrides.add(override);
    // What an exception leaves out is the series' value (a new override is a copy of the series already);
    // attendees keep the override's own, since replies are per occurrence.
    if (existed) {
      for (const tag of Object.keys(OWNED)) if (tag !== 'Attendees' && !fieldElement(exception, tag)) inheritOwned(override, master, tag);
    }
    writeEvent(override, exception, (tag) => (fieldElement(exception, tag) ? 'set' : 'keep'), ctx);
    stampModified(override, now);
  }
  for (const override of previous) {
    if (!keptOverrides.has(override)) series.parsed.calendar.removeSubcomponent(override);
  }
}

/** 16.0 Sync Delete with InstanceId: the occurrence is excluded (EXDATE) and its override removed. */
export function deleteCalendarOccurrence(ics: string, instanceId: string, options: { timezone?: string } = {}): string {
  const parsed = parseCalendar(ics);
  const { master, overrides } = findEvents(parsed);
  const originalStart = parseDateTime(instanceId);
  if (!master || !originalStart) return ics;
  addMissingTimezones(parsed, originalStart.getUTCFullYear());
  const series = readSeries(parsed, master, overrides, userZone(options.timezone));
  if (!series || !master.hasProperty('rrule')) return ics;
  const override = findOverride(series, originalStart);
  if (override) parsed.calendar.removeSubcomponent(override);
  addOccurrenceProperty(series, master, 'exdate', originalStart);
  return serializeCalendar(parsed);
}

/**
 * One occurrence of a recurring event as its own override (RECURRENCE-ID), made from the series when there is none
 * yet: what a reply about one occurrence (MeetingResponse with InstanceId) changes. Undefined when the event does not
 * recur or `instanceId` is not a dateTime.
 */
export function occurrenceOverride(ics: string, instanceId: string, options: { timezone?: string } = {}): { parsed: ParsedCalendar; override: ICAL.Component } | undefined {
  const parsed = parseCalendar(ics);
  const { master, overrides } = findEvents(parsed);
  const originalStart = parseDateTime(instanceId);
  if (!master || !originalStart || !master.hasProperty('rrule')) return undefined;
  addMissingTimezones(parsed, originalStart.getUTCFullYear());
  const series = readSeries(parsed, master, overrides, userZone(options.timezone));
  return series ? { parsed, override: findOrCreateOverride(series, originalStart) } : undefined;
}
