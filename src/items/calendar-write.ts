/**
 * The device's Calendar Add/Change (MS-ASCAL ApplicationData) as iCalendar text, merged into the object the server
 * has, and 16.0's occurrence changes and deletes (airsyncbase:InstanceId). Pure and runtime-neutral: ical.js writes
 * iCalendar. The way there is calendar-read.ts; what both share (and the mappings of both directions) is
 * calendar-event.ts.
 *
 * Decisions worth knowing:
 * - From the device: the blob becomes the event's TZID (kept when the event's current zone has the same rules,
 *   else the best matching IANA zone, else a VTIMEZONE built from the blob; a UTC blob writes `Z` times).
 *   All-day events become DATE values from the local date of StartTime in the blob's zone (clients that send UTC
 *   midnight with a non-UTC blob get the UTC date).
 * - Changes (Supported/ghosting): an element present in a Change replaces the property; an absent one deletes it when
 *   the element is in `supported` (the collection's Supported list), else the server's value is kept (also when no
 *   Supported list was sent, as Z-Push does). Properties ActiveSync has no element for (X-props, RDATE, attendee
 *   parameters, VALARMs beyond the first…) are always kept.
 * - Device Exceptions (≤ 14.1) replace the overrides and EXDATEs. Properties an exception leaves out are the series'
 *   (MS-ASCAL), except Attendees, which keep the override's own (their replies are per occurrence). In 16.0 a
 *   single occurrence is changed with `instanceId` (a Change carrying airsyncbase:InstanceId), or deleted with
 *   `deleteCalendarOccurrence`; changing a 16.0 series' recurrence or times deletes its exceptions (MS-ASCAL
 *   §2.2.2.22).
 */
import ICAL from 'ical.js';
import { child, children, childText, textOf, type WbxmlElement } from '../wbxml/tree.ts';
import { parseDateTime } from './datetime.ts';
import { plainAddress, plainName } from './address.ts';
import {
  addMissingTimezones,
  addTimeProperty,
  bareAddress,
  categoriesFrom,
  deviceBody,
  displayAlarm,
  floatingIn,
  instantIn,
  newCalendar,
  newUid,
  parseCalendar,
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
  isDeletedException,
  readRecurrence,
  recurrenceFromRule,
  recurrenceToRule,
  type SeriesTimes,
} from './recurrence.ts';
import {
  sameTimeZoneRules,
  timeZoneFromBase64,
  toLocalTime,
  zoneFromTimeZoneInformation,
  type TimeZoneInformation,
} from './timezone.ts';
import {
  ATTENDEE_STATUS,
  BUSY_STATUS,
  CANCELLED,
  findEvents,
  isUser,
  occurrenceInstant,
  organizerOf,
  personOf,
  rawYear,
  readSeries,
  reminderOf,
  RESPONSE_TYPE,
  versionNumber,
  type Series,
} from './calendar-event.ts';

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
    if (name === 'valarm')
      for (const alarm of userAlarms(master)) target.addSubcomponent(new ICAL.Component(structuredClone(alarm.jCal)));
    else
      for (const property of master.getAllProperties(name))
        target.addProperty(new ICAL.Property(structuredClone(property.jCal)));
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
      const address = ['Street', 'City', 'State', 'PostalCode', 'Country']
        .map((t) => childText(element, t, 'AirSyncBase'))
        .filter((s) => s);
      setText(target, 'location', displayName || address.join(', ') || childText(element, 'Annotation', 'AirSyncBase'));
      const latitude = Number.parseFloat(childText(element, 'Latitude', 'AirSyncBase') ?? '');
      const longitude = Number.parseFloat(childText(element, 'Longitude', 'AirSyncBase') ?? '');
      target.removeAllProperties('geo');
      if (Number.isFinite(latitude) && Number.isFinite(longitude))
        target.addPropertyWithValue('geo', [latitude, longitude]);
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
      if (status === 1 || status >= 3 || target.hasProperty('x-microsoft-cdo-busystatus'))
        setText(target, 'x-microsoft-cdo-busystatus', BUSY_STATUS[status]);
      return;
    }
    case 'Reminder': {
      const minutes = clampInt(text, 0, 1_000_000);
      const start = ctx.start();
      if (minutes === undefined) return;
      if (start && reminderOf(target, start, ctx.end() ?? start) === minutes) return; // unchanged: keep the alarm as it is
      removeOwned(target, 'Reminder');
      target.addSubcomponent(
        displayAlarm(ICAL.Duration.fromSeconds(-minutes * 60), textValue(target, 'summary') ?? 'Reminder'),
      );
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
      if (!['RESOURCE', 'ROOM'].includes(String(property.getFirstParameter('cutype') ?? '').toUpperCase()))
        property.setParameter('cutype', 'RESOURCE');
      property.removeParameter('role');
    } else if (type !== undefined) {
      if (['RESOURCE', 'ROOM'].includes(String(property.getFirstParameter('cutype') ?? '').toUpperCase()))
        property.removeParameter('cutype');
      const role = String(property.getFirstParameter('role') ?? '').toUpperCase();
      if (type === 2 && role !== 'OPT-PARTICIPANT' && role !== 'NON-PARTICIPANT')
        property.setParameter('role', 'OPT-PARTICIPANT');
      if (type === 1 && role !== 'REQ-PARTICIPANT' && role !== 'CHAIR')
        property.setParameter('role', 'REQ-PARTICIPANT');
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
  const email =
    emailMode === 'set'
      ? plainAddress(bareAddress(childText(source, 'OrganizerEmail', 'Calendar') ?? ''))
      : current?.email;
  const name =
    nameMode === 'set'
      ? plainName(childText(source, 'OrganizerName', 'Calendar'))
      : nameMode === 'delete'
        ? undefined
        : current?.name;
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
    master.addPropertyWithValue(
      'uid',
      childText(app, 'ClientUid', 'Calendar') || childText(app, 'UID', 'Calendar') || newUid(),
    );
    setTimeProperty(master, 'created', ICAL.Time.fromJSDate(now, true), UTC_ZONE);
    parsed.calendar.addSubcomponent(master);
  }
  const present = (tag: string): boolean => fieldElement(app, tag) !== undefined;
  const mode = (tag: string): Mode =>
    present(tag) ? 'set' : options.existing && options.supported?.includes(tag) ? 'delete' : 'keep';

  // An InstanceId names an occurrence of a series; on a single event it can only mean the event itself.
  if (options.instanceId !== undefined && master.hasProperty('rrule')) {
    const originalStart = parseDateTime(options.instanceId);
    if (!originalStart) throw new Error(`invalid InstanceId ${options.instanceId}`);
    const series = readSeries(parsed, master, found.overrides, fallback);
    if (!series) throw new Error('the event has no DTSTART');
    const override = findOrCreateOverride(series, originalStart);
    writeEvent(override, app, (tag) => (present(tag) ? 'set' : 'keep'), {
      parsed,
      fallback,
      blob,
      options,
      v,
      year,
      isOverride: true,
      series,
    });
    stampModified(override, now);
    return serializeCalendar(parsed);
  }

  const before = seriesSignature(master);
  writeEvent(master, app, mode, { parsed, fallback, blob, options, v, year, isOverride: false });
  if (!master.hasProperty('dtstamp')) setTimeProperty(master, 'dtstamp', ICAL.Time.fromJSDate(now, true), UTC_ZONE);
  stampModified(master, now);

  const seriesChanged = options.existing !== undefined && seriesSignature(master) !== before;
  // Exceptions of a series the device got as a single event (its rule has no ActiveSync form) are not the device's to
  // delete.
  const exceptionsMode =
    mode('Exceptions') === 'delete' && unrepresentable(parsed, master, fallback) ? 'keep' : mode('Exceptions');
  if (
    !master.hasProperty('rrule') ||
    exceptionsMode === 'delete' ||
    (v >= 160 && seriesChanged && exceptionsMode === 'keep')
  ) {
    removeExceptions(parsed, master, found.overrides);
  } else if (exceptionsMode === 'set') {
    const series = readSeries(parsed, master, found.overrides, fallback);
    if (series)
      writeExceptions(
        series,
        fieldElement(app, 'Exceptions')!,
        { parsed, fallback, blob, options, v, year, isOverride: true, series },
        now,
      );
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
  return ['dtstart', 'dtend', 'duration', 'rrule']
    .map((n) => master.getFirstProperty(n)?.toICALString() ?? '')
    .join('\n');
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
const GENERIC_FIELDS = [
  'Subject',
  'Location',
  'Body',
  'Categories',
  'Sensitivity',
  'BusyStatus',
  'Attendees',
  'MeetingStatus',
  'DtStamp',
  'DisallowNewTimeProposal',
  'ResponseType',
  'Reminder',
];

/** Writes a master or an override from ApplicationData / an Exception. */
function writeEvent(
  event: ICAL.Component,
  source: WbxmlElement,
  mode: (tag: string) => Mode,
  ctx: EventWriteContext,
): void {
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
function writeTimes(
  event: ICAL.Component,
  source: WbxmlElement,
  mode: (tag: string) => Mode,
  ctx: EventWriteContext,
): Zone {
  const currentStart = timeValue(event, 'dtstart');
  const currentZone =
    currentStart && !currentStart.isDate ? zoneOfTime(ctx.parsed, currentStart, ctx.fallback) : undefined;
  const allDayText = childText(source, 'AllDayEvent', 'Calendar');
  const allDay =
    allDayText !== undefined ? allDayText.trim() === '1' : (currentStart?.isDate ?? ctx.series?.allDay ?? false);
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
function ensureZone(
  parsed: ParsedCalendar,
  tzid: string,
  vtimezone: ICAL.Component,
  rules: TimeZoneInformation,
  year: number,
): Zone {
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

function writeRecurrence(
  event: ICAL.Component,
  source: WbxmlElement,
  mode: (tag: string) => Mode,
  ctx: EventWriteContext,
  zone: Zone,
): void {
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
      for (const tag of Object.keys(OWNED))
        if (tag !== 'Attendees' && !fieldElement(exception, tag)) inheritOwned(override, master, tag);
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
export function occurrenceOverride(
  ics: string,
  instanceId: string,
  options: { timezone?: string } = {},
): { parsed: ParsedCalendar; override: ICAL.Component } | undefined {
  const parsed = parseCalendar(ics);
  const { master, overrides } = findEvents(parsed);
  const originalStart = parseDateTime(instanceId);
  if (!master || !originalStart || !master.hasProperty('rrule')) return undefined;
  addMissingTimezones(parsed, originalStart.getUTCFullYear());
  const series = readSeries(parsed, master, overrides, userZone(options.timezone));
  return series ? { parsed, override: findOrCreateOverride(series, originalStart) } : undefined;
}
