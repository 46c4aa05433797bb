/**
 * What reading (calendar-read.ts: iCalendar → MS-ASCAL ApplicationData) and writing (calendar-write.ts: the device's
 * Add/Change → iCalendar) an event share: the series (master VEVENT, overrides, their zone and times), people,
 * reminders, and the values both directions map.
 *
 * - UID: sent in every version (16.0 servers generate it; ours is the iCalendar UID). On Add, 16.0's ClientUid (else
 *   UID) becomes the iCalendar UID, so that a resent Add finds the same object. ClientUid is request-only in MS-ASCAL
 *   and never sent.
 * - Location: a string up to 14.1; in 16.0 an airsyncbase:Location with DisplayName (and GEO as Latitude/Longitude).
 * - BusyStatus ⇄ X-MICROSOFT-CDO-BUSYSTATUS, else TRANSP (TRANSPARENT = free) and STATUS:TENTATIVE.
 *   Sensitivity ⇄ CLASS (personal = X-PERSONAL). Reminder ⇄ the first DISPLAY/AUDIO/EMAIL VALARM.
 * - MeetingStatus: 0 without attendees; 1 when the user organizes (no ORGANIZER, or one of `userEmails`, or no
 *   `userEmails` known), 3 when someone else does; +4 when STATUS:CANCELLED.
 */
import ICAL from 'ical.js';
import {
  alarmInstant,
  bareAddress,
  floatingIn,
  instantIn,
  textValue,
  timeIn,
  timeValue,
  userAlarms,
  zoneOfTime,
  type ParsedCalendar,
  type Zone,
} from './icalendar.ts';
import type { SeriesTimes } from './recurrence.ts';

/** BusyStatus ⇄ X-MICROSOFT-CDO-BUSYSTATUS, by index. */
export const BUSY_STATUS = ['FREE', 'TENTATIVE', 'BUSY', 'OOF', 'WORKINGELSEWHERE'] as const;
/** MeetingStatus bits: a meeting, received (someone else organizes), cancelled. */
export const MEETING = 1;
export const RECEIVED = 2;
export const CANCELLED = 4;

/** AttendeeStatus ⇄ PARTSTAT. 0 (unknown) is an absent PARTSTAT. */
export const ATTENDEE_STATUS: Readonly<Record<string, number>> = {
  TENTATIVE: 2,
  ACCEPTED: 3,
  DECLINED: 4,
  'NEEDS-ACTION': 5,
};
/** ResponseType ⇄ the user's PARTSTAT (1 = organizer). */
export const RESPONSE_TYPE: Readonly<Record<string, number>> = {
  TENTATIVE: 2,
  ACCEPTED: 3,
  DECLINED: 4,
  'NEEDS-ACTION': 5,
};

export function versionNumber(version: string): number {
  return Math.round(Number.parseFloat(version) * 10);
}

/** The series and how its times read. */
export interface Series {
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
export function rawYear(component: ICAL.Component | undefined, name: string): number | undefined {
  const raw = component?.getFirstProperty(name)?.jCal[3];
  const year = typeof raw === 'string' ? Number.parseInt(raw.slice(0, 4), 10) : NaN;
  return Number.isFinite(year) ? year : undefined;
}

export function findEvents(parsed: ParsedCalendar): {
  master: ICAL.Component | undefined;
  overrides: ICAL.Component[];
} {
  const events = parsed.calendar.getAllSubcomponents('vevent');
  const master = events.find((e) => !e.hasProperty('recurrence-id')) ?? events[0];
  if (!master || master.hasProperty('recurrence-id')) return { master, overrides: [] };
  const uid = textValue(master, 'uid');
  return {
    master,
    overrides: events.filter((e) => e !== master && e.hasProperty('recurrence-id') && textValue(e, 'uid') === uid),
  };
}

/** The instant of an event's end: DTEND, else DTSTART + DURATION, else a day after a date, else its start. */
export function endOf(
  parsed: ParsedCalendar,
  event: ICAL.Component,
  start: ICAL.Time,
  startInstant: Date,
  zone: Zone,
  fallback: Zone,
): Date {
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

export function readSeries(
  parsed: ParsedCalendar,
  master: ICAL.Component,
  overrides: ICAL.Component[],
  fallback: Zone,
): Series | undefined {
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
export function occurrenceInstant(series: Series, value: ICAL.Time): Date {
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

/** Minutes before the start of the first user alarm; undefined without one (or when it fires after the start). */
export function reminderOf(event: ICAL.Component, start: Date, end: Date): number | undefined {
  const [alarm] = userAlarms(event);
  const fires = alarm ? alarmInstant(alarm, { start, end }) : undefined;
  if (!fires) return undefined;
  const minutes = Math.round((start.getTime() - fires.getTime()) / 60_000);
  return minutes >= 0 ? minutes : undefined;
}

export interface Person {
  email: string;
  name?: string;
}

export function personOf(property: ICAL.Property): Person | undefined {
  const value = String(property.getFirstValue() ?? '');
  const email = bareAddress(/^mailto:/i.test(value) ? value : String(property.getFirstParameter('email') ?? value));
  if (!email.includes('@')) return undefined;
  const name = property.getFirstParameter('cn');
  return typeof name === 'string' && name ? { email, name } : { email };
}

export function organizerOf(event: ICAL.Component): Person | undefined {
  const property = event.getFirstProperty('organizer');
  return property ? personOf(property) : undefined;
}

export function isUser(email: string | undefined, userEmails: readonly string[] | undefined): boolean {
  return !!email && !!userEmails?.some((u) => u.toLowerCase() === email.toLowerCase());
}
