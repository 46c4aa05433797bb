/**
 * MergedFreeBusy (MS-ASCMD §2.2.3.107): one digit per 30 minutes from StartTime, the highest status of any event
 * in the slot: 0 free, 1 tentative, 2 busy, 3 out of office (4, no data, is the caller's). Events come as iCalendar
 * text; recurring ones are expanded with ical.js (in their own VTIMEZONEs, so correct across DST).
 */
import ICAL from 'ical.js';
import { addMissingTimezones, tryParseCalendar } from './icalendar.ts';

export const SLOT_MS = 30 * 60_000;
/** The element's limit is 32 KB of digits. */
const MAX_SLOTS = 32 * 1024;
const MAX_OCCURRENCES = 10_000;

function busyDigit(event: ICAL.Component): number | undefined {
  const status = String(event.getFirstPropertyValue('status') ?? '').toUpperCase();
  if (status === 'CANCELLED') return undefined;
  const cdo = String(event.getFirstPropertyValue('x-microsoft-cdo-busystatus') ?? '').toUpperCase();
  const fromCdo: Record<string, number> = { FREE: 0, TENTATIVE: 1, BUSY: 2, OOF: 3, WORKINGELSEWHERE: 0 };
  if (cdo in fromCdo) return fromCdo[cdo];
  if (String(event.getFirstPropertyValue('transp') ?? '').toUpperCase() === 'TRANSPARENT') return 0;
  return status === 'TENTATIVE' ? 1 : 2;
}

/** The busy intervals [start, end) of the events of one iCalendar object that overlap [from, to). */
export function busyIntervals(ics: string, from: Date, to: Date): { start: number; end: number; digit: number }[] {
  const parsed = tryParseCalendar(ics);
  if (!parsed) return [];
  const events = parsed.calendar.getAllSubcomponents('vevent');
  const master = events.find((e) => !e.hasProperty('recurrence-id')) ?? events[0];
  if (!master) return [];
  const rawStart = master.getFirstProperty('dtstart')?.jCal[3];
  addMissingTimezones(
    parsed,
    typeof rawStart === 'string' ? Number(rawStart.slice(0, 4)) || from.getUTCFullYear() : from.getUTCFullYear(),
  );
  if (!(master.getFirstPropertyValue('dtstart') instanceof ICAL.Time)) return [];
  const event = new ICAL.Event(master);
  for (const override of events)
    if (override !== master && override.hasProperty('recurrence-id')) event.relateException(override);
  const out: { start: number; end: number; digit: number }[] = [];
  const add = (component: ICAL.Component, start: ICAL.Time, end: ICAL.Time): void => {
    const digit = busyDigit(component);
    const s = start.toJSDate().getTime();
    const e = end.toJSDate().getTime();
    if (digit !== undefined && digit > 0 && e > from.getTime() && s < to.getTime())
      out.push({ start: s, end: e, digit });
  };
  if (!event.isRecurring()) {
    add(master, event.startDate, event.endDate);
    return out;
  }
  const iterator = event.iterator();
  for (let i = 0; i < MAX_OCCURRENCES; i++) {
    const next = iterator.next();
    if (!next || next.toJSDate().getTime() >= to.getTime()) break;
    const details = event.getOccurrenceDetails(next);
    add(details.item.component, details.startDate, details.endDate);
  }
  return out;
}

/** The MergedFreeBusy string for [from, to) from the events' texts. */
export function mergedFreeBusy(icsTexts: readonly string[], from: Date, to: Date): string {
  const slots = Math.min(MAX_SLOTS, Math.max(0, Math.ceil((to.getTime() - from.getTime()) / SLOT_MS)));
  const digits = new Array<number>(slots).fill(0);
  for (const ics of icsTexts) {
    for (const busy of busyIntervals(ics, from, to)) {
      const first = Math.max(0, Math.floor((busy.start - from.getTime()) / SLOT_MS));
      const last = Math.min(slots - 1, Math.ceil((busy.end - from.getTime()) / SLOT_MS) - 1);
      for (let i = first; i <= last; i++) digits[i] = Math.max(digits[i]!, busy.digit);
    }
  }
  return digits.join('');
}
