/**
 * A CalDAV task (iCalendar VTODO) as ActiveSync Tasks ApplicationData (MS-ASTASK), and the device's
 * Add/Change back as iCalendar text. Pure and runtime-neutral: ical.js parses and writes iCalendar.
 *
 * - Dates: Tasks dates are extended dateTimes. UtcStartDate/UtcDueDate are the instants of DTSTART/DUE;
 *   StartDate/DueDate are the same times on the local clock "written as if UTC" (MS-ASTASK). A DATE (a due day
 *   without time, as Apple Reminders and Outlook write) is local midnight; local means the property's TZID, else the
 *   user's zone (`options.timezone`, else UTC).
 *   From the device: a date whose local time is midnight becomes a DATE when the task had a DATE or no such
 *   property; otherwise the time is written in the property's current TZID (or the user's zone) when that zone
 *   gives the device's local time, else in UTC.
 * - Complete ⇄ STATUS:COMPLETED (with PERCENT-COMPLETE:100 and COMPLETED = DateCompleted); reopening sets
 *   NEEDS-ACTION and removes COMPLETED. Importance ⇄ PRIORITY (1–4 high = 2, 5 or none normal = 1, 6–9 low = 0; a
 *   PRIORITY that already means the device's value is kept as it is). Sensitivity ⇄ CLASS as in calendar-event.ts.
 * - ReminderSet/ReminderTime ⇄ the first DISPLAY/AUDIO/EMAIL VALARM (relative to DTSTART, or DUE with RELATED=END,
 *   or absolute); a new reminder is an absolute trigger.
 * - Recurrence ⇄ RRULE (recurrence.ts) on DTSTART (DUE when there is no DTSTART); Start and Until are on the local
 *   clock, like StartDate. Regenerate and DeadOccur have no iCalendar property and are kept as
 *   X-ACTIVESYNC-REGENERATE / X-ACTIVESYNC-DEADOCCUR.
 * - OrdinalDate/SubOrdinalDate (Outlook's manual order) are not kept.
 * - Changes: an element present in a Change replaces its property; an absent one is deleted when it is in
 *   `supported`, else kept (also when no Supported list was sent). Properties with no element are kept.
 */
import ICAL from 'ical.js';
import { child, childText, el, type WbxmlElement } from '../wbxml/tree.ts';
import { bodyElement, type BodyPreference } from './body.ts';
import { extendedDateTime, fieldsToMillis, parseDateTime, utcFields, type LocalDateTime } from './datetime.ts';
import {
  addMissingTimezones,
  alarmInstant,
  bodySourceOf,
  categoriesFrom,
  categoriesOf,
  deviceBody,
  displayAlarm,
  floatingIn,
  instantIn,
  newCalendar,
  newUid,
  parseCalendar,
  tryParseCalendar,
  sensitivityOf,
  serializeCalendar,
  setCategories,
  setDescription,
  setSensitivity,
  setText,
  setTimeProperty,
  textValue,
  timeIn,
  timeValue,
  userAlarms,
  userZone,
  UTC_ZONE,
  zoneOfTime,
  zoneOfTzid,
  type ParsedCalendar,
  type Zone,
} from './icalendar.ts';
import {
  readRecurrence,
  recurrenceElement,
  recurrenceFromRule,
  recurrenceToRule,
  type SeriesTimes,
} from './recurrence.ts';
import { fromLocalTime, toLocalTime, vtimezoneForTzid } from './timezone.ts';

export interface TaskOutputOptions {
  version: string;
  /** Empty = plain text, untruncated. */
  bodyPreferences: readonly BodyPreference[];
  /** The user's IANA zone, for DATE and floating values; UTC when absent. */
  timezone?: string;
}

export interface TaskInputOptions {
  /** Accepted for symmetry with the other converters; the fields are the same in every version. */
  version?: string;
  /** The object as the server has it: the Change is merged into it. Absent for an Add. */
  existing?: string;
  /** The collection's Supported list (element names): absent elements that are listed are deleted. */
  supported?: readonly string[];
  /** The user's IANA zone. */
  timezone?: string;
  now?: Date;
}

const REGENERATE = 'x-activesync-regenerate';
const DEAD_OCCUR = 'x-activesync-deadoccur';

function versionNumber(version: string): number {
  return Math.round(Number.parseFloat(version) * 10);
}

/** The local clock "written as if UTC", as Tasks StartDate/DueDate carry it. */
function localAsUtc(fields: LocalDateTime): Date {
  return new Date(fieldsToMillis(fields));
}

/** The wall time of an instant in a task time's zone; UTC times are on the user's clock. */
function localClock(zone: Zone, user: Zone, instant: Date): LocalDateTime {
  return toLocalTime((zone.kind === 'utc' ? user : zone).rulesIn(instant.getUTCFullYear()), instant);
}

/** A DTSTART/DUE value: its instant and its local wall time. */
interface TaskTime {
  time: ICAL.Time;
  zone: Zone;
  instant: Date;
  local: LocalDateTime;
}

function readTaskTime(parsed: ParsedCalendar, todo: ICAL.Component, name: string, user: Zone): TaskTime | undefined {
  const time = timeValue(todo, name);
  if (!time) return undefined;
  const zone = time.isDate ? floatingIn(user) : zoneOfTime(parsed, time, user);
  const instant = instantIn(zone, time);
  // UTC times have no local clock of their own: the user's is the device's.
  const local =
    zone.kind === 'utc'
      ? toLocalTime(user.rulesIn(instant.getUTCFullYear()), instant)
      : {
          year: time.year,
          month: time.month,
          day: time.day,
          hour: time.isDate ? 0 : time.hour,
          minute: time.isDate ? 0 : time.minute,
          second: time.isDate ? 0 : time.second,
        };
  return { time, zone, instant, local };
}

function importanceOf(todo: ICAL.Component): number {
  const priority = Number(todo.getFirstPropertyValue('priority') ?? 0);
  if (priority >= 1 && priority <= 4) return 2;
  if (priority >= 6 && priority <= 9) return 0;
  return 1;
}

function isComplete(todo: ICAL.Component): boolean {
  return (
    textValue(todo, 'status')?.toUpperCase() === 'COMPLETED' ||
    todo.hasProperty('completed') ||
    Number(todo.getFirstPropertyValue('percent-complete') ?? 0) >= 100
  );
}

/**
 * The children of <ApplicationData> for the task of an iCalendar object; undefined when it holds no VTODO or is not
 * iCalendar.
 */
export function taskApplicationData(ics: string, options: TaskOutputOptions): WbxmlElement[] | undefined {
  const parsed = tryParseCalendar(ics);
  if (!parsed) return undefined;
  const todo =
    parsed.calendar.getAllSubcomponents('vtodo').find((t) => !t.hasProperty('recurrence-id')) ??
    parsed.calendar.getFirstSubcomponent('vtodo');
  if (!todo) return undefined;
  addMissingTimezones(parsed, new Date().getUTCFullYear());
  const user = userZone(options.timezone);
  const v = versionNumber(options.version);
  const start = readTaskTime(parsed, todo, 'dtstart', user);
  const due = readTaskTime(parsed, todo, 'due', user);
  const complete = isComplete(todo);
  const completed = timeValue(todo, 'completed') ?? timeValue(todo, 'last-modified') ?? timeValue(todo, 'dtstamp');
  const [alarm] = userAlarms(todo);
  const reminder = alarm
    ? alarmInstant(alarm, { start: start?.instant ?? due?.instant, end: due?.instant })
    : undefined;
  const source = bodySourceOf(todo);
  const categories = categoriesOf(todo);

  const seriesStart = start ?? due;
  const rule = todo.getFirstPropertyValue('rrule');
  let recurrence: WbxmlElement | undefined;
  if (rule instanceof ICAL.Recur && seriesStart) {
    const times: SeriesTimes = {
      start: seriesStart.time,
      toSeriesTime: (instant, asDate) => timeIn(seriesStart.zone, instant, asDate),
      toInstant: (time) => instantIn(seriesStart.zone, time),
    };
    const pattern = recurrenceFromRule(rule, times);
    if (pattern) {
      pattern.start = localAsUtc(seriesStart.local);
      if (pattern.until) pattern.until = localAsUtc(localClock(seriesStart.zone, user, pattern.until));
      pattern.regenerate = textValue(todo, REGENERATE) === '1';
      pattern.deadOccur = textValue(todo, DEAD_OCCUR) === '1';
      recurrence = recurrenceElement(pattern, { namespace: 'Tasks', version: options.version });
    }
  }

  return [
    source && bodyElement(source, options.bodyPreferences, 0, { withPreview: v >= 140 }),
    el('Tasks', 'Subject', textValue(todo, 'summary') ?? ''),
    el('Tasks', 'Importance', importanceOf(todo)),
    start && el('Tasks', 'UtcStartDate', extendedDateTime(start.instant)),
    start && el('Tasks', 'StartDate', extendedDateTime(localAsUtc(start.local))),
    due && el('Tasks', 'UtcDueDate', extendedDateTime(due.instant)),
    due && el('Tasks', 'DueDate', extendedDateTime(localAsUtc(due.local))),
    categories.length > 0 &&
      el(
        'Tasks',
        'Categories',
        categories.map((c) => el('Tasks', 'Category', c)),
      ),
    recurrence,
    el('Tasks', 'Complete', complete ? 1 : 0),
    complete && completed && el('Tasks', 'DateCompleted', extendedDateTime(completed.toJSDate())),
    el('Tasks', 'Sensitivity', sensitivityOf(todo)),
    reminder && el('Tasks', 'ReminderTime', extendedDateTime(reminder)),
    el('Tasks', 'ReminderSet', reminder ? 1 : 0),
  ].filter((e): e is WbxmlElement => !!e);
}

type Mode = 'set' | 'delete' | 'keep';

/**
 * The iCalendar object for a device's Add (no `existing`) or Change (merged into `existing`; see the module comment
 * for which properties an absent element deletes). Throws when `existing` is not iCalendar.
 */
export function taskFromApplicationData(app: WbxmlElement, options: TaskInputOptions = {}): string {
  const now = options.now ?? new Date();
  const parsed = options.existing ? parseCalendar(options.existing) : newCalendar();
  addMissingTimezones(parsed, now.getUTCFullYear());
  const user = userZone(options.timezone);
  let todo =
    parsed.calendar.getAllSubcomponents('vtodo').find((t) => !t.hasProperty('recurrence-id')) ??
    parsed.calendar.getFirstSubcomponent('vtodo');
  if (!todo) {
    todo = new ICAL.Component('vtodo');
    todo.addPropertyWithValue('uid', newUid());
    setTimeProperty(todo, 'created', ICAL.Time.fromJSDate(now, true), UTC_ZONE);
    parsed.calendar.addSubcomponent(todo);
  }
  const element = (tag: string): WbxmlElement | undefined =>
    tag === 'Body' ? child(app, 'Body', 'AirSyncBase') : child(app, tag, 'Tasks');
  const mode = (tag: string): Mode =>
    element(tag) ? 'set' : options.existing && options.supported?.includes(tag) ? 'delete' : 'keep';
  const value = (tag: string): string => childText(app, tag, 'Tasks')?.trim() ?? '';

  if (mode('Subject') === 'set') setText(todo, 'summary', childText(app, 'Subject', 'Tasks'));
  else if (mode('Subject') === 'delete') todo.removeAllProperties('summary');

  const bodyMode = mode('Body');
  if (bodyMode === 'set') {
    const body = deviceBody(element('Body')!);
    if (body) setDescription(todo, body.text || body.html ? body : undefined);
  } else if (bodyMode === 'delete') {
    setDescription(todo, undefined);
  }

  if (mode('Importance') === 'set') writeImportance(todo, Number(value('Importance')));
  else if (mode('Importance') === 'delete') todo.removeAllProperties('priority');

  writeTaskTime(
    parsed,
    todo,
    'dtstart',
    { utc: 'UtcStartDate', local: 'StartDate' },
    mode,
    value,
    user,
    options.timezone,
  );
  writeTaskTime(parsed, todo, 'due', { utc: 'UtcDueDate', local: 'DueDate' }, mode, value, user, options.timezone);

  if (mode('Complete') === 'set')
    writeCompletion(todo, value('Complete') === '1', parseDateTime(value('DateCompleted')) ?? now);
  else if (mode('DateCompleted') === 'set' && parseDateTime(value('DateCompleted'))) {
    setTimeProperty(todo, 'completed', ICAL.Time.fromJSDate(parseDateTime(value('DateCompleted'))!, true), UTC_ZONE);
  }

  if (mode('Sensitivity') === 'set')
    setSensitivity(todo, Math.min(3, Math.max(0, Number.parseInt(value('Sensitivity'), 10) || 0)));
  else if (mode('Sensitivity') === 'delete') todo.removeAllProperties('class');

  if (mode('Categories') === 'set') setCategories(todo, categoriesFrom(element('Categories')!));
  else if (mode('Categories') === 'delete') todo.removeAllProperties('categories');

  writeReminder(parsed, todo, mode, value, user);
  writeTaskRecurrence(parsed, todo, mode, element('Recurrence'), user);

  setTimeProperty(todo, 'dtstamp', ICAL.Time.fromJSDate(now, true), UTC_ZONE);
  setTimeProperty(todo, 'last-modified', ICAL.Time.fromJSDate(now, true), UTC_ZONE);
  return serializeCalendar(parsed);
}

function writeImportance(todo: ICAL.Component, importance: number): void {
  if (importanceOf(todo) === importance) return; // the current PRIORITY says the same: keep its exact value
  todo.removeAllProperties('priority');
  // Normal is no PRIORITY (0, "undefined"), as Thunderbird and Apple write it.
  if (importance === 2) todo.addPropertyWithValue('priority', 1);
  else if (importance === 0) todo.addPropertyWithValue('priority', 9);
}

function writeCompletion(todo: ICAL.Component, complete: boolean, completedAt: Date): void {
  if (complete) {
    setText(todo, 'status', 'COMPLETED');
    todo.removeAllProperties('percent-complete');
    todo.addPropertyWithValue('percent-complete', 100);
    setTimeProperty(todo, 'completed', ICAL.Time.fromJSDate(completedAt, true), UTC_ZONE);
    return;
  }
  if (!isComplete(todo)) return;
  setText(todo, 'status', 'NEEDS-ACTION');
  todo.removeAllProperties('completed');
  todo.removeAllProperties('percent-complete');
}

/** DTSTART or DUE from the Utc*Date / *Date pair (see the module comment for the form chosen). */
function writeTaskTime(
  parsed: ParsedCalendar,
  todo: ICAL.Component,
  name: 'dtstart' | 'due',
  tags: { utc: string; local: string },
  mode: (tag: string) => Mode,
  value: (tag: string) => string,
  user: Zone,
  userTzid: string | undefined,
): void {
  const utcMode = mode(tags.utc);
  const localMode = mode(tags.local);
  if (utcMode !== 'set' && localMode !== 'set') {
    if (utcMode === 'delete' || localMode === 'delete') todo.removeAllProperties(name);
    return;
  }
  const utc = parseDateTime(value(tags.utc));
  const localAsUtcDate = parseDateTime(value(tags.local));
  const current = timeValue(todo, name);
  const local = localAsUtcDate
    ? utcFields(localAsUtcDate)
    : utc
      ? toLocalTime(user.rulesIn(utc.getUTCFullYear()), utc)
      : undefined;
  if (!local) return;
  const isMidnight = local.hour === 0 && local.minute === 0 && local.second === 0;
  if (current?.isDate || (!current && isMidnight)) {
    if (isMidnight || !utc) {
      setTimeProperty(
        todo,
        name,
        ICAL.Time.fromData({ year: local.year, month: local.month, day: local.day, isDate: true }),
        UTC_ZONE,
      );
      return;
    }
  }
  if (!utc) {
    // Only the local clock: a floating time.
    setTimeProperty(todo, name, ICAL.Time.fromData({ ...local, isDate: false }), floatingIn(user));
    return;
  }
  for (const zone of candidateZones(parsed, current, user, userTzid)) {
    const written = timeIn(zone, utc);
    if (written.hour === local.hour && written.minute === local.minute && written.day === local.day) {
      setTimeProperty(todo, name, written, zone);
      return;
    }
  }
  setTimeProperty(todo, name, timeIn(UTC_ZONE, utc), UTC_ZONE);
}

/** The zones a task's time may be written in: the property's own TZID, then the user's zone. */
function candidateZones(
  parsed: ParsedCalendar,
  current: ICAL.Time | undefined,
  user: Zone,
  userTzid: string | undefined,
): Zone[] {
  const zones: Zone[] = [];
  if (current && !current.isDate) {
    const zone = zoneOfTime(parsed, current, user);
    if (zone.kind === 'tzid') zones.push(zone);
  }
  if (userTzid) {
    if (!zoneOfTzid(parsed, userTzid)) {
      const vtimezone = vtimezoneForTzid(userTzid, new Date().getUTCFullYear());
      if (vtimezone) parsed.calendar.addSubcomponent(vtimezone);
    }
    const zone = zoneOfTzid(parsed, userTzid);
    if (zone) zones.push(zone);
  }
  return zones;
}

function writeReminder(
  parsed: ParsedCalendar,
  todo: ICAL.Component,
  mode: (tag: string) => Mode,
  value: (tag: string) => string,
  user: Zone,
): void {
  const setMode = mode('ReminderSet');
  const timeMode = mode('ReminderTime');
  if (setMode === 'keep' && timeMode === 'keep') return;
  const removeAlarms = (): void => {
    for (const alarm of userAlarms(todo)) todo.removeSubcomponent(alarm);
  };
  const at = timeMode === 'set' ? parseDateTime(value('ReminderTime')) : undefined;
  const wanted = setMode === 'set' ? value('ReminderSet') === '1' : setMode === 'delete' ? false : at !== undefined;
  if (!wanted) {
    if (setMode !== 'keep' || timeMode === 'delete') removeAlarms();
    return;
  }
  if (!at) return; // reminder on, time unchanged
  const start = readTaskTime(parsed, todo, 'dtstart', user);
  const due = readTaskTime(parsed, todo, 'due', user);
  const [current] = userAlarms(todo);
  if (
    current &&
    alarmInstant(current, { start: start?.instant ?? due?.instant, end: due?.instant })?.getTime() === at.getTime()
  )
    return;
  removeAlarms();
  todo.addSubcomponent(displayAlarm(ICAL.Time.fromJSDate(at, true), textValue(todo, 'summary') ?? 'Reminder'));
}

function writeTaskRecurrence(
  parsed: ParsedCalendar,
  todo: ICAL.Component,
  mode: (tag: string) => Mode,
  element: WbxmlElement | undefined,
  user: Zone,
): void {
  const m = mode('Recurrence');
  if (m === 'delete') {
    for (const name of ['rrule', REGENERATE, DEAD_OCCUR]) todo.removeAllProperties(name);
    return;
  }
  if (m !== 'set' || !element) return;
  const recurrence = readRecurrence(element);
  if (!recurrence) return;
  // RRULE needs DTSTART: the due date, else the recurrence's Start (a local date).
  if (!todo.hasProperty('dtstart')) {
    const due = timeValue(todo, 'due');
    if (due) setTimeProperty(todo, 'dtstart', due.clone(), zoneOfTime(parsed, due, user));
    else if (recurrence.start) {
      const s = utcFields(recurrence.start);
      setTimeProperty(
        todo,
        'dtstart',
        ICAL.Time.fromData({ year: s.year, month: s.month, day: s.day, isDate: true }),
        UTC_ZONE,
      );
    } else return;
  }
  const dtstart = timeValue(todo, 'dtstart')!;
  const zone = dtstart.isDate ? floatingIn(user) : zoneOfTime(parsed, dtstart, user);
  // Until is on the local clock, like Start and the other Tasks dates.
  if (recurrence.until) {
    const fields = utcFields(recurrence.until);
    recurrence.until = fromLocalTime((zone.kind === 'utc' ? user : zone).rulesIn(fields.year), fields);
  }
  const times: SeriesTimes = {
    start: dtstart,
    toSeriesTime: (instant, asDate) => timeIn(zone, instant, asDate),
    toInstant: (time) => instantIn(zone, time),
  };
  todo.removeAllProperties('rrule');
  todo.addPropertyWithValue('rrule', recurrenceToRule(recurrence, times));
  setText(todo, REGENERATE, recurrence.regenerate ? '1' : undefined);
  setText(todo, DEAD_OCCUR, recurrence.deadOccur ? '1' : undefined);
}
