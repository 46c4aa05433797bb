/** Calendar items as a device sends them. */
import { el, type WbxmlElement } from '../../src/wbxml/tree.ts';

/** A Sync Add of a one-hour event on 10 March 2026, as a phone creates it. */
export function calendarAdd(clientId: string, subject: string): WbxmlElement {
  return el('AirSync', 'Add', [
    el('AirSync', 'ClientId', clientId),
    el('AirSync', 'ApplicationData', [
      el('Calendar', 'Subject', subject),
      el('Calendar', 'StartTime', '20260310T090000Z'),
      el('Calendar', 'EndTime', '20260310T100000Z'),
      el('Calendar', 'AllDayEvent', '0'),
      el('Calendar', 'BusyStatus', '2'),
      el('Calendar', 'Sensitivity', '0'),
      el('Calendar', 'MeetingStatus', '0'),
    ]),
  ]);
}
