/**
 * FilterType for calendars and tasks (MS-ASCMD §2.2.3.70.1): which items a device with a past
 * window, or "incomplete tasks only", gets.
 *
 * - Calendar windows reach back from now (0 all, 4 two weeks, 5 one month, 6 three months, 7 six months; 1–3 are
 *   read as 1 day, 3 days, 1 week) and never end in the future. An event is in the window when any occurrence ends
 *   at or after the window's start: a recurring event counts by its last occurrence (moved occurrences included,
 *   deleted ones not), and an unbounded one always counts.
 * - Tasks with FilterType 8: only those not completed (no STATUS:COMPLETED, no COMPLETED date).
 */
import ICAL from 'ical.js';
import { addMissingTimezones, tryParseCalendar } from './icalendar.ts';

const DAY_MS = 86_400_000;

/**
 * How far back a calendar FilterType reaches, in days; undefined for "everything" (0) and values that are not windows.
 */
const WINDOW_DAYS: Readonly<Record<number, number>> = { 1: 1, 2: 3, 3: 7, 4: 14, 5: 31, 6: 93, 7: 186 };

/** FilterType 8: incomplete tasks only. */
export const INCOMPLETE_TASKS = 8;

/** The start of a calendar FilterType's window (epoch ms), or undefined when the filter keeps everything. */
export function calendarWindowStart(filterType: number | undefined, now = Date.now()): number | undefined {
  const days = filterType === undefined ? undefined : WINDOW_DAYS[filterType];
  return days === undefined ? undefined : now - days * DAY_MS;
}

/** Most occurrences looked at for one series; a longer finite series is treated as never ending. */
const MAX_OCCURRENCES = 5_000;

/**
 * When the event's last occurrence ends (epoch ms); Infinity for a series without end (or one too long to walk);
 * undefined when the text holds no event.
 */
export function lastOccurrenceEnd(ics: string): number | undefined {
  const parsed = tryParseCalendar(ics);
  if (!parsed) return undefined;
  const events = parsed.calendar.getAllSubcomponents('vevent');
  const master = events.find((e) => !e.hasProperty('recurrence-id')) ?? events[0];
  if (!master) return undefined;
  // Zones first: ical.js binds a TZID to the object's VTIMEZONE when the value is first read.
  const rawStart = master.getFirstProperty('dtstart')?.jCal[3];
  addMissingTimezones(
    parsed,
    typeof rawStart === 'string'
      ? Number(rawStart.slice(0, 4)) || new Date().getUTCFullYear()
      : new Date().getUTCFullYear(),
  );
  if (!(master.getFirstPropertyValue('dtstart') instanceof ICAL.Time)) return undefined;
  const event = new ICAL.Event(master);
  for (const override of events)
    if (override !== master && override.hasProperty('recurrence-id')) event.relateException(override);
  const endOf = (occurrenceEnd: ICAL.Time): number => occurrenceEnd.toJSDate().getTime();
  if (!event.isRecurring()) return endOf(event.endDate);
  const rule = master.getFirstPropertyValue('rrule');
  if (rule instanceof ICAL.Recur && !rule.until && !rule.count) return Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  const iterator = event.iterator();
  for (let i = 0; i < MAX_OCCURRENCES; i++) {
    const next = iterator.next();
    if (!next) return last === Number.NEGATIVE_INFINITY ? endOf(event.endDate) : last;
    last = Math.max(last, endOf(event.getOccurrenceDetails(next).endDate));
  }
  return Number.POSITIVE_INFINITY;
}

/** Is the task completed (STATUS:COMPLETED or a COMPLETED date)? */
export function isCompletedTask(ics: string): boolean {
  const parsed = tryParseCalendar(ics);
  const todo = parsed?.calendar.getFirstSubcomponent('vtodo');
  if (!todo) return false;
  return (
    String(todo.getFirstPropertyValue('status') ?? '').toUpperCase() === 'COMPLETED' || todo.hasProperty('completed')
  );
}

/** What a FilterType keeps of one folder class; undefined when it keeps everything. */
export interface ItemWindow {
  /** Whether the item belongs on the device, and (calendars) when it leaves the window, epoch ms. */
  judge(data: string): { inWindow: boolean; leavesAt?: number };
  /** Calendars: the window's start now; items that end before it age out. */
  start: number | undefined;
}

export function itemWindow(
  itemClass: string,
  filterType: number | undefined,
  now = Date.now(),
): ItemWindow | undefined {
  if (itemClass === 'Tasks') {
    if (filterType !== INCOMPLETE_TASKS) return undefined;
    return { start: undefined, judge: (data) => ({ inWindow: !isCompletedTask(data) }) };
  }
  if (itemClass !== 'Calendar') return undefined;
  const start = calendarWindowStart(filterType, now);
  if (start === undefined) return undefined;
  return {
    start,
    judge(data) {
      const end = lastOccurrenceEnd(data);
      // Unreadable items go to the device as they would without a filter (the converter decides).
      if (end === undefined) return { inWindow: true };
      return Number.isFinite(end) ? { inWindow: end >= start, leavesAt: end } : { inWindow: true };
    },
  };
}
