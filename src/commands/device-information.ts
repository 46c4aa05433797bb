/**
 * Settings DeviceInformation (MS-ASCMD §2.2.3.45): what a device says about itself, in a Settings request or, from
 * 14.1 on, inside its first Provision request. Recorded in the device record for device management.
 */
import type { DeviceRecord } from '../state/types.ts';
import { child, childText, type WbxmlElement } from '../wbxml/tree.ts';

/** Longest value kept; the specification's strings are short (a model name, an IMEI, a phone number). */
const MAX_LENGTH = 1024;

const FIELDS = [
  ['Model', 'model'],
  ['IMEI', 'imei'],
  ['FriendlyName', 'friendlyName'],
  ['OS', 'os'],
  ['OSLanguage', 'osLanguage'],
  ['PhoneNumber', 'phoneNumber'],
  ['MobileOperator', 'mobileOperator'],
  ['UserAgent', 'userAgent'],
] as const satisfies readonly (readonly [string, keyof DeviceRecord])[];

export type DeviceInformation = Partial<Pick<DeviceRecord, (typeof FIELDS)[number][1]>>;

/**
 * The fields of a `settings:DeviceInformation` element (its `Set` child); undefined when there is no Set, which is a
 * protocol error. Empty values are left out (they would not clear a field in every store). EnableOutboundSMS is not
 * kept: this server does not send SMS.
 */
export function readDeviceInformation(element: WbxmlElement): DeviceInformation | undefined {
  const set = child(element, 'Set', 'Settings');
  if (!set) return undefined;
  const info: Record<string, string> = {};
  for (const [tag, field] of FIELDS) {
    const value = childText(set, tag, 'Settings')?.trim();
    if (value) info[field] = value.slice(0, MAX_LENGTH);
  }
  return info as DeviceInformation;
}
