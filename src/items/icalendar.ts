/**
 * What calendar.ts and task.ts share: parsing and writing iCalendar objects with ical.js, the zone a time is read
 * and written in, text/categories/class properties, bodies and alarms. Pure and runtime-neutral.
 */
import ICAL from 'ical.js';
import { childText, type WbxmlElement } from '../wbxml/tree.ts';
import { htmlToPlainText, type BodySource } from './body.ts';
import { fieldsToMillis, utcFields, type LocalDateTime } from './datetime.ts';
import {
  fromLocalTime,
  timeZoneInformationForTzid,
  timeZoneInformationFromVtimezone,
  toLocalTime,
  UTC_TIME_ZONE,
  vtimezoneForTzid,
  type TimeZoneInformation,
} from './timezone.ts';

export const PRODID = '-//activesync-edge//ActiveSync//EN';

// ---------------------------------------------------------------------------------------------------------------
// Objects

/** An iCalendar object as ical.js reads it (the VCALENDAR). */
export interface ParsedCalendar {
  calendar: ICAL.Component;
}

/** Parses an iCalendar object (the first VCALENDAR of the text). Throws on text ical.js cannot read. */
export function parseCalendar(text: string): ParsedCalendar {
  const parsed = ICAL.parse(text) as unknown[];
  // ICAL.parse returns one component, or an array of them when the text holds several.
  const jcal = (Array.isArray(parsed[0]) ? parsed[0] : parsed) as unknown[];
  const calendar = new ICAL.Component(jcal);
  if (calendar.name !== 'vcalendar') throw new Error(`not an iCalendar object: ${calendar.name}`);
  return { calendar };
}

/** parseCalendar, or undefined for text that is not iCalendar (an item the sync skips rather than fails on). */
export function tryParseCalendar(text: string): ParsedCalendar | undefined {
  try {
    return parseCalendar(text);
  } catch {
    return undefined;
  }
}

/** An empty VCALENDAR (VERSION, PRODID). */
export function newCalendar(): ParsedCalendar {
  const calendar = new ICAL.Component('vcalendar');
  calendar.addPropertyWithValue('version', '2.0');
  calendar.addPropertyWithValue('prodid', PRODID);
  return { calendar };
}

/** The object as text (CRLF lines, folded). */
export function serializeCalendar({ calendar }: ParsedCalendar): string {
  // VTIMEZONEs first, as every producer writes them (the object is not used after this, so its jCal may be reordered).
  const components = calendar.jCal[2] as unknown[][];
  const isZone = (c: unknown[]): boolean => c[0] === 'vtimezone';
  components.splice(0, components.length, ...components.filter(isZone), ...components.filter((c) => !isZone(c)));
  return withoutBareCarriageReturns(ICAL.stringify(calendar.jCal));
}

/**
 * Ends the text with CRLF and drops every CR that does not end a line. ical.js escapes LF in values but not CR, so a
 * device's `Subject` of "a\r\nX: y" would otherwise put a bare CR into the line: servers refuse the object, and a
 * reader that breaks lines at CR would see a property the device smuggled in.
 */
export function withoutBareCarriageReturns(text: string): string {
  const clean = text.replace(/\r(?!\n)/g, '');
  return clean.endsWith('\r\n') ? clean : `${clean}\r\n`;
}

/**
 * Adds a VTIMEZONE for every TZID that the object uses but does not define (RFC 5545 requires one; some clients
 * leave it out): from the built-in table or the runtime's tz database. TZIDs neither knows stay undefined, and
 * their times read as floating (the user's zone, else UTC). Must run before any time of the object is read.
 */
export function addMissingTimezones({ calendar }: ParsedCalendar, year: number): void {
  const defined = new Set(
    calendar.getAllSubcomponents('vtimezone').map((z) => String(z.getFirstPropertyValue('tzid'))),
  );
  const used = new Set<string>();
  const visit = (component: ICAL.Component): void => {
    for (const property of component.getAllProperties()) {
      const tzid = property.getFirstParameter('tzid');
      if (typeof tzid === 'string' && tzid) used.add(tzid);
    }
    for (const sub of component.getAllSubcomponents()) if (sub.name !== 'vtimezone') visit(sub);
  };
  visit(calendar);
  for (const tzid of used) {
    if (defined.has(tzid) || tzid.toUpperCase() === 'UTC' || tzid === 'Z' || tzid.toUpperCase() === 'GMT') continue;
    const vtimezone = vtimezoneForTzid(tzid, year);
    if (vtimezone) calendar.addSubcomponent(vtimezone);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Zones

/**
 * The zone a series' times are read and written in: UTC (`…Z`), a TZID with its VTIMEZONE, or floating (local times
 * without zone, read in a fallback zone: the user's, else UTC).
 */
export interface Zone {
  kind: 'utc' | 'tzid' | 'floating';
  /** For kind 'tzid'. */
  tzid?: string;
  /** The ical.js zone TZID times are bound to. */
  ical?: ICAL.Timezone;
  /** The rules in force in a year, as a blob. */
  rulesIn(year: number): TimeZoneInformation;
}

export const UTC_ZONE: Zone = { kind: 'utc', rulesIn: () => UTC_TIME_ZONE };

/** The user's zone (an IANA name) for floating and all-day times; UTC when absent or unknown. */
export function userZone(tzid: string | undefined): Zone {
  if (!tzid) return UTC_ZONE;
  const known = timeZoneInformationForTzid(tzid, new Date().getUTCFullYear());
  if (!known) return UTC_ZONE;
  return { kind: 'floating', rulesIn: (year) => timeZoneInformationForTzid(tzid, year) ?? UTC_TIME_ZONE };
}

/** The zone of a TZID defined in the object (call addMissingTimezones first); undefined when it is not. */
export function zoneOfTzid({ calendar }: ParsedCalendar, tzid: string): Zone | undefined {
  const vtimezone = calendar.getAllSubcomponents('vtimezone').find((z) => z.getFirstPropertyValue('tzid') === tzid);
  if (!vtimezone) return undefined;
  const ical = calendar.getTimeZoneByID(tzid);
  return { kind: 'tzid', tzid, ical, rulesIn: (year) => timeZoneInformationFromVtimezone(vtimezone, year) };
}

/** The zone a time property is in; floating (in `fallback`'s rules) when it has no zone or an unknown one. */
export function zoneOfTime(parsed: ParsedCalendar, time: ICAL.Time, fallback: Zone): Zone {
  if (time.zone === ICAL.Timezone.utcTimezone) return UTC_ZONE;
  const tzid = time.zone?.tzid;
  if (tzid && tzid !== 'floating') {
    const zone = zoneOfTzid(parsed, tzid);
    if (zone) return zone;
  }
  return floatingIn(fallback);
}

export function floatingIn(fallback: Zone): Zone {
  return { kind: 'floating', rulesIn: fallback.rulesIn };
}

function fieldsOf(time: ICAL.Time): LocalDateTime {
  return {
    year: time.year,
    month: time.month,
    day: time.day,
    hour: time.hour,
    minute: time.minute,
    second: time.second,
  };
}

/** The instant of a time written in `zone` (DATE values at local midnight). */
export function instantIn(zone: Zone, time: ICAL.Time): Date {
  const fields = time.isDate ? { ...fieldsOf(time), hour: 0, minute: 0, second: 0 } : fieldsOf(time);
  if (zone.kind === 'utc') return new Date(fieldsToMillis(fields));
  if (zone.kind === 'tzid' && zone.ical && !time.isDate) {
    const bound = ICAL.Time.fromData(fields, zone.ical);
    return new Date(bound.toUnixTime() * 1000);
  }
  return fromLocalTime(zone.rulesIn(time.year), fields);
}

/** An instant as a time in `zone` (local fields, zone attached), or as the DATE of its local day. */
export function timeIn(zone: Zone, instant: Date, asDate = false): ICAL.Time {
  const local = zone.kind === 'utc' ? utcFields(instant) : toLocalTime(zone.rulesIn(instant.getUTCFullYear()), instant);
  if (asDate) return ICAL.Time.fromData({ year: local.year, month: local.month, day: local.day, isDate: true });
  if (zone.kind === 'utc') return ICAL.Time.fromData({ ...local, isDate: false }, ICAL.Timezone.utcTimezone);
  if (zone.kind === 'tzid' && zone.ical) return ICAL.Time.fromData({ ...local, isDate: false }, zone.ical);
  return ICAL.Time.fromData({ ...local, isDate: false });
}

/**
 * Sets a date/date-time property: TZID for zoned times, VALUE=DATE for dates, Z for UTC. An existing property is
 * updated where it is (its other parameters stay), so that a merge changes no more of the text than it must.
 */
export function setTimeProperty(component: ICAL.Component, name: string, time: ICAL.Time, zone: Zone): ICAL.Property {
  const [first, ...duplicates] = component.getAllProperties(name);
  for (const duplicate of duplicates) component.removeProperty(duplicate);
  if (!first) return addTimeProperty(component, name, time, zone);
  first.removeParameter('tzid');
  first.removeParameter('value');
  first.resetType(time.isDate ? 'date' : 'date-time'); // clears the value: the type goes first
  first.setValue(time);
  if (!time.isDate && zone.kind === 'tzid' && zone.tzid) first.setParameter('tzid', zone.tzid);
  return first;
}

export function addTimeProperty(component: ICAL.Component, name: string, time: ICAL.Time, zone: Zone): ICAL.Property {
  const property = new ICAL.Property(name, component);
  // resetType clears the value, so the type goes first.
  if (time.isDate) property.resetType('date');
  property.setValue(time);
  if (time.isDate) return component.addProperty(property);
  if (zone.kind === 'tzid' && zone.tzid) property.setParameter('tzid', zone.tzid);
  component.addProperty(property);
  return property;
}

/** The first value of a date/date-time property, or undefined. */
export function timeValue(component: ICAL.Component, name: string): ICAL.Time | undefined {
  const value = component.getFirstPropertyValue(name);
  return value instanceof ICAL.Time ? value : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Simple properties

/** The text of a property (first value), or undefined when absent or empty. */
export function textValue(component: ICAL.Component, name: string): string | undefined {
  const value = component.getFirstPropertyValue(name);
  if (value === null || value === undefined) return undefined;
  const text = String(value);
  return text === '' ? undefined : text;
}

/** Sets a text property where it is (parameters such as LANGUAGE stay); removes it when the value is empty. */
export function setText(component: ICAL.Component, name: string, value: string | undefined): void {
  const [first, ...duplicates] = component.getAllProperties(name);
  if (value === undefined || value === '') {
    component.removeAllProperties(name);
    return;
  }
  for (const duplicate of duplicates) component.removeProperty(duplicate);
  if (first) first.setValue(value);
  else component.addPropertyWithValue(name, value);
}

/** Every category of every CATEGORIES property. */
export function categoriesOf(component: ICAL.Component): string[] {
  return component
    .getAllProperties('categories')
    .flatMap((p) => p.getValues().map(String))
    .map((c) => c.trim())
    .filter((c) => c !== '');
}

/** Replaces the categories with one CATEGORIES property (none when empty). */
export function setCategories(component: ICAL.Component, categories: readonly string[]): void {
  if (JSON.stringify(categoriesOf(component)) === JSON.stringify(categories)) return;
  component.removeAllProperties('categories');
  if (categories.length === 0) return;
  const property = new ICAL.Property('categories', component);
  property.setValues([...categories]);
  component.addProperty(property);
}

/** The categories of a `Categories` element (Calendar, Contacts or Tasks namespace). */
export function categoriesFrom(element: WbxmlElement): string[] {
  return element.children
    .filter((c) => c.tag === 'Category')
    .map((c) => (c.text ?? '').trim())
    .filter((c) => c !== '');
}

/**
 * Sensitivity ⇄ CLASS: 0 PUBLIC, 1 personal = X-PERSONAL (RFC 5545 has no "personal"; clients treat unknown
 * classes as PRIVATE, which is the safe reading), 2 PRIVATE, 3 CONFIDENTIAL.
 */
export function sensitivityOf(component: ICAL.Component): number {
  switch (textValue(component, 'class')?.toUpperCase()) {
    case 'X-PERSONAL':
      return 1;
    case 'PRIVATE':
      return 2;
    case 'CONFIDENTIAL':
      return 3;
    default:
      return 0;
  }
}

export function setSensitivity(component: ICAL.Component, sensitivity: number): void {
  const value = ['PUBLIC', 'X-PERSONAL', 'PRIVATE', 'CONFIDENTIAL'][sensitivity];
  // PUBLIC is the default: written only when the object had a CLASS already.
  if (value === 'PUBLIC' && !component.hasProperty('class')) return;
  setText(component, 'class', value ?? 'PUBLIC');
}

// ---------------------------------------------------------------------------------------------------------------
// Bodies

/** DESCRIPTION, and Outlook's HTML variant X-ALT-DESC;FMTTYPE=text/html, as a body source; undefined when empty. */
export function bodySourceOf(component: ICAL.Component): BodySource | undefined {
  const text = textValue(component, 'description');
  const altDescription = component
    .getAllProperties('x-alt-desc')
    .find((p) => String(p.getFirstParameter('fmttype') ?? '').toLowerCase() === 'text/html');
  const html = altDescription ? String(altDescription.getFirstValue() ?? '') || undefined : undefined;
  if (text === undefined && html === undefined) return undefined;
  const source: BodySource = { mime: new Uint8Array(0), isSmime: false };
  if (text !== undefined) source.text = text;
  if (html !== undefined) source.html = html;
  return source;
}

/** A body the device sent: plain text, with the HTML when it sent HTML. */
export interface DeviceBody {
  text: string;
  html?: string;
}

/**
 * The `airsyncbase:Body` a device sent, or undefined when it cannot be taken as the new body: RTF or MIME (not
 * decoded here) or Truncated=1 (a partial body must not replace the whole one).
 */
export function deviceBody(body: WbxmlElement): DeviceBody | undefined {
  const type = childText(body, 'Type', 'AirSyncBase')?.trim() ?? '1';
  if (childText(body, 'Truncated', 'AirSyncBase')?.trim() === '1') return undefined;
  const data = childText(body, 'Data', 'AirSyncBase') ?? '';
  if (type === '1') return { text: data };
  if (type === '2') return { text: htmlToPlainText(data), html: data };
  return undefined;
}

/**
 * Writes a device body as DESCRIPTION (+ X-ALT-DESC for HTML); an empty body removes both. A body the device
 * sends back unchanged (the plain text or the HTML it was given) leaves both as they are, HTML included.
 */
export function setDescription(component: ICAL.Component, body: DeviceBody | undefined): void {
  const current = bodySourceOf(component);
  if (body && current) {
    const sameText = body.html === undefined && body.text === (current.text ?? htmlToPlainText(current.html ?? ''));
    const sameHtml = body.html !== undefined && body.html === current.html;
    if (sameText || sameHtml) return;
  }
  setText(component, 'description', body?.text);
  component.removeAllProperties('x-alt-desc');
  if (body?.html) {
    const property = component.addPropertyWithValue('x-alt-desc', body.html);
    property.setParameter('fmttype', 'text/html');
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Alarms

/** The instant an alarm fires, given the instants its trigger may be relative to. */
export function alarmInstant(alarm: ICAL.Component, anchors: { start?: Date; end?: Date }): Date | undefined {
  const trigger = alarm.getFirstProperty('trigger');
  const value = trigger?.getFirstValue();
  if (value instanceof ICAL.Time) return new Date(value.toUnixTime() * 1000);
  if (!(value instanceof ICAL.Duration)) return undefined;
  const related = String(trigger?.getFirstParameter('related') ?? 'START').toUpperCase();
  const anchor = related === 'END' ? anchors.end : anchors.start;
  return anchor ? new Date(anchor.getTime() + value.toSeconds() * 1000) : undefined;
}

/** The alarms a device can show (DISPLAY, AUDIO, EMAIL; not Apple's "NONE" placeholders), in order. */
export function userAlarms(component: ICAL.Component): ICAL.Component[] {
  return component
    .getAllSubcomponents('valarm')
    .filter((a) =>
      ['DISPLAY', 'AUDIO', 'EMAIL'].includes(String(a.getFirstPropertyValue('action') ?? '').toUpperCase()),
    );
}

/** A DISPLAY alarm with a relative (`-PT15M`) or absolute trigger. */
export function displayAlarm(trigger: ICAL.Duration | ICAL.Time, description: string): ICAL.Component {
  const alarm = new ICAL.Component('valarm');
  alarm.addPropertyWithValue('action', 'DISPLAY');
  const property = new ICAL.Property('trigger', alarm);
  if (trigger instanceof ICAL.Time) property.resetType('date-time'); // before the value, which resetType clears
  property.setValue(trigger);
  alarm.addProperty(property);
  alarm.addPropertyWithValue('description', description);
  return alarm;
}

/** A fresh UID for objects a device creates without one. */
export function newUid(): string {
  return crypto.randomUUID();
}

/** An RFC 5322 address or a mailto: URI as a bare address (`"Ann" <ann@x>` → ann@x). */
export function bareAddress(value: string): string {
  const angle = /<([^>]*)>/.exec(value);
  const address = (angle ? angle[1]! : value).trim();
  return address.replace(/^mailto:/i, '');
}
