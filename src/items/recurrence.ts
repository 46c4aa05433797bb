/**
 * ActiveSync `Recurrence` (MS-ASCAL §2.2.2.39, MS-ASTASK §2.2.2.20) ⇄ iCalendar RRULE, and the
 * original-start identifiers of exceptions (ExceptionStartTime ≤ 14.1, airsyncbase:InstanceId 16.0). Pure and
 * runtime-neutral; RRULE values are ical.js' Recur.
 *
 * The mapping, both ways:
 *
 * | Type | ActiveSync                              | RRULE                                                    |
 * |------|-----------------------------------------|----------------------------------------------------------|
 * | 0    | every Interval days                     | FREQ=DAILY;INTERVAL=n                                    |
 * | 0    | with DayOfWeek ("every weekday")        | FREQ=WEEKLY;BYDAY=MO,TU,… (read back as Type 1)          |
 * | 1    | weekly on DayOfWeek                     | FREQ=WEEKLY;INTERVAL=n;BYDAY=…                           |
 * | 2    | monthly on DayOfMonth                   | FREQ=MONTHLY;BYMONTHDAY=d                                |
 * | 3    | monthly on WeekOfMonth's DayOfWeek      | FREQ=MONTHLY;BYDAY=2TU (one day) / BYDAY=MO,…;BYSETPOS=2 |
 * | 3    | DayOfWeek 127 + WeekOfMonth 5           | FREQ=MONTHLY;BYMONTHDAY=-1 (the last day of the month)   |
 * | 5    | yearly on MonthOfYear/DayOfMonth        | FREQ=YEARLY;BYMONTH=m;BYMONTHDAY=d                       |
 * | 6    | yearly on WeekOfMonth's DayOfWeek       | FREQ=YEARLY;BYMONTH=m;BYDAY=-1SU (or BYSETPOS)           |
 *
 * WeekOfMonth 5 is "last" (-1). Occurrences ⇄ COUNT, Until ⇄ UNTIL, FirstDayOfWeek (14.1) ⇄ WKST. An RRULE outside
 * this table (BYDAY=1MO,3MO, BYMONTHDAY=1,15, BYHOUR, BYWEEKNO, BYYEARDAY, several BYMONTH, a 5th weekday, …) has no
 * ActiveSync form: `recurrenceFromRule` returns undefined and the caller sends the first occurrence only.
 * CalendarType other than 0/1 (Gregorian) and IsLeapMonth are read and written back but not interpreted (no RSCALE).
 *
 * UNTIL follows RFC 5545 §3.3.10: a DATE for all-day series, UTC for zoned ones, local for floating ones. Devices send
 * Until as anything from the last occurrence's start to midnight of its day, and they mean "up to and including that
 * day" (Outlook's semantics); so UNTIL is never earlier than the series' time of day on Until's local date.
 */
import ICAL from 'ical.js';
import { childText, el, type WbxmlElement } from '../wbxml/tree.ts';
import { compactDateTime, extendedDateTime, parseDateTime } from './datetime.ts';

export const RecurrenceType = { Daily: 0, Weekly: 1, Monthly: 2, MonthlyNth: 3, Yearly: 5, YearlyNth: 6 } as const;

/** DayOfWeek bits: Sunday 1 … Saturday 64. */
export const WEEKDAY_BITS = { SU: 1, MO: 2, TU: 4, WE: 8, TH: 16, FR: 32, SA: 64 } as const;
const DAY_CODES = ['SU', 'MO', 'TU', 'WE', 'TH', 'FR', 'SA'] as const;
type DayCode = (typeof DAY_CODES)[number];
const ALL_DAYS = 127;
const LAST_WEEK = 5;

/** A Recurrence element's content. Tasks add Start, Regenerate and DeadOccur. */
export interface Recurrence {
  type: number;
  interval: number;
  occurrences?: number;
  until?: Date;
  /** Bitmask of WEEKDAY_BITS. */
  dayOfWeek?: number;
  dayOfMonth?: number;
  /** 1–4, 5 = last. */
  weekOfMonth?: number;
  monthOfYear?: number;
  /** 0 Sunday … 6 Saturday (14.1+). */
  firstDayOfWeek?: number;
  /** 14.0+; 0 default. */
  calendarType?: number;
  isLeapMonth?: boolean;
  /** Tasks: when the recurrence starts (required there). */
  start?: Date;
  /** Tasks: the next occurrence is generated from the completion date. */
  regenerate?: boolean;
  /** Tasks: the recurrence has ended. */
  deadOccur?: boolean;
}

/** The times of the series an RRULE belongs to, for UNTIL conversions. */
export interface SeriesTimes {
  /** DTSTART as written: a DATE for all-day series, else a local (zoned or floating) or UTC date-time. */
  start: ICAL.Time;
  /** An instant as a time in DTSTART's zone (zone attached, local fields; a DATE when `asDate`). */
  toSeriesTime(instant: Date, asDate: boolean): ICAL.Time;
  /** The instant of a time in DTSTART's zone (DATE values at local midnight). */
  toInstant(time: ICAL.Time): Date;
}

function versionNumber(version: string): number {
  return Math.round(Number.parseFloat(version) * 10);
}

// ---------------------------------------------------------------------------------------------------------------
// WBXML

/** Reads a Calendar or Tasks `Recurrence` element; undefined without a valid Type. Both dateTime forms are accepted. */
export function readRecurrence(element: WbxmlElement): Recurrence | undefined {
  const int = (tag: string): number | undefined => {
    const text = childText(element, tag);
    if (text === undefined || text.trim() === '') return undefined;
    const value = Number.parseInt(text, 10);
    return Number.isFinite(value) ? value : undefined;
  };
  const type = int('Type');
  if (type === undefined || ![0, 1, 2, 3, 5, 6].includes(type)) return undefined;
  const recurrence: Recurrence = { type, interval: Math.max(1, int('Interval') ?? 1) };
  const set = <K extends keyof Recurrence>(key: K, value: Recurrence[K] | undefined): void => {
    if (value !== undefined) recurrence[key] = value;
  };
  set('occurrences', int('Occurrences'));
  set('until', parseDateTime(childText(element, 'Until')));
  set('dayOfWeek', int('DayOfWeek'));
  set('dayOfMonth', int('DayOfMonth'));
  set('weekOfMonth', int('WeekOfMonth'));
  set('monthOfYear', int('MonthOfYear'));
  set('firstDayOfWeek', int('FirstDayOfWeek'));
  set('calendarType', int('CalendarType'));
  const leap = int('IsLeapMonth');
  set('isLeapMonth', leap === undefined ? undefined : leap === 1);
  set('start', parseDateTime(childText(element, 'Start')));
  const regenerate = int('Regenerate');
  set('regenerate', regenerate === undefined ? undefined : regenerate === 1);
  const deadOccur = int('DeadOccur');
  set('deadOccur', deadOccur === undefined ? undefined : deadOccur === 1);
  return recurrence;
}

/**
 * The `Recurrence` element, children in the schema's order. Calendar dates are compact, Tasks dates extended.
 * CalendarType/IsLeapMonth are 14.0+, FirstDayOfWeek 14.1+; Tasks always carry Start, Regenerate and DeadOccur.
 */
export function recurrenceElement(
  recurrence: Recurrence,
  options: { namespace: 'Calendar' | 'Tasks'; version: string },
): WbxmlElement {
  const v = versionNumber(options.version);
  const r = recurrence;
  const optional = (value: number | undefined, make: (n: number) => WbxmlElement): WbxmlElement | undefined =>
    value === undefined ? undefined : make(value);
  const flag = (value: boolean | undefined): string => (value ? '1' : '0');
  if (options.namespace === 'Tasks') {
    const ns = 'Tasks';
    return el(ns, 'Recurrence', [
      el(ns, 'Type', r.type),
      r.start && el(ns, 'Start', extendedDateTime(r.start)),
      r.until && el(ns, 'Until', extendedDateTime(r.until)),
      optional(r.occurrences, (n) => el(ns, 'Occurrences', n)),
      el(ns, 'Interval', r.interval),
      optional(r.dayOfWeek, (n) => el(ns, 'DayOfWeek', n)),
      optional(r.dayOfMonth, (n) => el(ns, 'DayOfMonth', n)),
      optional(r.weekOfMonth, (n) => el(ns, 'WeekOfMonth', n)),
      optional(r.monthOfYear, (n) => el(ns, 'MonthOfYear', n)),
      el(ns, 'Regenerate', flag(r.regenerate)),
      el(ns, 'DeadOccur', flag(r.deadOccur)),
      v >= 140 && optional(r.calendarType, (n) => el(ns, 'CalendarType', n)),
      v >= 140 && r.isLeapMonth !== undefined && el(ns, 'IsLeapMonth', flag(r.isLeapMonth)),
      v >= 141 && optional(r.firstDayOfWeek, (n) => el(ns, 'FirstDayOfWeek', n)),
    ]);
  }
  const ns = 'Calendar';
  return el(ns, 'Recurrence', [
    el(ns, 'Type', r.type),
    optional(r.occurrences, (n) => el(ns, 'Occurrences', n)),
    el(ns, 'Interval', r.interval),
    optional(r.weekOfMonth, (n) => el(ns, 'WeekOfMonth', n)),
    optional(r.dayOfWeek, (n) => el(ns, 'DayOfWeek', n)),
    optional(r.monthOfYear, (n) => el(ns, 'MonthOfYear', n)),
    r.until && el(ns, 'Until', compactDateTime(r.until)),
    optional(r.dayOfMonth, (n) => el(ns, 'DayOfMonth', n)),
    v >= 140 && optional(r.calendarType, (n) => el(ns, 'CalendarType', n)),
    v >= 140 && r.isLeapMonth !== undefined && el(ns, 'IsLeapMonth', flag(r.isLeapMonth)),
    v >= 141 && optional(r.firstDayOfWeek, (n) => el(ns, 'FirstDayOfWeek', n)),
  ]);
}

// ---------------------------------------------------------------------------------------------------------------
// RRULE → ActiveSync

interface ByDay {
  ordinal: number | undefined;
  day: DayCode;
}

function parseByDay(values: readonly string[] | undefined): ByDay[] | undefined {
  const days: ByDay[] = [];
  for (const value of values ?? []) {
    const match = /^([+-]?\d{1,2})?(SU|MO|TU|WE|TH|FR|SA)$/.exec(value.toUpperCase());
    if (!match) return undefined;
    days.push({ ordinal: match[1] ? Number(match[1]) : undefined, day: match[2] as DayCode });
  }
  return days;
}

function maskOf(days: readonly DayCode[]): number {
  return days.reduce((mask, day) => mask | WEEKDAY_BITS[day], 0);
}

function daysOf(mask: number): DayCode[] {
  return DAY_CODES.filter((day) => (mask & WEEKDAY_BITS[day]) !== 0);
}

/** An ordinal (1–4, -1) as WeekOfMonth; undefined for ordinals ActiveSync cannot say (5th, 2nd-to-last…). */
function weekOfMonthOf(ordinal: number): number | undefined {
  if (ordinal === -1) return LAST_WEEK;
  return ordinal >= 1 && ordinal <= 4 ? ordinal : undefined;
}

/** The "which weekday of the month" part shared by Types 3 and 6, from BYDAY (+ BYSETPOS) or BYMONTHDAY=-1. */
function nthWeekday(
  days: ByDay[],
  setPos: number[] | undefined,
  monthDays: number[] | undefined,
): { weekOfMonth: number; dayOfWeek: number } | undefined {
  if (monthDays && monthDays.length > 0) {
    // BYMONTHDAY=-1: the last day of the month, whatever weekday.
    return days.length === 0 && !setPos && monthDays.length === 1 && monthDays[0] === -1
      ? { weekOfMonth: LAST_WEEK, dayOfWeek: ALL_DAYS }
      : undefined;
  }
  if (days.length === 1 && days[0]!.ordinal !== undefined && !setPos) {
    const week = weekOfMonthOf(days[0]!.ordinal);
    return week === undefined ? undefined : { weekOfMonth: week, dayOfWeek: WEEKDAY_BITS[days[0]!.day] };
  }
  if (days.length >= 1 && days.every((d) => d.ordinal === undefined) && setPos?.length === 1) {
    const week = weekOfMonthOf(setPos[0]!);
    return week === undefined ? undefined : { weekOfMonth: week, dayOfWeek: maskOf(days.map((d) => d.day)) };
  }
  return undefined;
}

const SUPPORTED_PARTS = new Set(['BYDAY', 'BYMONTHDAY', 'BYMONTH', 'BYSETPOS']);

/**
 * The ActiveSync form of an RRULE; undefined when the rule has none (see the module comment). The series' start
 * supplies what the rule leaves implicit (weekday, day of month, month).
 */
export function recurrenceFromRule(rule: ICAL.Recur, series: SeriesTimes): Recurrence | undefined {
  const parts = rule.parts as Record<string, unknown[] | undefined>;
  for (const [name, values] of Object.entries(parts))
    if (values && values.length > 0 && !SUPPORTED_PARTS.has(name)) return undefined;
  const days = parseByDay(rule.parts.BYDAY);
  if (!days) return undefined;
  const monthDays = rule.parts.BYMONTHDAY?.length ? rule.parts.BYMONTHDAY : undefined;
  const months = rule.parts.BYMONTH?.length ? rule.parts.BYMONTH : undefined;
  const setPos = rule.parts.BYSETPOS?.length ? rule.parts.BYSETPOS : undefined;
  const start = series.start;
  const startDay = DAY_CODES[start.dayOfWeek() - 1]!;

  let pattern: Omit<Recurrence, 'interval'> | undefined;
  switch (rule.freq) {
    case 'DAILY':
      if (monthDays || months || setPos || days.some((d) => d.ordinal !== undefined)) return undefined;
      if (days.length === 0) pattern = { type: RecurrenceType.Daily };
      // Daily on some weekdays is weekly on them, when every week counts.
      else if (rule.interval === 1)
        pattern = { type: RecurrenceType.Weekly, dayOfWeek: maskOf(days.map((d) => d.day)) };
      break;
    case 'WEEKLY':
      if (monthDays || months || setPos || days.some((d) => d.ordinal !== undefined)) return undefined;
      pattern = {
        type: RecurrenceType.Weekly,
        dayOfWeek: maskOf(days.length > 0 ? days.map((d) => d.day) : [startDay]),
      };
      break;
    case 'MONTHLY': {
      if (months) return undefined;
      if (days.length === 0 && !setPos && (!monthDays || (monthDays.length === 1 && monthDays[0]! > 0))) {
        pattern = { type: RecurrenceType.Monthly, dayOfMonth: monthDays?.[0] ?? start.day };
        break;
      }
      const nth = nthWeekday(days, setPos, monthDays);
      if (nth) pattern = { type: RecurrenceType.MonthlyNth, ...nth };
      break;
    }
    case 'YEARLY': {
      if (months && months.length > 1) return undefined;
      const monthOfYear = months?.[0] ?? start.month;
      if (days.length === 0 && !setPos && (!monthDays || (monthDays.length === 1 && monthDays[0]! > 0))) {
        pattern = { type: RecurrenceType.Yearly, monthOfYear, dayOfMonth: monthDays?.[0] ?? start.day };
        break;
      }
      if (!months && days.length > 0) return undefined; // BYDAY without BYMONTH: every such weekday of the year
      const nth = nthWeekday(days, setPos, monthDays);
      if (nth) pattern = { type: RecurrenceType.YearlyNth, monthOfYear, ...nth };
      break;
    }
    default:
      return undefined;
  }
  if (!pattern) return undefined;

  const recurrence: Recurrence = { ...pattern, interval: rule.interval || 1 };
  if (rule.count) recurrence.occurrences = rule.count;
  if (rule.until) recurrence.until = untilInstant(rule.until, series);
  const wkst = (rule.toJSON() as { wkst?: string }).wkst;
  if (wkst) recurrence.firstDayOfWeek = DAY_CODES.indexOf(wkst.toUpperCase() as DayCode);
  return recurrence;
}

/** UNTIL as an instant: a DATE bound of a timed series means "through that day", at the series' time of day. */
function untilInstant(until: ICAL.Time, series: SeriesTimes): Date {
  if (until.isDate && !series.start.isDate) {
    const atStartTime = series.start.clone();
    atStartTime.year = until.year;
    atStartTime.month = until.month;
    atStartTime.day = until.day;
    return series.toInstant(atStartTime);
  }
  if (until.zone === ICAL.Timezone.utcTimezone)
    return new Date(Date.UTC(until.year, until.month - 1, until.day, until.hour, until.minute, until.second));
  return series.toInstant(until);
}

// ---------------------------------------------------------------------------------------------------------------
// ActiveSync → RRULE

/** The RRULE for an ActiveSync recurrence of a series starting at `series.start`. */
export function recurrenceToRule(recurrence: Recurrence, series: SeriesTimes): ICAL.Recur {
  const r = recurrence;
  const start = series.start;
  const startDay = DAY_CODES[start.dayOfWeek() - 1]!;
  const data: Parameters<typeof ICAL.Recur.fromData>[0] = { interval: Math.max(1, r.interval) };
  const nthDays = (): Pick<typeof data, 'byday' | 'bysetpos' | 'bymonthday'> => {
    const week = r.weekOfMonth ?? Math.min(LAST_WEEK, Math.ceil(start.day / 7));
    const mask = r.dayOfWeek || WEEKDAY_BITS[startDay];
    const ordinal = week >= LAST_WEEK ? -1 : week;
    if (mask === ALL_DAYS && ordinal === -1) return { bymonthday: [-1] };
    const days = daysOf(mask);
    return days.length === 1 ? { byday: [`${ordinal}${days[0]}`] } : { byday: days, bysetpos: [ordinal] };
  };
  switch (r.type) {
    case RecurrenceType.Daily:
      if (r.dayOfWeek) Object.assign(data, { freq: 'WEEKLY', interval: 1, byday: daysOf(r.dayOfWeek) });
      else data.freq = 'DAILY';
      break;
    case RecurrenceType.Weekly:
      Object.assign(data, { freq: 'WEEKLY', byday: daysOf(r.dayOfWeek || WEEKDAY_BITS[startDay]) });
      break;
    case RecurrenceType.Monthly:
      Object.assign(data, { freq: 'MONTHLY', bymonthday: [r.dayOfMonth ?? start.day] });
      break;
    case RecurrenceType.MonthlyNth:
      Object.assign(data, { freq: 'MONTHLY', ...nthDays() });
      break;
    case RecurrenceType.Yearly:
      Object.assign(data, {
        freq: 'YEARLY',
        bymonth: [r.monthOfYear ?? start.month],
        bymonthday: [r.dayOfMonth ?? start.day],
      });
      break;
    default:
      Object.assign(data, { freq: 'YEARLY', bymonth: [r.monthOfYear ?? start.month], ...nthDays() });
  }
  if (r.occurrences !== undefined && r.occurrences > 0) data.count = r.occurrences;
  else if (r.until) data.until = untilTime(r.until, series);
  if (r.firstDayOfWeek !== undefined && r.firstDayOfWeek >= 0 && r.firstDayOfWeek <= 6) {
    data.wkst = ICAL.Recur.icalDayToNumericDay(DAY_CODES[r.firstDayOfWeek]!);
  }
  return ICAL.Recur.fromData(data);
}

/**
 * Until as UNTIL in the form RFC 5545 requires for this DTSTART, never before the series' time on Until's local day.
 */
function untilTime(until: Date, series: SeriesTimes): ICAL.Time {
  const start = series.start;
  const local = series.toSeriesTime(until, start.isDate);
  if (start.isDate) return local;
  const onThatDay = start.clone();
  onThatDay.year = local.year;
  onThatDay.month = local.month;
  onThatDay.day = local.day;
  const bound = new Date(Math.max(until.getTime(), series.toInstant(onThatDay).getTime()));
  if (start.zone?.tzid === 'floating') return series.toSeriesTime(bound, false);
  return ICAL.Time.fromJSDate(bound, true);
}

// ---------------------------------------------------------------------------------------------------------------
// Exceptions: which occurrence

/**
 * The original start of the occurrence an `Exception` (or a 16.0 Change/Delete) is about: `InstanceId` (16.0) or
 * `ExceptionStartTime` (≤ 14.1), whichever is present.
 */
export function exceptionOriginalStart(exception: WbxmlElement): Date | undefined {
  return parseDateTime(
    childText(exception, 'InstanceId', 'AirSyncBase') ?? childText(exception, 'ExceptionStartTime', 'Calendar'),
  );
}

/**
 * The element naming an exception's occurrence for the version: airsyncbase:InstanceId (16.0+) or ExceptionStartTime.
 */
export function exceptionStartElement(originalStart: Date, version: string): WbxmlElement {
  return versionNumber(version) >= 160
    ? el('AirSyncBase', 'InstanceId', compactDateTime(originalStart))
    : el('Calendar', 'ExceptionStartTime', compactDateTime(originalStart));
}

/** True when an Exception element says the occurrence is deleted. */
export function isDeletedException(exception: WbxmlElement): boolean {
  return childText(exception, 'Deleted', 'Calendar')?.trim() === '1';
}
