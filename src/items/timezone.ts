/**
 * The ActiveSync time zone (MS-ASDTYPE §2.7.6): a 172-byte Windows TIME_ZONE_INFORMATION, base64 in
 * Calendar `Timezone` ⇄ iCalendar VTIMEZONE / TZID. Pure and runtime-neutral; VTIMEZONE components are ical.js'.
 *
 * A blob holds one rule set (the rules "now"): a bias, and for zones with daylight saving time the two yearly
 * transitions in the "day-in-month" form (month, weekday, 1st–4th or 5 = last, local wall time). So:
 *
 * - VTIMEZONE → blob: the zone's transitions in a reference year (the event's year, or this year for recurring
 *   events) are read from ical.js' expansion of the VTIMEZONE, and turned back into day-in-month rules; a yearly RRULE
 *   in the VTIMEZONE settles "4th" vs "last" where the date alone cannot. Names come from the built-in table when the
 *   rules match a known zone (Windows clients show them), else the TZID.
 * - TZID without a VTIMEZONE (the calendar object lacks one): the built-in table of common zones' current rules
 *   (KNOWN_ZONES in known-zones.ts; IANA names, their aliases, Windows zone names, and TZIDs with a vendor prefix
 *   such as `/mozilla.org/20050126_1/Europe/Berlin`), then the runtime's own tz database through Intl (Node and
 *   workerd both ship ICU), scanning the reference year for transitions. A TZID that neither knows is **unknown**:
 *   `timeZoneInformationForTzid` returns undefined, and calendar-read.ts/task.ts read such times as floating (in the
 *   user's zone, else UTC).
 * - blob → VTIMEZONE: the best matching IANA zone of the table when bias and rules match (the caller's preferred
 *   TZID first, then the zone whose Windows name is the blob's StandardName, then the table's order), with the
 *   table's rules; otherwise a VTIMEZONE built from the blob's own rules under a descriptive TZID
 *   (`Etc/GMT-5` for whole-hour zones without DST, which is an IANA name; else the blob's StandardName or
 *   `UTC+05:45`). Names are never used for matching (iOS sends empty ones).
 */
import ICAL from 'ical.js';
import { fromBase64, toBase64 } from '../util/base64.ts';
import { utcFields, type LocalDateTime } from './datetime.ts';
import { KNOWN_ZONES, knownZone, VENDOR_PREFIXED, type KnownZone, type TransitionRule } from './known-zones.ts';

/** A Windows SYSTEMTIME as TIME_ZONE_INFORMATION uses it for transitions. Month 1–12, dayOfWeek 0 = Sunday. */
export interface SystemTime {
  /** 0 = the "day-in-month" form (the usual one); otherwise an absolute date in that year. */
  year: number;
  /** 0 = no transition (no DST). */
  month: number;
  dayOfWeek: number;
  /** In the day-in-month form: the week, 1–4, or 5 = the last such weekday of the month. */
  day: number;
  hour: number;
  minute: number;
  second: number;
  milliseconds: number;
}

/** TIME_ZONE_INFORMATION. Biases are minutes with UTC = local + bias (Berlin −60, US Pacific 480). */
export interface TimeZoneInformation {
  bias: number;
  standardName: string;
  /** When daylight saving time ends, in local daylight time. */
  standardDate: SystemTime;
  standardBias: number;
  daylightName: string;
  /** When daylight saving time starts, in local standard time. */
  daylightDate: SystemTime;
  daylightBias: number;
}

export const TIME_ZONE_INFORMATION_BYTES = 172;
const NAME_CHARS = 32;

const NO_TRANSITION: SystemTime = {
  year: 0,
  month: 0,
  dayOfWeek: 0,
  day: 0,
  hour: 0,
  minute: 0,
  second: 0,
  milliseconds: 0,
};

/** UTC, no DST, empty names: 172 zero bytes, which is what clients and Exchange send for UTC. */
export const UTC_TIME_ZONE: TimeZoneInformation = {
  bias: 0,
  standardName: '',
  standardDate: NO_TRANSITION,
  standardBias: 0,
  daylightName: '',
  daylightDate: NO_TRANSITION,
  daylightBias: 0,
};

// ---------------------------------------------------------------------------------------------------------------
// The blob

/** The 172 bytes of a TIME_ZONE_INFORMATION (little-endian). Names longer than 31 characters are cut. */
export function encodeTimeZoneInformation(tzi: TimeZoneInformation): Uint8Array {
  const bytes = new Uint8Array(TIME_ZONE_INFORMATION_BYTES);
  const view = new DataView(bytes.buffer);
  view.setInt32(0, tzi.bias, true);
  writeName(view, 4, tzi.standardName);
  writeSystemTime(view, 68, tzi.standardDate);
  view.setInt32(84, tzi.standardBias, true);
  writeName(view, 88, tzi.daylightName);
  writeSystemTime(view, 152, tzi.daylightDate);
  view.setInt32(168, tzi.daylightBias, true);
  return bytes;
}

/** Reads a TIME_ZONE_INFORMATION; undefined when there are fewer than 172 bytes (extra bytes are ignored). */
export function decodeTimeZoneInformation(bytes: Uint8Array): TimeZoneInformation | undefined {
  if (bytes.length < TIME_ZONE_INFORMATION_BYTES) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, TIME_ZONE_INFORMATION_BYTES);
  return {
    bias: view.getInt32(0, true),
    standardName: readName(view, 4),
    standardDate: readSystemTime(view, 68),
    standardBias: view.getInt32(84, true),
    daylightName: readName(view, 88),
    daylightDate: readSystemTime(view, 152),
    daylightBias: view.getInt32(168, true),
  };
}

/** The Calendar `Timezone` value: the blob in base64. */
export function timeZoneToBase64(tzi: TimeZoneInformation): string {
  return toBase64(encodeTimeZoneInformation(tzi));
}

/** A Calendar `Timezone` value read back; undefined when it is not base64 of at least 172 bytes. */
export function timeZoneFromBase64(text: string): TimeZoneInformation | undefined {
  const bytes = fromBase64(text);
  return bytes ? decodeTimeZoneInformation(bytes) : undefined;
}

function writeName(view: DataView, offset: number, name: string): void {
  const chars = name.slice(0, NAME_CHARS - 1); // keep the terminating NUL
  for (let i = 0; i < chars.length; i++) view.setUint16(offset + i * 2, chars.charCodeAt(i), true);
}

function readName(view: DataView, offset: number): string {
  let name = '';
  for (let i = 0; i < NAME_CHARS; i++) {
    const c = view.getUint16(offset + i * 2, true);
    if (c === 0) break;
    name += String.fromCharCode(c);
  }
  return name;
}

function writeSystemTime(view: DataView, offset: number, t: SystemTime): void {
  const fields = [t.year, t.month, t.dayOfWeek, t.day, t.hour, t.minute, t.second, t.milliseconds];
  fields.forEach((value, i) => {
    view.setUint16(offset + i * 2, value, true);
  });
}

function readSystemTime(view: DataView, offset: number): SystemTime {
  const f = (i: number): number => view.getUint16(offset + i * 2, true);
  return {
    year: f(0),
    month: f(1),
    dayOfWeek: f(2),
    day: f(3),
    hour: f(4),
    minute: f(5),
    second: f(6),
    milliseconds: f(7),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Rules arithmetic

export function hasDaylightSaving(tzi: TimeZoneInformation): boolean {
  return tzi.standardDate.month !== 0 && tzi.daylightDate.month !== 0;
}

/** Minutes to add to UTC for standard time (Berlin +60). */
export function standardOffset(tzi: TimeZoneInformation): number {
  return 0 - (tzi.bias + (hasDaylightSaving(tzi) ? tzi.standardBias : 0)); // 0 - x, not -x: no -0 for UTC
}

/** Minutes to add to UTC for daylight saving time (Berlin +120); the standard offset when there is no DST. */
export function daylightOffset(tzi: TimeZoneInformation): number {
  return hasDaylightSaving(tzi) ? 0 - (tzi.bias + tzi.daylightBias) : standardOffset(tzi);
}

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/** The day of the month on which a transition falls in `year`. */
export function transitionDay(rule: SystemTime, year: number): number {
  if (rule.year !== 0) return rule.day; // absolute form: that date, taken as recurring yearly
  const firstWeekday = new Date(Date.UTC(year, rule.month - 1, 1)).getUTCDay();
  let day = 1 + ((rule.dayOfWeek - firstWeekday + 7) % 7) + (rule.day - 1) * 7;
  while (day > daysInMonth(year, rule.month)) day -= 7; // week 5 = the last one
  return day;
}

/** The transition's local wall time in `year`, as epoch ms of the same fields in UTC. */
function transitionWallMillis(rule: SystemTime, year: number): number {
  return Date.UTC(
    year,
    rule.month - 1,
    transitionDay(rule, year),
    rule.hour,
    rule.minute,
    rule.second,
    rule.milliseconds,
  );
}

/** Minutes to add to UTC at `instant` under the blob's rules (local = UTC + offset). */
export function utcOffsetAt(tzi: TimeZoneInformation, instant: Date): number {
  const standard = standardOffset(tzi);
  if (!hasDaylightSaving(tzi)) return standard;
  const daylight = daylightOffset(tzi);
  const t = instant.getTime();
  const year = new Date(t + standard * 60_000).getUTCFullYear();
  const start = transitionWallMillis(tzi.daylightDate, year) - standard * 60_000;
  const end = transitionWallMillis(tzi.standardDate, year) - daylight * 60_000;
  // Northern zones have DST between start and end; southern ones (start in October) outside end…start.
  const inDaylight = start < end ? t >= start && t < end : t >= start || t < end;
  return inDaylight ? daylight : standard;
}

/** The wall-clock time of `instant` under the blob's rules. */
export function toLocalTime(tzi: TimeZoneInformation, instant: Date): LocalDateTime {
  return utcFields(new Date(instant.getTime() + utcOffsetAt(tzi, instant) * 60_000));
}

/**
 * The instant of a wall-clock time under the blob's rules; a time in the spring-forward gap is read as standard time.
 */
export function fromLocalTime(tzi: TimeZoneInformation, local: LocalDateTime): Date {
  const wall = Date.UTC(local.year, local.month - 1, local.day, local.hour, local.minute, local.second);
  for (const offset of [daylightOffset(tzi), standardOffset(tzi)]) {
    const instant = new Date(wall - offset * 60_000);
    if (utcOffsetAt(tzi, instant) === offset) return instant;
  }
  return new Date(wall - standardOffset(tzi) * 60_000);
}

/** Same offsets and transitions (names aside). */
export function sameTimeZoneRules(a: TimeZoneInformation, b: TimeZoneInformation): boolean {
  if (standardOffset(a) !== standardOffset(b) || hasDaylightSaving(a) !== hasDaylightSaving(b)) return false;
  if (!hasDaylightSaving(a)) return true;
  return (
    daylightOffset(a) === daylightOffset(b) &&
    sameTransition(a.standardDate, b.standardDate) &&
    sameTransition(a.daylightDate, b.daylightDate)
  );
}

function sameTransition(a: SystemTime, b: SystemTime): boolean {
  return (
    a.year === b.year &&
    a.month === b.month &&
    a.dayOfWeek === b.dayOfWeek &&
    a.day === b.day &&
    a.hour === b.hour &&
    a.minute === b.minute
  );
}

// ---------------------------------------------------------------------------------------------------------------
// The built-in table (known-zones.ts) as blobs

function systemTimeOf(rule: TransitionRule): SystemTime {
  return {
    year: 0,
    month: rule.month,
    dayOfWeek: rule.dayOfWeek,
    day: rule.week,
    hour: rule.hour,
    minute: 0,
    second: 0,
    milliseconds: 0,
  };
}

function knownZoneInformation(zone: KnownZone): TimeZoneInformation {
  const daylightName = zone.windows.replace(/Standard Time/, 'Daylight Time');
  if (!zone.dst) return { ...UTC_TIME_ZONE, bias: zone.bias, standardName: zone.windows, daylightName };
  return {
    bias: zone.bias,
    standardName: zone.windows,
    standardDate: systemTimeOf(zone.dst.end),
    standardBias: 0,
    daylightName,
    daylightDate: systemTimeOf(zone.dst.start),
    daylightBias: -60,
  };
}

/**
 * Every known zone whose rules are the blob's, best first (the preferred TZID, then a matching name, then table order).
 */
function matchingZones(tzi: TimeZoneInformation, preferredTzid?: string): KnownZone[] {
  const matches = KNOWN_ZONES.filter((zone) => sameTimeZoneRules(knownZoneInformation(zone), tzi));
  const preferred = preferredTzid ? knownZone(preferredTzid) : undefined;
  const rank = (zone: KnownZone): number =>
    zone === preferred ? 0 : tzi.standardName && zone.windows.toLowerCase() === tzi.standardName.toLowerCase() ? 1 : 2;
  return matches.sort((a, b) => rank(a) - rank(b));
}

// ---------------------------------------------------------------------------------------------------------------
// Zones → blob

/** A UTC offset source: minutes to add to UTC at an instant (epoch ms). */
type OffsetAt = (instant: number) => number;

interface Transition {
  /** Epoch ms of the change. */
  at: number;
  from: number;
  to: number;
}

/**
 * The blob for a TZID without a VTIMEZONE: the table's current rules, else the runtime's tz database (Intl) read
 * for `year`. Undefined when neither knows the TZID.
 */
export function timeZoneInformationForTzid(tzid: string, year: number): TimeZoneInformation | undefined {
  const known = knownZone(tzid);
  if (known) return knownZoneInformation(known);
  const ianaName = VENDOR_PREFIXED.exec(tzid.trim())?.[1] ?? tzid.trim();
  const offsetAt = intlOffsetSource(ianaName);
  if (!offsetAt) return undefined;
  return withNames(rulesFromTransitions(transitionsOf(offsetAt, year), offsetAt, year, new Map()), ianaName);
}

/**
 * The blob for a VTIMEZONE, with the rules in force in `year`. A copy is expanded: ical.js adjusts the UNTIL values
 * of the observances it expands in place, and the object's own zone may be expanded by ical.js as well.
 */
export function timeZoneInformationFromVtimezone(vtimezone: ICAL.Component, year: number): TimeZoneInformation {
  const key = `${year}\n${vtimezone.toString()}`;
  const cached = derivedCache.get(key);
  if (cached) return cached;
  const copy = new ICAL.Component(structuredClone(vtimezone.jCal));
  const tzid = String(copy.getFirstPropertyValue('tzid') ?? '');
  const zone = new ICAL.Timezone({ component: copy, tzid });
  const transitions = vtimezoneTransitions(zone, year);
  const offsetAt: OffsetAt = (instant) => offsetFromTransitions(zone, instant);
  const tzi = withNames(rulesFromTransitions(transitions, offsetAt, year, weekHints(copy)), tzid);
  if (derivedCache.size >= 512) derivedCache.clear();
  derivedCache.set(key, tzi);
  return tzi;
}

const derivedCache = new Map<string, TimeZoneInformation>();

/** Names from the best matching known zone (Windows clients show them), else the TZID. */
function withNames(tzi: TimeZoneInformation, tzid: string): TimeZoneInformation {
  if (standardOffset(tzi) === 0 && !hasDaylightSaving(tzi)) return { ...tzi, standardName: '', daylightName: '' };
  const [best] = matchingZones(tzi, tzid);
  if (best)
    return { ...tzi, standardName: best.windows, daylightName: best.windows.replace(/Standard Time/, 'Daylight Time') };
  const name = tzid.slice(0, NAME_CHARS - 1);
  return { ...tzi, standardName: name, daylightName: name };
}

/** ical.js' list of changes (UTC fields, offsets in seconds) for the zone, restricted to `year` ± 1. */
interface IcalZoneChange extends LocalDateTime {
  utcOffset: number;
  prevUtcOffset: number;
}

function zoneChanges(zone: ICAL.Timezone, year: number): IcalZoneChange[] {
  // utcOffset() expands the zone's observances up to the year asked for (and a few more).
  zone.utcOffset(ICAL.Time.fromData({ year: year + 1, month: 12, day: 31 }));
  return zone.changes as IcalZoneChange[];
}

function changeInstant(change: IcalZoneChange): number {
  return Date.UTC(change.year, change.month - 1, change.day, change.hour, change.minute, change.second);
}

function vtimezoneTransitions(zone: ICAL.Timezone, year: number): Transition[] {
  return zoneChanges(zone, year)
    .map((c) => ({ at: changeInstant(c), from: c.prevUtcOffset / 60, to: c.utcOffset / 60 }))
    .filter((t) => t.from !== t.to && new Date(t.at + t.from * 60_000).getUTCFullYear() === year);
}

function offsetFromTransitions(zone: ICAL.Timezone, instant: number): number {
  const year = new Date(instant).getUTCFullYear();
  let offset: number | undefined;
  for (const change of zoneChanges(zone, year)) {
    if (changeInstant(change) > instant) break;
    offset = change.utcOffset / 60;
  }
  return offset ?? (zone.changes[0] as IcalZoneChange | undefined)?.prevUtcOffset ?? 0;
}

/** The runtime's tz database as an offset source, or undefined when it does not know the zone. */
function intlOffsetSource(tzid: string): OffsetAt | undefined {
  let format: Intl.DateTimeFormat;
  try {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: tzid,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
  } catch {
    return undefined;
  }
  return (instant) => {
    const parts = format.formatToParts(new Date(instant));
    const field = (type: Intl.DateTimeFormatPartTypes): number =>
      Number(parts.find((p) => p.type === type)?.value ?? 0);
    const wall = Date.UTC(
      field('year'),
      field('month') - 1,
      field('day'),
      field('hour') % 24,
      field('minute'),
      field('second'),
    );
    return Math.round((wall - Math.floor(instant / 1000) * 1000) / 60_000);
  };
}

const MINUTE = 60_000;
const DAY = 86_400_000;

/** The offset changes whose local time falls in `year`, found day by day and narrowed to the minute. */
function transitionsOf(offsetAt: OffsetAt, year: number): Transition[] {
  const transitions: Transition[] = [];
  const end = Date.UTC(year + 1, 0, 2);
  let t = Date.UTC(year - 1, 11, 31);
  let offset = offsetAt(t);
  for (; t < end; t += DAY) {
    const next = offsetAt(t + DAY);
    if (next === offset) continue;
    let lo = t;
    let hi = t + DAY;
    while (hi - lo > MINUTE) {
      const mid = lo + Math.floor((hi - lo) / MINUTE / 2) * MINUTE;
      if (offsetAt(mid) === offset) lo = mid;
      else hi = mid;
    }
    const transition = { at: hi, from: offset, to: next };
    if (new Date(hi + offset * MINUTE).getUTCFullYear() === year) transitions.push(transition);
    offset = next;
  }
  return transitions;
}

/**
 * Day-in-month rules from a year's transitions: the first change to a larger offset starts DST, the first change
 * to a smaller one ends it. Without both, the zone has no DST this year and keeps the offset it has at the end of it.
 */
function rulesFromTransitions(
  transitions: Transition[],
  offsetAt: OffsetAt,
  year: number,
  hints: Map<number, number>,
): TimeZoneInformation {
  const toDaylight = transitions.find((t) => t.to > t.from);
  const toStandard = transitions.find((t) => t.to < t.from);
  if (!toDaylight || !toStandard) {
    return { ...UTC_TIME_ZONE, bias: 0 - offsetAt(Date.UTC(year, 11, 31, 12)) };
  }
  const standard = toStandard.to;
  return {
    bias: 0 - standard,
    standardName: '',
    standardDate: transitionRule(toStandard.at + toStandard.from * MINUTE, hints),
    standardBias: 0,
    daylightName: '',
    daylightDate: transitionRule(toDaylight.at + toDaylight.from * MINUTE, hints),
    daylightBias: -(toDaylight.to - standard),
  };
}

/**
 * A transition at this local wall time as a day-in-month rule. Days 22–28 that are also the month's last such weekday
 * are "last" unless a hint says 4th.
 */
function transitionRule(wallMillis: number, hints: Map<number, number>): SystemTime {
  const wall = new Date(wallMillis);
  const year = wall.getUTCFullYear();
  const month = wall.getUTCMonth() + 1;
  const day = wall.getUTCDate();
  let week = Math.ceil(day / 7);
  if (day + 7 > daysInMonth(year, month) && hints.get(month) !== week) week = 5;
  return {
    year: 0,
    month,
    dayOfWeek: wall.getUTCDay(),
    day: week,
    hour: wall.getUTCHours(),
    minute: wall.getUTCMinutes(),
    second: 0,
    milliseconds: 0,
  };
}

/**
 * Month → week (1–5) from the VTIMEZONE's yearly RRULEs (`BYDAY=-1SU` → 5, `BYDAY=4SU` → 4, `BYMONTHDAY=22..28` → 4).
 */
function weekHints(vtimezone: ICAL.Component): Map<number, number> {
  const hints = new Map<number, number>();
  for (const observance of vtimezone.getAllSubcomponents()) {
    const rule = observance.getFirstPropertyValue('rrule');
    if (!(rule instanceof ICAL.Recur)) continue;
    const month = rule.parts.BYMONTH?.[0];
    if (month === undefined) continue;
    const byDay = /^([+-]?\d)?[A-Z]{2}$/.exec(rule.parts.BYDAY?.[0] ?? '');
    const ordinal = byDay?.[1] ? Number(byDay[1]) : undefined;
    const monthDays = rule.parts.BYMONTHDAY;
    if (ordinal !== undefined) hints.set(month, ordinal < 0 ? 5 : ordinal);
    else if (monthDays && monthDays.length > 0)
      hints.set(month, monthDays[0]! < 0 ? 5 : Math.ceil(Math.min(...monthDays) / 7));
  }
  return hints;
}

// ---------------------------------------------------------------------------------------------------------------
// Blob → zone

const DAY_CODES = ['SU', 'MO', 'TU', 'WE', 'TH', 'FR', 'SA'] as const;

/** A zone to write into an iCalendar object. */
export interface ResolvedZone {
  tzid: string;
  vtimezone: ICAL.Component;
  /** True when the zone is UTC (bias 0, no DST): times are better written with `Z`. */
  isUtc: boolean;
  /** True when the TZID is an IANA name (from the table, or Etc/GMT±N). */
  isIana: boolean;
}

/**
 * The zone for a device's blob: the best matching known zone (`preferredTzid` first when its rules match, for
 * instance the user's zone or the event's current TZID), else a zone built from the blob's own rules.
 */
export function zoneFromTimeZoneInformation(tzi: TimeZoneInformation, preferredTzid?: string): ResolvedZone {
  const isUtc = standardOffset(tzi) === 0 && !hasDaylightSaving(tzi);
  const [best] = matchingZones(tzi, preferredTzid);
  if (best) {
    const preferred = preferredTzid && knownZone(preferredTzid) === best ? preferredTzid : best.tzids[0]!;
    return { tzid: preferred, vtimezone: vtimezoneOf(preferred, knownZoneInformation(best)), isUtc, isIana: true };
  }
  const offset = standardOffset(tzi);
  if (!hasDaylightSaving(tzi) && offset % 60 === 0 && offset >= -12 * 60 && offset <= 14 * 60) {
    // POSIX-style names: Etc/GMT-5 is UTC+05:00.
    const hours = -offset / 60;
    const tzid = `Etc/GMT${hours > 0 ? '+' : '-'}${Math.abs(hours)}`;
    return { tzid, vtimezone: vtimezoneOf(tzid, tzi), isUtc, isIana: true };
  }
  const tzid = tzi.standardName.trim() || `UTC${formatOffset(offset, ':')}`;
  return { tzid, vtimezone: vtimezoneOf(tzid, tzi), isUtc, isIana: false };
}

/**
 * A VTIMEZONE for a TZID that the calendar object lacks: the table's rules or the runtime's (for `year`), under that
 * very TZID so that the object's references resolve. Undefined for an unknown TZID.
 */
export function vtimezoneForTzid(tzid: string, year: number): ICAL.Component | undefined {
  const tzi = timeZoneInformationForTzid(tzid, year);
  return tzi ? vtimezoneOf(tzid, tzi) : undefined;
}

/** A VTIMEZONE with yearly RRULE observances for the blob's rules (one STANDARD observance without DST). */
export function vtimezoneOf(tzid: string, tzi: TimeZoneInformation): ICAL.Component {
  const vtimezone = new ICAL.Component('vtimezone');
  vtimezone.addPropertyWithValue('tzid', tzid);
  const standard = standardOffset(tzi);
  if (!hasDaylightSaving(tzi)) {
    vtimezone.addSubcomponent(
      observance('standard', standard, standard, { year: 1970, month: 1, day: 1, hour: 0, minute: 0, second: 0 }),
    );
    return vtimezone;
  }
  const daylight = daylightOffset(tzi);
  vtimezone.addSubcomponent(
    observance('daylight', standard, daylight, firstOccurrence(tzi.daylightDate), tzi.daylightDate),
  );
  vtimezone.addSubcomponent(
    observance('standard', daylight, standard, firstOccurrence(tzi.standardDate), tzi.standardDate),
  );
  return vtimezone;
}

/** The transition's date in 1970, where the observances start. */
function firstOccurrence(rule: SystemTime): LocalDateTime {
  return {
    year: 1970,
    month: rule.month,
    day: transitionDay(rule, 1970),
    hour: rule.hour,
    minute: rule.minute,
    second: rule.second,
  };
}

function observance(
  kind: 'standard' | 'daylight',
  from: number,
  to: number,
  start: LocalDateTime,
  rule?: SystemTime,
): ICAL.Component {
  const component = new ICAL.Component(kind);
  component.addPropertyWithValue('tzoffsetfrom', ICAL.UtcOffset.fromSeconds(from * 60));
  component.addPropertyWithValue('tzoffsetto', ICAL.UtcOffset.fromSeconds(to * 60));
  component.addPropertyWithValue('dtstart', ICAL.Time.fromData({ ...start, isDate: false }));
  if (rule) {
    const recur =
      rule.year !== 0
        ? ICAL.Recur.fromData({ freq: 'YEARLY', bymonth: [rule.month], bymonthday: [rule.day] })
        : ICAL.Recur.fromData({
            freq: 'YEARLY',
            bymonth: [rule.month],
            byday: [`${rule.day === 5 ? -1 : rule.day}${DAY_CODES[rule.dayOfWeek]}`],
          });
    component.addPropertyWithValue('rrule', recur);
  }
  return component;
}

/** `+05:45`, `-08:00` (or without the colon). */
function formatOffset(minutes: number, separator: '' | ':'): string {
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  return `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}${separator}${String(abs % 60).padStart(2, '0')}`;
}

/** The IANA name of the best matching known zone, if any. */
export function ianaZoneFor(tzi: TimeZoneInformation, preferredTzid?: string): string | undefined {
  const zone = zoneFromTimeZoneInformation(tzi, preferredTzid);
  return zone.isIana ? zone.tzid : undefined;
}
