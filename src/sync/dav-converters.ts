/**
 * Which converter turns a folder's items into ActiveSync items and back, by the folder's class: DAV folders' iCalendar
 * and vCard texts, the notes folder's messages.
 */
import { calendarApplicationData } from '../items/calendar-read.ts';
import { calendarFromApplicationData, deleteCalendarOccurrence } from '../items/calendar-write.ts';
import { contactApplicationData, contactFromApplicationData } from '../items/contact.ts';
import { noteApplicationData, noteFromApplicationData } from '../items/note.ts';
import { taskApplicationData, taskFromApplicationData } from '../items/task.ts';
import { itemClassOf } from '../folders/hierarchy.ts';
import type { ItemConverter } from './dav.ts';

const CONVERTERS: Partial<Record<ReturnType<typeof itemClassOf>, ItemConverter>> = {
  Calendar: {
    toDevice: calendarApplicationData,
    fromDevice: calendarFromApplicationData,
    deleteOccurrence: (data, instanceId) => deleteCalendarOccurrence(data, instanceId),
  },
  Contacts: { toDevice: contactApplicationData, fromDevice: contactFromApplicationData },
  Tasks: { toDevice: taskApplicationData, fromDevice: taskFromApplicationData },
  Notes: {
    toDevice: noteApplicationData,
    fromDevice: (app, { existing, userEmails }) =>
      noteFromApplicationData(app, {
        ...(existing !== undefined ? { existing } : {}),
        ...(userEmails ? { userEmails } : {}),
      }),
  },
};

export function converterFor(folderType: number): ItemConverter | undefined {
  return CONVERTERS[itemClassOf(folderType)];
}
