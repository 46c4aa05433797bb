// Builds realistic iCalendar (RFC 5545) events/tasks and vCard 3.0 (RFC 2426) contacts
// for seeding Radicale: VTIMEZONE with DST rules, RRULE, EXDATE, overridden occurrences,
// attendees, alarms; escaped text and folded lines with CRLF ends.
import { randomUUID } from 'node:crypto';

const CRLF = '\r\n';
const PRODID = '-//activesync-edge//test fixtures//EN';

/** Escapes TEXT values (RFC 5545 §3.3.11, RFC 2426 §4). */
export function escapeText(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/;/g, '\\;').replace(/,/g, '\\,').replace(/\r?\n/g, '\\n');
}

/** Folds a content line at 75 octets without splitting UTF-8 characters. */
export function foldLine(line: string): string {
  const out: string[] = [];
  let cur = '';
  let limit = 75;
  for (const ch of line) {
    if (Buffer.byteLength(cur + ch, 'utf8') > limit) {
      out.push(cur);
      cur = '';
      limit = 74; // continuation lines start with a space
    }
    cur += ch;
  }
  out.push(cur);
  return out.join(`${CRLF} `);
}

function serialize(lines: readonly string[]): string {
  return lines.map(foldLine).join(CRLF) + CRLF;
}

// Standard definitions as calendar clients emit them (rules valid since 2007/1996).
const VTIMEZONES: Readonly<Record<string, readonly string[]>> = {
  'Europe/Berlin': [
    'BEGIN:VTIMEZONE',
    'TZID:Europe/Berlin',
    'BEGIN:DAYLIGHT',
    'TZOFFSETFROM:+0100',
    'TZOFFSETTO:+0200',
    'TZNAME:CEST',
    'DTSTART:19700329T020000',
    'RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU',
    'END:DAYLIGHT',
    'BEGIN:STANDARD',
    'TZOFFSETFROM:+0200',
    'TZOFFSETTO:+0100',
    'TZNAME:CET',
    'DTSTART:19701025T030000',
    'RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU',
    'END:STANDARD',
    'END:VTIMEZONE',
  ],
  'America/New_York': [
    'BEGIN:VTIMEZONE',
    'TZID:America/New_York',
    'BEGIN:DAYLIGHT',
    'TZOFFSETFROM:-0500',
    'TZOFFSETTO:-0400',
    'TZNAME:EDT',
    'DTSTART:20070311T020000',
    'RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU',
    'END:DAYLIGHT',
    'BEGIN:STANDARD',
    'TZOFFSETFROM:-0400',
    'TZOFFSETTO:-0500',
    'TZNAME:EST',
    'DTSTART:20071104T020000',
    'RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU',
    'END:STANDARD',
    'END:VTIMEZONE',
  ],
};

export type TestTimeZone = 'Europe/Berlin' | 'America/New_York' | 'UTC';

/** `2026-03-02T09:00:00` (wall time) or `2026-03-02` (date) → `20260302T090000` / `20260302`. */
function basicFormat(local: string): string {
  return local.replace(/[-:]/g, '').replace(/\.\d+$/, '');
}

/** A DATE-TIME property in the event's zone (TZID parameter, or Z for UTC) or a DATE. */
function timeProp(name: string, local: string, tz: TestTimeZone): string {
  if (!local.includes('T')) return `${name};VALUE=DATE:${basicFormat(local)}`;
  return tz === 'UTC' ? `${name}:${basicFormat(local)}Z` : `${name};TZID=${tz}:${basicFormat(local)}`;
}

function addMinutes(local: string, minutes: number): string {
  // Wall-clock arithmetic: treat the local time as if it were UTC.
  const d = new Date(`${local}Z`);
  d.setUTCMinutes(d.getUTCMinutes() + minutes);
  return d.toISOString().slice(0, 19);
}

function addDays(date: string, days: number): string {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

function utcStamp(d = new Date()): string {
  return `${d.toISOString().slice(0, 19).replace(/[-:]/g, '')}Z`;
}

export interface Attendee {
  email: string;
  name?: string;
  partstat?: 'NEEDS-ACTION' | 'ACCEPTED' | 'DECLINED' | 'TENTATIVE';
  role?: 'REQ-PARTICIPANT' | 'OPT-PARTICIPANT' | 'CHAIR';
}

/** A changed occurrence of a recurring event (a VEVENT with RECURRENCE-ID). */
export interface OccurrenceOverride {
  /** Original start (wall time in the event's zone) of the occurrence being changed. */
  recurrenceId: string;
  start?: string;
  durationMinutes?: number;
  summary?: string;
  location?: string;
}

export interface EventOptions {
  uid?: string;
  summary?: string;
  description?: string;
  location?: string;
  /** Wall time in `tz` (`2026-03-02T09:00:00`), or a date (`2026-03-02`) for an all-day event. */
  start: string;
  /** Length; default 60 minutes (or 1 day for all-day events). */
  durationMinutes?: number;
  tz?: TestTimeZone;
  /** RRULE value, e.g. `FREQ=WEEKLY;BYDAY=MO,WE;COUNT=10`. */
  rrule?: string;
  /** Starts (wall times in `tz`, or dates) of cancelled occurrences. */
  exdates?: readonly string[];
  overrides?: readonly OccurrenceOverride[];
  organizer?: { email: string; name?: string };
  attendees?: readonly Attendee[];
  /** VALARM minutes before start. */
  alarmMinutes?: number;
  busyStatus?: 'OPAQUE' | 'TRANSPARENT';
  sensitivity?: 'PUBLIC' | 'PRIVATE' | 'CONFIDENTIAL';
  categories?: readonly string[];
  sequence?: number;
}

function calAddress(prop: string, p: { email: string; name?: string }, extra = ''): string {
  const cn = p.name ? `;CN="${p.name.replace(/"/g, "'")}"` : '';
  return `${prop}${cn}${extra}:mailto:${p.email}`;
}

function eventBody(o: EventOptions, uid: string, tz: TestTimeZone): string[] {
  const allDay = !o.start.includes('T');
  const end = allDay
    ? addDays(o.start, Math.max(1, Math.round((o.durationMinutes ?? 1440) / 1440)))
    : addMinutes(o.start, o.durationMinutes ?? 60);
  const lines = [`UID:${uid}`, `DTSTAMP:${utcStamp()}`, timeProp('DTSTART', o.start, tz), timeProp('DTEND', end, tz)];
  lines.push(`SUMMARY:${escapeText(o.summary ?? 'Test event')}`);
  if (o.description) lines.push(`DESCRIPTION:${escapeText(o.description)}`);
  if (o.location) lines.push(`LOCATION:${escapeText(o.location)}`);
  if (o.rrule) lines.push(`RRULE:${o.rrule}`);
  for (const ex of o.exdates ?? []) lines.push(timeProp('EXDATE', ex, tz));
  if (o.organizer) lines.push(calAddress('ORGANIZER', o.organizer));
  for (const a of o.attendees ?? []) {
    lines.push(
      calAddress(
        'ATTENDEE',
        a,
        `;ROLE=${a.role ?? 'REQ-PARTICIPANT'};PARTSTAT=${a.partstat ?? 'NEEDS-ACTION'};RSVP=TRUE`,
      ),
    );
  }
  if (o.categories?.length) lines.push(`CATEGORIES:${o.categories.map(escapeText).join(',')}`);
  lines.push(`TRANSP:${o.busyStatus ?? 'OPAQUE'}`, `CLASS:${o.sensitivity ?? 'PUBLIC'}`, `SEQUENCE:${o.sequence ?? 0}`);
  if (o.alarmMinutes !== undefined) {
    lines.push('BEGIN:VALARM', 'ACTION:DISPLAY', 'DESCRIPTION:Reminder', `TRIGGER:-PT${o.alarmMinutes}M`, 'END:VALARM');
  }
  return lines;
}

function overrideBody(o: EventOptions, ov: OccurrenceOverride, uid: string, tz: TestTimeZone): string[] {
  const start = ov.start ?? ov.recurrenceId;
  return [
    `UID:${uid}`,
    `DTSTAMP:${utcStamp()}`,
    timeProp('RECURRENCE-ID', ov.recurrenceId, tz),
    timeProp('DTSTART', start, tz),
    timeProp('DTEND', addMinutes(start, ov.durationMinutes ?? o.durationMinutes ?? 60), tz),
    `SUMMARY:${escapeText(ov.summary ?? o.summary ?? 'Test event')}`,
    ...((ov.location ?? o.location) ? [`LOCATION:${escapeText(ov.location ?? o.location ?? '')}`] : []),
    `SEQUENCE:${o.sequence ?? 0}`,
  ];
}

/** A VCALENDAR with one VEVENT (plus overridden occurrences), ready to PUT. */
export function makeEvent(o: EventOptions): string {
  const tz = o.tz ?? 'Europe/Berlin';
  const uid = o.uid ?? randomUUID();
  const lines = ['BEGIN:VCALENDAR', 'VERSION:2.0', `PRODID:${PRODID}`, 'CALSCALE:GREGORIAN'];
  lines.push(...(VTIMEZONES[tz] ?? []));
  lines.push('BEGIN:VEVENT', ...eventBody(o, uid, tz), 'END:VEVENT');
  for (const ov of o.overrides ?? []) lines.push('BEGIN:VEVENT', ...overrideBody(o, ov, uid, tz), 'END:VEVENT');
  lines.push('END:VCALENDAR');
  return serialize(lines);
}

export interface TodoOptions {
  uid?: string;
  summary?: string;
  description?: string;
  /** Date (`2026-03-02`) or wall time in `tz`. */
  due?: string;
  start?: string;
  tz?: TestTimeZone;
  priority?: number;
  completed?: boolean;
  rrule?: string;
}

/** A VCALENDAR with one VTODO (tasks live in CalDAV calendars with VTODO support). */
export function makeTodo(o: TodoOptions = {}): string {
  const tz = o.tz ?? 'Europe/Berlin';
  const lines = ['BEGIN:VCALENDAR', 'VERSION:2.0', `PRODID:${PRODID}`];
  if ([o.due, o.start].some((t) => t?.includes('T'))) lines.push(...(VTIMEZONES[tz] ?? []));
  lines.push(
    'BEGIN:VTODO',
    `UID:${o.uid ?? randomUUID()}`,
    `DTSTAMP:${utcStamp()}`,
    `SUMMARY:${escapeText(o.summary ?? 'Test task')}`,
  );
  if (o.description) lines.push(`DESCRIPTION:${escapeText(o.description)}`);
  if (o.start) lines.push(timeProp('DTSTART', o.start, tz));
  if (o.due) lines.push(timeProp('DUE', o.due, tz));
  if (o.priority !== undefined) lines.push(`PRIORITY:${o.priority}`);
  if (o.rrule) lines.push(`RRULE:${o.rrule}`);
  lines.push(o.completed ? `STATUS:COMPLETED` : 'STATUS:NEEDS-ACTION');
  if (o.completed) lines.push(`COMPLETED:${utcStamp()}`, 'PERCENT-COMPLETE:100');
  lines.push('END:VTODO', 'END:VCALENDAR');
  return serialize(lines);
}

export interface VCardOptions {
  uid?: string;
  firstName: string;
  lastName: string;
  emails?: readonly { address: string; type?: 'WORK' | 'HOME' | 'INTERNET' }[];
  phones?: readonly { number: string; type?: 'WORK' | 'HOME' | 'CELL' | 'FAX' }[];
  org?: string;
  department?: string;
  title?: string;
  address?: {
    street?: string;
    city?: string;
    region?: string;
    postalCode?: string;
    country?: string;
    type?: 'WORK' | 'HOME';
  };
  /** `YYYY-MM-DD`. */
  birthday?: string;
  note?: string;
  url?: string;
  /** JPEG bytes for PHOTO;ENCODING=b. */
  photoJpeg?: Buffer;
}

/** A vCard 3.0 (what most CardDAV servers and phones exchange). */
export function makeVCard(o: VCardOptions): string {
  const lines = ['BEGIN:VCARD', 'VERSION:3.0', `PRODID:${PRODID}`, `UID:${o.uid ?? randomUUID()}`];
  lines.push(
    `N:${escapeText(o.lastName)};${escapeText(o.firstName)};;;`,
    `FN:${escapeText(`${o.firstName} ${o.lastName}`)}`,
  );
  if (o.org) lines.push(`ORG:${escapeText(o.org)}${o.department ? `;${escapeText(o.department)}` : ''}`);
  if (o.title) lines.push(`TITLE:${escapeText(o.title)}`);
  for (const e of o.emails ?? [])
    lines.push(`EMAIL;TYPE=INTERNET${e.type && e.type !== 'INTERNET' ? `,${e.type}` : ''}:${e.address}`);
  for (const p of o.phones ?? []) lines.push(`TEL;TYPE=${p.type ?? 'CELL'}:${p.number}`);
  if (o.address) {
    const a = o.address;
    const parts = ['', '', a.street, a.city, a.region, a.postalCode, a.country].map((v) => escapeText(v ?? ''));
    lines.push(`ADR;TYPE=${a.type ?? 'WORK'}:${parts.join(';')}`);
  }
  if (o.birthday) lines.push(`BDAY:${o.birthday}`);
  if (o.url) lines.push(`URL:${o.url}`);
  if (o.note) lines.push(`NOTE:${escapeText(o.note)}`);
  if (o.photoJpeg) lines.push(`PHOTO;ENCODING=b;TYPE=JPEG:${o.photoJpeg.toString('base64')}`);
  lines.push(`REV:${utcStamp()}`, 'END:VCARD');
  return serialize(lines);
}

/** The UID property of an iCalendar or vCard text (unfolded), or null. */
export function uidOf(text: string): string | null {
  return /^UID:(.+)$/m.exec(text.replace(/\r?\n[ \t]/g, ''))?.[1]?.trim() ?? null;
}
