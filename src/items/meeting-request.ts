/**
 * The email:MeetingRequest of an invitation that arrived by mail (MS-ASEMAIL §2.2.2.48): the
 * text/calendar part of a METHOD:REQUEST or METHOD:CANCEL message, read through the Calendar converter
 * (calendar-read.ts) and renamed into the Email code page, so that times, zones and recurrences are read one way only.
 *
 * Decisions worth knowing:
 * - StartTime, EndTime, DtStamp and RecurrenceId are in the extended dateTime form (MS-ASEMAIL), Until stays compact.
 * - Reminder is in seconds here (the Calendar element is in minutes).
 * - GlobalObjId is the Outlook PidLidGlobalObjectId built from the UID (MS-OXOCAL §2.2.1.27): an Outlook UID (hex of
 *   such an id) is decoded as it is; any other UID is wrapped in the "vCal-Uid" form Outlook uses for foreign UIDs.
 * - ResponseRequested is 1 when any attendee has RSVP=TRUE (the message does not say who the reader is).
 * - email2:MeetingMessageType (14.1+): 1 for a first request (SEQUENCE 0), 2 (full update) after that.
 */
import type { Email } from 'postal-mime';
import { el, textOf, type WbxmlElement } from '../wbxml/tree.ts';
import type { Namespace } from '../wbxml/codepages.ts';
import { calendarApplicationData } from './calendar-read.ts';
import { extendedDateTime, parseDateTime } from './datetime.ts';
import { meetingSummary } from './itip.ts';
import { toBase64 } from '../util/base64.ts';

const utf8 = new TextDecoder('utf-8');

/** The text/calendar part of a message and its method (from the part's `method=` or the object's METHOD). */
export function calendarPartOf(email: Email): { ics: string; method: string | undefined } | undefined {
  const part = email.attachments.find((a) => a.mimeType.toLowerCase() === 'text/calendar');
  if (!part) return undefined;
  const ics = typeof part.content === 'string' ? part.content : utf8.decode(part.content);
  const method = (part.method ?? /^METHOD:(.*)$/im.exec(ics.replace(/\r?\n[ \t]/g, ''))?.[1])?.trim().toUpperCase();
  return { ics, method };
}

function versionNumber(version: string): number {
  return Math.round(Number.parseFloat(version) * 10);
}

function extended(compact: string): string {
  const date = parseDateTime(compact);
  return date ? extendedDateTime(date) : compact;
}

/** Outlook's GlobalObjectId header (the 16-byte class id) in hex. */
const GLOBAL_OBJECT_ID_PREFIX = '040000008200E00074C5B7101A82E008';

/** PidLidGlobalObjectId for an iCalendar UID, base64. */
export function globalObjectId(uid: string): string {
  if (/^[0-9A-F]+$/i.test(uid) && uid.toUpperCase().startsWith(GLOBAL_OBJECT_ID_PREFIX) && uid.length % 2 === 0) {
    return toBase64(Uint8Array.from(uid.match(/../g)!.map((h) => parseInt(h, 16))));
  }
  const data = new TextEncoder().encode(`vCal-Uid\u0001\u0000\u0000\u0000${uid}\u0000`);
  const bytes = new Uint8Array(16 + 4 + 8 + 8 + 4 + data.length);
  bytes.set(
    GLOBAL_OBJECT_ID_PREFIX.match(/../g)!.map((h) => parseInt(h, 16)),
    0,
  );
  // Instance date (YH YL M D), creation time and reserved bytes stay zero: this is the id of the whole meeting.
  new DataView(bytes.buffer).setUint32(36, data.length, true);
  bytes.set(data, 40);
  return toBase64(bytes);
}

/** email:Recurrences from a calendar:Recurrence (CalendarType, IsLeapMonth and FirstDayOfWeek are on Email2). */
function recurrencesOf(recurrence: WbxmlElement): WbxmlElement {
  const email2 = new Set(['CalendarType', 'IsLeapMonth', 'FirstDayOfWeek']);
  return el('Email', 'Recurrences', [
    el(
      'Email',
      'Recurrence',
      recurrence.children.map((c) =>
        email2.has(c.tag) ? el('Email2', c.tag as 'CalendarType', textOf(c)) : el('Email', c.tag as 'Type', textOf(c)),
      ),
    ),
  ]);
}

/**
 * The MeetingRequest element of an invitation (METHOD REQUEST) or cancellation (CANCEL); undefined when the
 * calendar part cannot be read as an event.
 */
export function meetingRequestElement(
  ics: string,
  method: string | undefined,
  version: string,
): WbxmlElement | undefined {
  const app = calendarApplicationData(ics, { version, bodyPreferences: [] });
  const meeting = meetingSummary(ics);
  if (!app || !meeting) return undefined;
  const v = versionNumber(version);
  const find = (tag: string, ns: Namespace = 'Calendar'): WbxmlElement | undefined =>
    app.find((e) => e.tag === tag && e.ns === ns);
  const text = (tag: string): string | undefined => {
    const found = find(tag);
    return found ? textOf(found) : undefined;
  };
  const recurrence = find('Recurrence');
  // A request about one occurrence carries RECURRENCE-ID in its only event.
  const recurrenceId = /^RECURRENCE-ID[^:]*:(\S+)/im.exec(ics.replace(/\r?\n[ \t]/g, ''))?.[1];
  const instanceType = recurrence ? 1 : recurrenceId ? 3 : 0;
  const reminder = text('Reminder');
  const location = find('Location');
  const airLocation = find('Location', 'AirSyncBase');
  const organizer = meeting.organizer
    ? meeting.organizer.name
      ? `"${meeting.organizer.name}" <${meeting.organizer.email}>`
      : meeting.organizer.email
    : undefined;
  const rsvp = /^ATTENDEE[^:]*;RSVP=TRUE/im.test(ics.replace(/\r?\n[ \t]/g, ''));
  const recurrenceIdDate = recurrenceId ? parseDateTime(recurrenceId.replace(/Z?$/, 'Z')) : undefined;
  const children: (WbxmlElement | undefined | false)[] = [
    el('Email', 'AllDayEvent', text('AllDayEvent') ?? '0'),
    el('Email', 'StartTime', extended(text('StartTime') ?? '')),
    text('DtStamp') !== undefined && el('Email', 'DtStamp', extended(text('DtStamp')!)),
    el('Email', 'EndTime', extended(text('EndTime') ?? '')),
    el('Email', 'InstanceType', instanceType),
    v < 160 && location && el('Email', 'Location', textOf(location)),
    v >= 160 && airLocation,
    organizer !== undefined && el('Email', 'Organizer', organizer),
    recurrenceIdDate && el('Email', 'RecurrenceId', extendedDateTime(recurrenceIdDate)),
    reminder !== undefined && el('Email', 'Reminder', Number(reminder) * 60),
    el('Email', 'ResponseRequested', rsvp ? 1 : 0),
    recurrence && recurrencesOf(recurrence),
    el('Email', 'Sensitivity', text('Sensitivity') ?? '0'),
    el('Email', 'BusyStatus', method === 'CANCEL' ? '0' : (text('BusyStatus') ?? '2')),
    el('Email', 'TimeZone', text('Timezone') ?? ''),
    el('Email', 'GlobalObjId', globalObjectId(meeting.uid)),
    text('DisallowNewTimeProposal') === '1' && el('Email', 'DisallowNewTimeProposal', 1),
    v >= 141 && method === 'REQUEST' && el('Email2', 'MeetingMessageType', meeting.sequence > 0 ? 2 : 1),
  ];
  return el(
    'Email',
    'MeetingRequest',
    children.filter((c): c is WbxmlElement => !!c),
  );
}

/** The MeetingRequest of a parsed message, when it is an invitation or a cancellation. */
export function meetingRequestOf(email: Email, version: string): WbxmlElement | undefined {
  const part = calendarPartOf(email);
  if (!part || (part.method !== 'REQUEST' && part.method !== 'CANCEL')) return undefined;
  try {
    return meetingRequestElement(part.ics, part.method, version);
  } catch {
    return undefined;
  }
}
