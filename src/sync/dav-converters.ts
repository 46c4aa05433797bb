/** Which converter turns a DAV folder's items into ActiveSync items and back, by the folder's class. */
import { calendarApplicationData } from '../items/calendar-read.ts';
import { calendarFromApplicationData, deleteCalendarOccurrence } from '../items/calendar-write.ts';
import { contactApplicationData, contactFromApplicationData } from '../items/contact.ts';
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
};

export function converterFor(folderType: number): ItemConverter | undefined {
  return CONVERTERS[itemClassOf(folderType)];
}
