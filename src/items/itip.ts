/**
 * iTIP (RFC 5546) over iMIP (RFC 6047): the scheduling messages that meetings travel in by mail. Pure and
 * runtime-neutral: ical.js for the objects, hand-written MIME (two short base64 parts) for the messages.
 *
 * - An attendee's answer is a REPLY carrying only that attendee, with the new PARTSTAT (a proposed new time is a
 *   COUNTER, RFC 5546 §3.2.7, with the proposed DTSTART/DTEND).
 * - The attendee's own calendar copy is the request without METHOD, with the attendee's PARTSTAT set.
 * - An organizer's event with attendees goes out as a REQUEST; a cancelled or deleted one as a CANCEL.
 */
import ICAL from 'ical.js';
import { toBase64 } from '../util/base64.ts';
import { compactDateTime, parseDateTime } from './datetime.ts';
import { occurrenceOverride } from './calendar-write.ts';
import {
  bareAddress,
  parseCalendar,
  serializeCalendar,
  textValue,
  tryParseCalendar,
  type ParsedCalendar,
} from './icalendar.ts';
import { newMessageId, rfc5322Date } from './outgoing.ts';

export type PartStat = 'ACCEPTED' | 'TENTATIVE' | 'DECLINED';
export type ItipMethod = 'REQUEST' | 'REPLY' | 'CANCEL' | 'COUNTER';

/** The events of a scheduling object: the master (or the single occurrence an update is about) first. */
function eventsOf(calendar: ICAL.Component): ICAL.Component[] {
  const events = calendar.getAllSubcomponents('vevent');
  return [
    ...events.filter((e) => !e.hasProperty('recurrence-id')),
    ...events.filter((e) => e.hasProperty('recurrence-id')),
  ];
}

function addressOf(property: ICAL.Property | null | undefined): string | undefined {
  if (!property) return undefined;
  const value = String(property.getFirstValue() ?? '');
  const email = bareAddress(/^mailto:/i.test(value) ? value : String(property.getFirstParameter('email') ?? value));
  return email.includes('@') ? email.toLowerCase() : undefined;
}

/** What a scheduling object says about a meeting, for routing mail. */
export interface MeetingSummary {
  uid: string;
  method: string | undefined;
  summary: string;
  organizer: { email: string; name?: string } | undefined;
  attendees: { email: string; name?: string; partstat?: string }[];
  sequence: number;
  start: Date | undefined;
  cancelled: boolean;
}

export function meetingSummary(ics: string): MeetingSummary | undefined {
  const parsed = tryParseCalendar(ics);
  const master = parsed && eventsOf(parsed.calendar)[0];
  if (!parsed || !master) return undefined;
  const uid = textValue(master, 'uid');
  if (!uid) return undefined;
  const organizerProperty = master.getFirstProperty('organizer');
  const organizerEmail = addressOf(organizerProperty);
  const organizerName = organizerProperty?.getFirstParameter('cn');
  const attendees = master.getAllProperties('attendee').flatMap((p) => {
    const email = addressOf(p);
    if (!email) return [];
    const name = p.getFirstParameter('cn');
    const partstat = p.getFirstParameter('partstat');
    return [
      {
        email,
        ...(typeof name === 'string' && name ? { name } : {}),
        ...(typeof partstat === 'string' ? { partstat: partstat.toUpperCase() } : {}),
      },
    ];
  });
  const dtstart = master.getFirstPropertyValue('dtstart');
  return {
    uid,
    method: textValue(parsed.calendar, 'method')?.toUpperCase(),
    summary: textValue(master, 'summary') ?? '',
    organizer: organizerEmail
      ? {
          email: organizerEmail,
          ...(typeof organizerName === 'string' && organizerName ? { name: organizerName } : {}),
        }
      : undefined,
    attendees,
    sequence: Number(master.getFirstPropertyValue('sequence') ?? 0) || 0,
    start: dtstart instanceof ICAL.Time ? dtstart.toJSDate() : undefined,
    cancelled: textValue(master, 'status')?.toUpperCase() === 'CANCELLED',
  };
}

function setPartStat(event: ICAL.Component, userEmails: readonly string[], partstat: PartStat): boolean {
  const users = new Set(userEmails.map((e) => e.toLowerCase()));
  let found = false;
  for (const attendee of event.getAllProperties('attendee')) {
    const email = addressOf(attendee);
    if (!email || !users.has(email)) continue;
    attendee.setParameter('partstat', partstat);
    attendee.removeParameter('rsvp');
    found = true;
  }
  return found;
}

/**
 * The attendee's calendar copy of a meeting: the organizer's object (a request, or the copy already there) without
 * METHOD, with the user's PARTSTAT set in every event (the user is added as an attendee when the request did not name
 * them, e.g. they got it through a list).
 */
export function attendeeCopy(ics: string, userEmails: readonly string[], partstat: PartStat): string {
  const parsed = parseCalendar(ics);
  parsed.calendar.removeAllProperties('method');
  for (const event of eventsOf(parsed.calendar)) {
    if (!setPartStat(event, userEmails, partstat) && userEmails[0]) {
      const attendee = event.addPropertyWithValue('attendee', `mailto:${userEmails[0]}`);
      attendee.setParameter('partstat', partstat);
    }
  }
  return serializeCalendar(parsed);
}

/**
 * The REPLY to the organizer (RFC 5546 §3.2.3): the events with only the replying attendee, their PARTSTAT, a new
 * DTSTAMP. With `proposed` it is a COUNTER instead: the same with the proposed start and end (UTC).
 */
export function replyCalendar(
  ics: string,
  attendeeEmail: string,
  partstat: PartStat,
  proposed?: { start: Date; end: Date },
  now = new Date(),
): string {
  const parsed = parseCalendar(ics);
  const calendar = parsed.calendar;
  calendar.removeAllProperties('method');
  calendar.addPropertyWithValue('method', proposed ? 'COUNTER' : 'REPLY');
  const me = attendeeEmail.toLowerCase();
  for (const event of eventsOf(calendar)) {
    for (const attendee of event.getAllProperties('attendee'))
      if (addressOf(attendee) !== me) event.removeProperty(attendee);
    if (!setPartStat(event, [me], partstat)) {
      const attendee = event.addPropertyWithValue('attendee', `mailto:${attendeeEmail}`);
      attendee.setParameter('partstat', partstat);
    }
    for (const name of ['valarm']) for (const c of event.getAllSubcomponents(name)) event.removeSubcomponent(c);
    event.updatePropertyWithValue('dtstamp', ICAL.Time.fromJSDate(now, true));
    if (proposed && !event.hasProperty('recurrence-id')) {
      for (const name of ['dtstart', 'dtend', 'duration']) event.removeAllProperties(name);
      event.addPropertyWithValue('dtstart', ICAL.Time.fromJSDate(proposed.start, true));
      event.addPropertyWithValue('dtend', ICAL.Time.fromJSDate(proposed.end, true));
    }
  }
  // A COUNTER is about the series; the overrides stay only in a REPLY.
  if (proposed)
    for (const event of calendar.getAllSubcomponents('vevent'))
      if (event.hasProperty('recurrence-id')) calendar.removeSubcomponent(event);
  return serializeCalendar(parsed);
}

/** The organizer's event as a REQUEST (`cancel`: a CANCEL, STATUS:CANCELLED, SEQUENCE raised), alarms removed. */
export function organizerMessageCalendar(ics: string, method: 'REQUEST' | 'CANCEL'): string {
  const parsed = parseCalendar(ics);
  const calendar = parsed.calendar;
  calendar.removeAllProperties('method');
  calendar.addPropertyWithValue('method', method);
  for (const event of calendar.getAllSubcomponents('vevent')) {
    for (const alarm of event.getAllSubcomponents('valarm')) event.removeSubcomponent(alarm);
    if (method === 'CANCEL') {
      event.updatePropertyWithValue('status', 'CANCELLED');
      event.updatePropertyWithValue('sequence', (Number(event.getFirstPropertyValue('sequence') ?? 0) || 0) + 1);
    }
  }
  for (const todo of calendar.getAllSubcomponents('vtodo')) calendar.removeSubcomponent(todo);
  return serializeCalendar(parsed);
}

/** The first VEVENT's UID of an iCalendar text, or undefined. */
export function uidOfCalendar(ics: string): string | undefined {
  const parsed = tryParseCalendar(ics);
  const event = parsed && eventsOf(parsed.calendar)[0];
  return event ? textValue(event, 'uid') : undefined;
}

/** Is `ics` a meeting the user organizes, with someone else invited? (Only those send invitations.) */
export function organizedMeeting(ics: string, userEmails: readonly string[]): MeetingSummary | undefined {
  const meeting = meetingSummary(ics);
  if (!meeting) return undefined;
  const users = new Set(userEmails.map((e) => e.toLowerCase()));
  if (meeting.organizer && !users.has(meeting.organizer.email)) return undefined;
  return meeting.attendees.some((a) => !users.has(a.email)) ? meeting : undefined;
}

export interface ImipMessage {
  from: { email: string; name?: string };
  to: { email: string; name?: string }[];
  subject: string;
  method: ItipMethod;
  /** The iCalendar object, with METHOD. */
  ics: string;
  /** The human-readable part. */
  text: string;
  date?: Date;
}

function encodeWord(text: string): string {
  return /^[\x20-\x7e]*$/.test(text) ? text : `=?UTF-8?B?${toBase64(new TextEncoder().encode(text))}?=`;
}

function mailbox(m: { email: string; name?: string }): string {
  return m.name ? `"${encodeWord(m.name).replace(/[\\"]/g, '\\$&')}" <${m.email}>` : `<${m.email}>`;
}

function base64Lines(text: string): string {
  return (toBase64(new TextEncoder().encode(text)).match(/.{1,76}/g) ?? []).join('\r\n');
}

/**
 * An iMIP message (RFC 6047 §2.4): multipart/alternative with a text part and the text/calendar part carrying
 * `method=`, as Outlook, Thunderbird and Exchange send them.
 */
export function imipMime(message: ImipMessage): Uint8Array {
  const boundary = `=_itip_${crypto.randomUUID()}`;
  const lines = [
    `From: ${mailbox(message.from)}`,
    `To: ${message.to.map(mailbox).join(', ')}`,
    `Subject: ${encodeWord(message.subject)}`,
    `Date: ${rfc5322Date(message.date ?? new Date())}`,
    `Message-ID: ${newMessageId(message.from.email)}`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/alternative; boundary="${boundary}"`,
    '',
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: base64',
    '',
    base64Lines(message.text),
    `--${boundary}`,
    `Content-Type: text/calendar; charset=utf-8; method=${message.method}`,
    'Content-Transfer-Encoding: base64',
    '',
    base64Lines(message.ics),
    `--${boundary}--`,
    '',
  ];
  return new TextEncoder().encode(lines.join('\r\n'));
}

/** The subject Outlook gives an answer: "Accepted: Team meeting". */
export function replySubject(partstat: PartStat, summary: string, proposed: boolean): string {
  if (proposed) return `New Time Proposed: ${summary}`;
  return `${partstat === 'ACCEPTED' ? 'Accepted' : partstat === 'TENTATIVE' ? 'Tentative' : 'Declined'}: ${summary}`;
}

/** A line of text for the text part: what the meeting is and when. */
export function meetingText(meeting: MeetingSummary): string {
  return `${meeting.summary}${meeting.start ? `\r\nWhen: ${compactDateTime(meeting.start)}` : ''}${meeting.organizer ? `\r\nOrganizer: ${meeting.organizer.email}` : ''}\r\n`;
}

/** What attendees must hear about when it changes: times, recurrence, place, title, status, who is invited. */
export function schedulingSignature(ics: string): string | undefined {
  const parsed = tryParseCalendar(ics);
  if (!parsed) return undefined;
  const fields = [
    'dtstart',
    'dtend',
    'duration',
    'rrule',
    'rdate',
    'exdate',
    'recurrence-id',
    'summary',
    'location',
    'status',
  ];
  return JSON.stringify(
    eventsOf(parsed.calendar).map((event) => [
      ...fields.map((name) => event.getAllProperties(name).map((p) => p.toICALString().replace(/^[^:]*?;/, ''))),
      event.getAllProperties('attendee').map(addressOf).sort(),
    ]),
  );
}

/**
 * A meeting the user organizes, changed by the device in a way attendees must hear about, gets SEQUENCE + 1 (RFC 5546
 * §2.1.4), so that their calendars take the update. Anything else is written as it is.
 */
export function withSequenceRaised(before: string, after: string, userEmails: readonly string[]): string {
  if (!organizedMeeting(after, userEmails) || schedulingSignature(before) === schedulingSignature(after)) return after;
  const parsed = tryParseCalendar(after);
  if (!parsed) return after;
  const previous = meetingSummary(before)?.sequence ?? 0;
  for (const event of parsed.calendar.getAllSubcomponents('vevent')) {
    const current = Number(event.getFirstPropertyValue('sequence') ?? 0) || 0;
    event.updatePropertyWithValue('sequence', Math.max(current, previous) + 1);
  }
  return serializeCalendar(parsed);
}

/**
 * The answer for one occurrence of a recurring meeting (MeetingResponse InstanceId): the attendee's copy with the
 * PARTSTAT set in that occurrence's override only (made from the series when missing), and the REPLY carrying only
 * that override. Undefined when the meeting does not recur or the instance is not a time.
 */
export function occurrenceAnswer(
  ics: string,
  instanceId: string,
  userEmails: readonly string[],
  partstat: PartStat,
  now = new Date(),
): { copy: string; reply: string } | undefined {
  const found = occurrenceOverride(ics, instanceId);
  if (!found) return undefined;
  const { parsed, override } = found;
  parsed.calendar.removeAllProperties('method');
  if (!setPartStat(override, userEmails, partstat) && userEmails[0])
    override.addPropertyWithValue('attendee', `mailto:${userEmails[0]}`).setParameter('partstat', partstat);
  const copy = serializeCalendar(parsed);
  // The REPLY: the same object with only this override, then reduced as any reply is.
  for (const event of parsed.calendar.getAllSubcomponents('vevent'))
    if (event !== override) parsed.calendar.removeSubcomponent(event);
  const reply = replyCalendar(serializeCalendar(parsed), userEmails[0] ?? '', partstat, undefined, now);
  return { copy, reply };
}

/** A meeting forwarded to new people (SmartForward of a calendar item), and what the forward's text says of it. */
export interface ForwardedMeeting {
  /** The REQUEST for the new people (METHOD:REQUEST, alarms removed, them added as attendees). */
  request: string;
  meeting: MeetingSummary;
  end: Date | undefined;
  location: string | undefined;
  description: string | undefined;
}

/**
 * The REQUEST a forward of a meeting carries (as Exchange sends one): the series, or with `instanceId` only that
 * occurrence (its override, made from the series when there is none; the whole event when it does not recur). The
 * forwardees are added as attendees asked to answer; ORGANIZER stays, so their answers go to the organizer.
 * Undefined when `instanceId` is not a time or the item holds no event.
 */
export function forwardedMeeting(
  ics: string,
  instanceId: string | undefined,
  forwardees: readonly { email: string; name?: string }[],
): ForwardedMeeting | undefined {
  if (instanceId !== undefined && !parseDateTime(instanceId)) return undefined;
  let parsed: ParsedCalendar | undefined;
  const found = instanceId !== undefined ? occurrenceOverride(ics, instanceId) : undefined;
  if (found) {
    parsed = found.parsed;
    for (const event of parsed.calendar.getAllSubcomponents('vevent'))
      if (event !== found.override) parsed.calendar.removeSubcomponent(event);
  }
  parsed ??= tryParseCalendar(ics);
  const events = parsed ? eventsOf(parsed.calendar) : [];
  if (!parsed || events.length === 0) return undefined;
  for (const event of events) {
    const invited = new Set(event.getAllProperties('attendee').map(addressOf));
    for (const person of forwardees) {
      if (invited.has(person.email.toLowerCase())) continue;
      const attendee = event.addPropertyWithValue('attendee', `mailto:${person.email}`);
      if (person.name) attendee.setParameter('cn', person.name);
      attendee.setParameter('role', 'REQ-PARTICIPANT');
      attendee.setParameter('partstat', 'NEEDS-ACTION');
      attendee.setParameter('rsvp', 'TRUE');
    }
  }
  const request = organizerMessageCalendar(serializeCalendar(parsed), 'REQUEST');
  const meeting = meetingSummary(request);
  if (!meeting) return undefined;
  const first = events[0]!;
  const dtend = first.getFirstPropertyValue('dtend');
  return {
    request,
    meeting,
    end: dtend instanceof ICAL.Time ? dtend.toJSDate() : undefined,
    location: textValue(first, 'location'),
    description: textValue(first, 'description'),
  };
}
