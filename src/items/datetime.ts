/**
 * ActiveSync dateTime values (MS-ASDTYPE §2.3): the compact form `20091112T000000Z` that Calendar uses
 * (StartTime, EndTime, DtStamp, Until, ExceptionStartTime, InstanceId) and the extended form
 * `2009-11-12T00:00:00.000Z` that Contacts and Tasks use. Both are UTC; both are accepted everywhere.
 */

/** `20091112T000000Z`: Calendar StartTime/EndTime/DtStamp/Until/ExceptionStartTime, AirSyncBase InstanceId. */
export function compactDateTime(date: Date): string {
  return date
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
}

/** `2009-11-12T00:00:00.000Z`: Contacts Birthday/Anniversary, Tasks dates. */
export function extendedDateTime(date: Date): string {
  return date.toISOString();
}

const COMPACT = /^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(?:\.\d+)?)?Z?$/;
const EXTENDED =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3})\d*)?)?)?(Z|[+-]\d{2}:?\d{2})?$/;

/**
 * A dateTime in either form, read as UTC (a missing zone designator is taken as UTC, as clients mean it).
 * Undefined for anything else.
 */
export function parseDateTime(text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const value = text.trim();
  const compact = COMPACT.exec(value);
  if (compact) {
    const [, y, mo, d, h = '0', mi = '0', s = '0'] = compact;
    return utcDate(+y!, +mo!, +d!, +h, +mi, +s, 0);
  }
  const extended = EXTENDED.exec(value);
  if (extended) {
    const [, y, mo, d, h = '0', mi = '0', s = '0', ms = '0', zone] = extended;
    const date = utcDate(+y!, +mo!, +d!, +h, +mi, +s, +ms.padEnd(3, '0'));
    if (!date || !zone || zone === 'Z') return date;
    const sign = zone[0] === '-' ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const offsetMinutes = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2)));
    return new Date(date.getTime() - offsetMinutes * 60_000);
  }
  return undefined;
}

function utcDate(y: number, mo: number, d: number, h: number, mi: number, s: number, ms: number): Date | undefined {
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 24 || mi > 59 || s > 60) return undefined;
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, s, ms));
  // Date.UTC maps years 0–99 to 1900–1999.
  if (y < 100) date.setUTCFullYear(y);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** Wall-clock fields of a moment in some zone, month 1–12. */
export interface LocalDateTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

/** The fields of `date` read in UTC. */
export function utcFields(date: Date): LocalDateTime {
  return {
    year: date.getUTCFullYear(),
    month: date.getUTCMonth() + 1,
    day: date.getUTCDate(),
    hour: date.getUTCHours(),
    minute: date.getUTCMinutes(),
    second: date.getUTCSeconds(),
  };
}

/** Wall-clock fields as if they were UTC, in epoch ms: the arithmetic form of a local time. */
export function fieldsToMillis(fields: LocalDateTime): number {
  const date = new Date(Date.UTC(fields.year, fields.month - 1, fields.day, fields.hour, fields.minute, fields.second));
  if (fields.year < 100) date.setUTCFullYear(fields.year);
  return date.getTime();
}
