/**
 * A CardDAV contact (vCard 3.0; 4.0 is read, and edited in place) as ActiveSync Contacts ApplicationData (MS-ASCNTC,
 * Contacts and Contacts2 pages), and the device's Add/Change back as vCard text. Pure and
 * runtime-neutral: ical.js parses and writes vCards.
 *
 * Where each element lives in the vCard:
 * - N: LastName;FirstName;MiddleName;Title (prefix);Suffix. FN ⇄ FileAs (computed from the names when a device sends
 *   none). ORG: CompanyName;Department. TITLE ⇄ JobTitle. NICKNAME, URL (WebPage), NOTE (Body), CATEGORIES, BDAY.
 *   X-PHONETIC-FIRST-NAME/-LAST-NAME/-ORG (Apple) ⇄ Yomi*. X-OFFICE-LOCATION, X-ACTIVESYNC-CUSTOMERID/-GOVERNMENTID/
 *   -ACCOUNTNAME for the fields vCard has nothing for.
 * - EMAIL: Email1–3Address in the vCard's order (a device's `"Name" <addr>` is stored as the bare address).
 * - TEL by TYPE: FAX (HOME → HomeFax, else BusinessFax), PAGER, CAR, X-ASSISTANT, X-RADIO, MAIN (Contacts2
 *   CompanyMainPhone), MSG (Contacts2 MMS), CELL/IPHONE (Mobile), WORK (Business, then Business2), HOME (Home, then
 *   Home2); untyped numbers fill Home, Home2, Business2. Apple's X-ABLabel labels (assistant, radio, car) count too.
 * - ADR: WORK → Business*, HOME → Home*, anything else → Other* (Street ⇄ the street component; PO box and
 *   extended address are kept as they are).
 * - IMPP and the older X-JABBER/X-AIM/X-ICQ/X-MSN/X-SKYPE/… ⇄ IMAddress 1–3 (a bare device value is stored as
 *   `IMPP:im:value` and read back without the scheme).
 * - Spouse, Children, AssistantName, ManagerName, Anniversary: RELATED;TYPE=… and ANNIVERSARY in vCard 4; Apple's
 *   labelled `itemN.X-ABRELATEDNAMES` / `itemN.X-ABDATE` in vCard 3 (what iOS, macOS and DAVx5 write), and on
 *   reading also X-SPOUSE, X-MS-SPOUSE, X-EVOLUTION-SPOUSE, X-KADDRESSBOOK-X-SpousesName, X-ANNIVERSARY, X-MS-CHILD,
 *   X-ASSISTANT, …
 * - Birthday/Anniversary: extended dateTime at midnight in the user's zone (`options.timezone`, else UTC); devices
 *   send local midnight in UTC, so the date read back is that of the nearest midnight. A year-less date (vCard 4
 *   `--0315`, Apple's X-APPLE-OMIT-YEAR) travels with Apple's placeholder year 1604.
 * - Picture ⇄ PHOTO (base64, or a data: URI in vCard 4); a photo larger than `maxPictureBytes` (default 48 KB, the
 *   MS-ASCNTC limit; decoded bytes) is not sent, and an absent Picture then never deletes it. Photos by URL are not
 *   fetched. A device's picture is stored whatever its size.
 * - Changes: an element present in a Change replaces its value; an absent one is deleted when it is in `supported`
 *   (the collection's Supported list), else the server's value is kept (also when no Supported list was sent, as
 *   Z-Push does). vCard properties with no element (extra numbers and addresses, X-props, GEO, KEY, …) are kept.
 */
import ICAL from 'ical.js';
import { child, children, el, textOf, type WbxmlElement } from '../wbxml/tree.ts';
import { fromBase64 } from '../util/base64.ts';
import { bodyElement, type BodyPreference } from './body.ts';
import { extendedDateTime, parseDateTime } from './datetime.ts';
import { bareAddress, categoriesFrom, deviceBody, newUid, withoutBareCarriageReturns } from './icalendar.ts';
import {
  fromLocalTime,
  timeZoneInformationForTzid,
  toLocalTime,
  UTC_TIME_ZONE,
  type TimeZoneInformation,
} from './timezone.ts';

export interface ContactOutputOptions {
  version: string;
  /** Empty = plain text, untruncated. */
  bodyPreferences: readonly BodyPreference[];
  /** Photos larger than this many bytes are left out (default 48 KB). */
  maxPictureBytes?: number;
  /** The user's IANA zone: Birthday and Anniversary are sent as midnight there (default UTC). */
  timezone?: string;
}

export interface ContactInputOptions {
  /** Accepted for symmetry with the other converters; the fields are the same in every version. */
  version?: string;
  /** The vCard as the server has it: the Change is merged into it. Absent for an Add. */
  existing?: string;
  /** The collection's Supported list (element names): absent elements that are listed are deleted. */
  supported?: readonly string[];
  /** The limit contactApplicationData applies, so that a photo the device never got is not deleted. */
  maxPictureBytes?: number;
  /** The user's IANA zone, for Birthday/Anniversary dates. */
  timezone?: string;
}

export const MAX_PICTURE_BYTES = 48 * 1024;
const PRODID = '-//activesync-edge//ActiveSync//EN';
/** Apple's year for dates without one. */
const NO_YEAR = 1604;

// ---------------------------------------------------------------------------------------------------------------
// The vCard and what is where in it

/** A parsed vCard with the properties each element maps to. */
interface Card {
  vcard: ICAL.Component;
  isVersion4: boolean;
  /** AS element → the property holding its value (multi-valued kinds: TEL, EMAIL, ADR, IMPP, related names, dates). */
  slots: Map<string, ICAL.Property>;
}

function parseCard(text: string): Card {
  const parsed = ICAL.parse(text) as unknown[];
  const jcal = (Array.isArray(parsed[0]) ? parsed[0] : parsed) as unknown[];
  const vcard = new ICAL.Component(jcal);
  if (vcard.name !== 'vcard') throw new Error(`not a vCard: ${vcard.name}`);
  return withSlots(vcard);
}

function newCard(): Card {
  const vcard = new ICAL.Component('vcard');
  vcard.addPropertyWithValue('version', '3.0');
  vcard.addPropertyWithValue('prodid', PRODID);
  vcard.addPropertyWithValue('uid', newUid());
  return withSlots(vcard);
}

function withSlots(vcard: ICAL.Component): Card {
  const card: Card = {
    vcard,
    isVersion4: String(vcard.getFirstPropertyValue('version') ?? '') === '4.0',
    slots: new Map(),
  };
  assignPhones(card);
  assignInOrder(card, emailProperties(vcard), EMAIL_TAGS);
  assignInOrder(card, imProperties(vcard), IM_TAGS);
  assignAddresses(card);
  assignRelated(card);
  return card;
}

/** The TYPE parameter values, upper-cased (`TYPE=WORK,VOICE` and iOS's repeated `type=` both). */
function typesOf(property: ICAL.Property): Set<string> {
  const raw = property.getParameter('type');
  const values = Array.isArray(raw) ? raw : raw ? [raw] : [];
  return new Set(values.flatMap((v) => String(v).split(',')).map((v) => v.trim().toUpperCase()));
}

/** Apple's label of a grouped property (`item1.X-ABLabel:_$!<Spouse>!$_` → "spouse"). */
function labelOf(card: Card, property: ICAL.Property): string | undefined {
  const group = property.getFirstParameter('group');
  if (!group) return undefined;
  const label = card.vcard.getAllProperties('x-ablabel').find((p) => p.getFirstParameter('group') === group);
  const text = label ? String(label.getFirstValue() ?? '') : '';
  return text ? text.replace(/^_\$!<(.*)>!\$_$/, '$1').toLowerCase() : undefined;
}

function assignInOrder(card: Card, properties: ICAL.Property[], tags: readonly string[]): void {
  properties.slice(0, tags.length).forEach((property, i) => {
    card.slots.set(tags[i]!, property);
  });
}

const EMAIL_TAGS = ['Email1Address', 'Email2Address', 'Email3Address'] as const;
const IM_TAGS = ['IMAddress', 'IMAddress2', 'IMAddress3'] as const;
const IM_PROPERTIES = [
  'impp',
  'x-jabber',
  'x-aim',
  'x-icq',
  'x-msn',
  'x-skype',
  'x-skype-username',
  'x-google-talk',
  'x-yahoo',
  'x-gadugadu',
  'x-qq',
  'x-twitter',
];

function emailProperties(vcard: ICAL.Component): ICAL.Property[] {
  return vcard.getAllProperties('email').filter((p) => String(p.getFirstValue() ?? '').trim() !== '');
}

function imProperties(vcard: ICAL.Component): ICAL.Property[] {
  return vcard
    .getAllProperties()
    .filter((p) => IM_PROPERTIES.includes(p.name) && String(p.getFirstValue() ?? '').trim() !== '');
}

type PhoneKind =
  | 'business'
  | 'home'
  | 'mobile'
  | 'car'
  | 'pager'
  | 'radio'
  | 'assistant'
  | 'businessFax'
  | 'homeFax'
  | 'companyMain'
  | 'mms'
  | 'other';

const PHONE_SLOTS: Readonly<Record<PhoneKind, readonly string[]>> = {
  business: ['BusinessPhoneNumber', 'Business2PhoneNumber'],
  home: ['HomePhoneNumber', 'Home2PhoneNumber'],
  mobile: ['MobilePhoneNumber'],
  car: ['CarPhoneNumber'],
  pager: ['PagerNumber'],
  radio: ['RadioPhoneNumber'],
  assistant: ['AssistantPhoneNumber'],
  businessFax: ['BusinessFaxNumber'],
  homeFax: ['HomeFaxNumber'],
  companyMain: ['CompanyMainPhone'],
  mms: ['MMS'],
  // Untyped numbers: wherever a voice number fits.
  other: ['HomePhoneNumber', 'Home2PhoneNumber', 'Business2PhoneNumber'],
};

/** TYPE parameters of a TEL the device adds, per element. */
const NEW_PHONE_TYPES: Readonly<Record<string, readonly string[]>> = {
  BusinessPhoneNumber: ['WORK', 'VOICE'],
  Business2PhoneNumber: ['WORK', 'VOICE'],
  HomePhoneNumber: ['HOME', 'VOICE'],
  Home2PhoneNumber: ['HOME', 'VOICE'],
  MobilePhoneNumber: ['CELL', 'VOICE'],
  CarPhoneNumber: ['CAR', 'VOICE'],
  PagerNumber: ['PAGER'],
  RadioPhoneNumber: ['X-RADIO'],
  AssistantPhoneNumber: ['X-ASSISTANT'],
  BusinessFaxNumber: ['WORK', 'FAX'],
  HomeFaxNumber: ['HOME', 'FAX'],
  CompanyMainPhone: ['WORK', 'MAIN'],
  MMS: ['MSG'],
};

function phoneKind(types: Set<string>, label: string | undefined): PhoneKind {
  const has = (...names: string[]): boolean => names.some((n) => types.has(n));
  if (has('FAX')) return has('HOME') ? 'homeFax' : 'businessFax';
  if (has('PAGER') || label === 'pager') return 'pager';
  if (has('CAR') || label === 'car') return 'car';
  if (has('X-ASSISTANT', 'ASSISTANT') || label === 'assistant') return 'assistant';
  if (has('X-RADIO', 'RADIO') || label === 'radio') return 'radio';
  if (has('MAIN', 'X-MAIN', 'COMPANY') || label === 'company main' || label === 'companymain') return 'companyMain';
  if (has('MSG', 'X-MMS') && !has('CELL')) return 'mms';
  if (has('CELL', 'IPHONE', 'MOBILE')) return 'mobile';
  if (has('WORK')) return 'business';
  if (has('HOME')) return 'home';
  return 'other';
}

/** TELs to phone elements, in the vCard's order: typed numbers first take their slots, untyped ones fill the rest. */
function assignPhones(card: Card): void {
  const phones = card.vcard.getAllProperties('tel').filter((p) => String(p.getFirstValue() ?? '').trim() !== '');
  const kinds = phones.map((p) => phoneKind(typesOf(p), labelOf(card, p)));
  for (const pass of ['typed', 'other'] as const) {
    phones.forEach((phone, i) => {
      const kind = kinds[i]!;
      if ((kind === 'other') !== (pass === 'other')) return;
      const free = PHONE_SLOTS[kind].find((tag) => !card.slots.has(tag));
      if (free) card.slots.set(free, phone);
    });
  }
}

const ADDRESS_PARTS = { Street: 2, City: 3, State: 4, PostalCode: 5, Country: 6 } as const;
type AddressPart = keyof typeof ADDRESS_PARTS;
const ADDRESS_KINDS = { Business: 'WORK', Home: 'HOME', Other: 'OTHER' } as const;
type AddressKind = keyof typeof ADDRESS_KINDS;

function assignAddresses(card: Card): void {
  for (const address of card.vcard.getAllProperties('adr')) {
    const types = typesOf(address);
    const kind: AddressKind = types.has('WORK') ? 'Business' : types.has('HOME') ? 'Home' : 'Other';
    if (!card.slots.has(`${kind}Address`)) card.slots.set(`${kind}Address`, address);
  }
}

/** Spouse, AssistantName, ManagerName, Anniversary (one each) and the children, from whichever form the vCard uses. */
const RELATED_FORMS: Readonly<Record<string, { related?: string; labels: string[]; properties: string[] }>> = {
  Spouse: {
    related: 'spouse',
    labels: ['spouse', 'partner'],
    properties: ['x-spouse', 'x-ms-spouse', 'x-evolution-spouse', 'x-kaddressbook-x-spousesname'],
  },
  AssistantName: {
    related: 'assistant',
    labels: ['assistant'],
    properties: ['x-assistant', 'x-ms-assistant', 'x-evolution-assistant', 'x-kaddressbook-x-assistantsname'],
  },
  ManagerName: {
    related: 'manager',
    labels: ['manager'],
    properties: ['x-manager', 'x-ms-manager', 'x-evolution-manager', 'x-kaddressbook-x-managersname'],
  },
  Anniversary: {
    labels: ['anniversary'],
    properties: [
      'anniversary',
      'x-anniversary',
      'x-ms-anniversary',
      'x-evolution-anniversary',
      'x-kaddressbook-x-anniversary',
    ],
  },
};
const CHILD_LABELS = ['child', 'son', 'daughter'];

function assignRelated(card: Card): void {
  for (const [tag, forms] of Object.entries(RELATED_FORMS)) {
    const found = relatedProperties(
      card,
      forms.related,
      forms.labels,
      forms.properties,
      tag === 'Anniversary' ? 'x-abdate' : 'x-abrelatednames',
    )[0];
    if (found) card.slots.set(tag, found);
  }
}

function relatedProperties(
  card: Card,
  relatedType: string | undefined,
  labels: string[],
  properties: string[],
  appleProperty: string,
): ICAL.Property[] {
  return card.vcard.getAllProperties().filter((p) => {
    if (properties.includes(p.name)) return true;
    // RELATED by URI (urn:uuid:… of another card) names nobody a device could show.
    if (p.name === 'related' && relatedType) return p.type === 'text' && typesOf(p).has(relatedType.toUpperCase());
    if (p.name === appleProperty) return labels.includes(labelOf(card, p) ?? '');
    return false;
  });
}

function childProperties(card: Card): ICAL.Property[] {
  return relatedProperties(card, 'child', CHILD_LABELS, ['x-ms-child', 'x-children', 'x-child'], 'x-abrelatednames');
}

// ---------------------------------------------------------------------------------------------------------------
// Values

function text(property: ICAL.Property | null | undefined): string | undefined {
  if (!property) return undefined;
  const value = property.getFirstValue();
  const s = value === null || value === undefined ? '' : typeof value === 'string' ? value : String(value);
  return s.trim() === '' ? undefined : s;
}

function structured(vcard: ICAL.Component, name: string): string[] {
  const value = vcard.getFirstPropertyValue(name) as unknown;
  if (Array.isArray(value)) return value.map((v) => (Array.isArray(v) ? v.join(',') : String(v ?? '')));
  return typeof value === 'string' ? value.split(';') : [];
}

/** A date property as year/month/day (year NO_YEAR when it has none); undefined when it is not a date. */
function dateOf(property: ICAL.Property | undefined): { year: number; month: number; day: number } | undefined {
  if (!property) return undefined;
  const value = property.getFirstValue() as unknown;
  if (value instanceof ICAL.Time) {
    if (!value.month || !value.day) return undefined;
    return { year: value.year || NO_YEAR, month: value.month, day: value.day };
  }
  const raw = String(value ?? '').trim();
  const match = /^(\d{4}|--)-?(\d{2})-?(\d{2})/.exec(raw);
  if (!match) return undefined;
  return { year: match[1] === '--' ? NO_YEAR : Number(match[1]), month: Number(match[2]), day: Number(match[3]) };
}

function userRules(timezone: string | undefined, year: number): TimeZoneInformation {
  return (timezone && timeZoneInformationForTzid(timezone, year)) || UTC_TIME_ZONE;
}

/** A date as the instant of its midnight in the user's zone. */
function dateInstant(date: { year: number; month: number; day: number }, timezone: string | undefined): Date {
  return fromLocalTime(userRules(timezone, date.year), { ...date, hour: 0, minute: 0, second: 0 });
}

/** The date a device means by a Birthday/Anniversary instant: that of the nearest midnight in the user's zone. */
function deviceDate(
  value: string,
  timezone: string | undefined,
): { year: number; month: number; day: number } | undefined {
  const instant = parseDateTime(value);
  if (!instant) return undefined;
  const local = toLocalTime(userRules(timezone, instant.getUTCFullYear()), new Date(instant.getTime() + 12 * 3600_000));
  return { year: local.year, month: local.month, day: local.day };
}

function pictureOf(vcard: ICAL.Component): string | undefined {
  const photo = vcard.getFirstProperty('photo');
  if (!photo) return undefined;
  const value = photo.getFirstValue() as unknown;
  const raw = value instanceof ICAL.Binary ? value.value : String(value ?? '');
  const dataUri = /^data:[^,]*;base64,(.*)$/s.exec(raw);
  if (dataUri) return dataUri[1]!.replace(/\s+/g, '');
  const encoding = String(photo.getFirstParameter('encoding') ?? '').toLowerCase();
  if (value instanceof ICAL.Binary || encoding === 'b' || encoding === 'base64') return raw.replace(/\s+/g, '');
  return undefined; // a URL: not fetched
}

function base64Bytes(base64: string): number {
  return fromBase64(base64)?.length ?? 0;
}

// ---------------------------------------------------------------------------------------------------------------
// vCard → ApplicationData

/** The simple (one-property, text) elements: element, namespace, vCard property. */
const TEXT_FIELDS: readonly { tag: string; ns: 'Contacts' | 'Contacts2'; property: string }[] = [
  { tag: 'FileAs', ns: 'Contacts', property: 'fn' },
  { tag: 'JobTitle', ns: 'Contacts', property: 'title' },
  { tag: 'OfficeLocation', ns: 'Contacts', property: 'x-office-location' },
  { tag: 'WebPage', ns: 'Contacts', property: 'url' },
  { tag: 'YomiFirstName', ns: 'Contacts', property: 'x-phonetic-first-name' },
  { tag: 'YomiLastName', ns: 'Contacts', property: 'x-phonetic-last-name' },
  { tag: 'YomiCompanyName', ns: 'Contacts', property: 'x-phonetic-org' },
  { tag: 'NickName', ns: 'Contacts2', property: 'nickname' },
  { tag: 'CustomerId', ns: 'Contacts2', property: 'x-activesync-customerid' },
  { tag: 'GovernmentId', ns: 'Contacts2', property: 'x-activesync-governmentid' },
  { tag: 'AccountName', ns: 'Contacts2', property: 'x-activesync-accountname' },
];

const NAME_PARTS = { LastName: 0, FirstName: 1, MiddleName: 2, Title: 3, Suffix: 4 } as const;
const ORG_PARTS = { CompanyName: 0, Department: 1 } as const;
const PHONE_TAGS = Object.keys(NEW_PHONE_TYPES);
const CONTACTS2_TAGS = new Set([
  'CompanyMainPhone',
  'MMS',
  'IMAddress',
  'IMAddress2',
  'IMAddress3',
  'ManagerName',
  'NickName',
  'CustomerId',
  'GovernmentId',
  'AccountName',
]);

function versionNumber(version: string): number {
  return Math.round(Number.parseFloat(version) * 10);
}

/** An IM value as the device sees it: `im:` and `x-apple:` schemes are our own wrapping and come off. */
function imValue(property: ICAL.Property): string | undefined {
  const value = text(property);
  return value?.replace(/^(im|x-apple):/i, '');
}

/** The value a slot's property shows the device (vCard 4's `tel:` URIs without the scheme, IM without ours). */
function slotValue(tag: string, property: ICAL.Property | undefined): string | undefined {
  if (!property) return undefined;
  if ((IM_TAGS as readonly string[]).includes(tag)) return imValue(property);
  return property.name === 'tel' ? text(property)?.replace(/^tel:/i, '') : text(property);
}

/** The children of <ApplicationData> for a vCard; undefined when the text is not a vCard. */
export function contactApplicationData(vcardText: string, options: ContactOutputOptions): WbxmlElement[] | undefined {
  let card: Card;
  try {
    card = parseCard(vcardText);
  } catch {
    return undefined;
  }
  const { vcard, slots } = card;
  const v = versionNumber(options.version);
  const out: WbxmlElement[] = [];
  const add = (ns: 'Contacts' | 'Contacts2', tag: string, value: string | undefined): void => {
    if (value !== undefined && value !== '') out.push(leaf(ns, tag, value));
  };

  const name = structured(vcard, 'n');
  for (const [tag, i] of Object.entries(NAME_PARTS)) add('Contacts', tag, name[i]);
  const org = structured(vcard, 'org');
  for (const [tag, i] of Object.entries(ORG_PARTS)) add('Contacts', tag, org[i]);
  for (const field of TEXT_FIELDS) add(field.ns, field.tag, text(vcard.getFirstProperty(field.property)));
  for (const tag of EMAIL_TAGS) add('Contacts', tag, slotValue(tag, slots.get(tag)));
  for (const tag of PHONE_TAGS)
    add(CONTACTS2_TAGS.has(tag) ? 'Contacts2' : 'Contacts', tag, slotValue(tag, slots.get(tag)));
  for (const kind of Object.keys(ADDRESS_KINDS) as AddressKind[]) {
    const address = slots.get(`${kind}Address`);
    const parts = address ? structuredValue(address) : [];
    for (const [part, i] of Object.entries(ADDRESS_PARTS)) add('Contacts', `${kind}Address${part}`, parts[i]);
  }
  for (const tag of IM_TAGS) add('Contacts2', tag, slotValue(tag, slots.get(tag)));

  const birthday = dateOf(vcard.getFirstProperty('bday') ?? undefined);
  if (birthday) add('Contacts', 'Birthday', extendedDateTime(dateInstant(birthday, options.timezone)));
  const anniversary = dateOf(slots.get('Anniversary'));
  if (anniversary) add('Contacts', 'Anniversary', extendedDateTime(dateInstant(anniversary, options.timezone)));
  add('Contacts', 'Spouse', text(slots.get('Spouse')));
  add('Contacts', 'AssistantName', text(slots.get('AssistantName')));
  add('Contacts2', 'ManagerName', text(slots.get('ManagerName')));
  const childNames = childProperties(card)
    .map(text)
    .filter((c): c is string => c !== undefined);
  if (childNames.length > 0)
    out.push(
      el(
        'Contacts',
        'Children',
        childNames.map((c) => el('Contacts', 'Child', c)),
      ),
    );
  const categories = vcard
    .getAllProperties('categories')
    .flatMap((p) => p.getValues().map(String))
    .filter((c) => c.trim() !== '');
  if (categories.length > 0)
    out.push(
      el(
        'Contacts',
        'Categories',
        categories.map((c) => el('Contacts', 'Category', c)),
      ),
    );

  const picture = pictureOf(vcard);
  if (picture && base64Bytes(picture) <= (options.maxPictureBytes ?? MAX_PICTURE_BYTES))
    out.push(el('Contacts', 'Picture', picture));
  const note = text(vcard.getFirstProperty('note'));
  if (note !== undefined)
    out.push(
      bodyElement({ text: note, mime: new Uint8Array(0), isSmime: false }, options.bodyPreferences, 0, {
        withPreview: v >= 140,
      }),
    );
  return out;
}

/**
 * A text element whose tag comes from the tables above (all of them Contacts/Contacts2 tags; the tests encode every
 * one).
 */
function leaf(ns: 'Contacts' | 'Contacts2', tag: string, value: string): WbxmlElement {
  return { ns, tag, children: [], text: value };
}

function structuredValue(property: ICAL.Property): string[] {
  const value = property.getFirstValue() as unknown;
  if (Array.isArray(value)) return value.map((v) => (Array.isArray(v) ? v.join(', ') : String(v ?? '')));
  return String(value ?? '').split(';');
}

// ---------------------------------------------------------------------------------------------------------------
// ApplicationData → vCard

type Mode = 'set' | 'delete' | 'keep';

/**
 * The vCard for a device's Add (no `existing`) or Change (merged into `existing`; see the module comment for which
 * properties an absent element deletes). Throws when `existing` is not a vCard.
 */
export function contactFromApplicationData(app: WbxmlElement, options: ContactInputOptions = {}): string {
  const card = options.existing ? parseCard(options.existing) : newCard();
  const { vcard } = card;
  const element = (tag: string): WbxmlElement | undefined =>
    tag === 'Body' ? child(app, 'Body', 'AirSyncBase') : (child(app, tag, 'Contacts') ?? child(app, tag, 'Contacts2'));
  const mode = (tag: string): Mode =>
    element(tag) ? 'set' : options.existing && options.supported?.includes(tag) ? 'delete' : 'keep';
  const value = (tag: string): string => textOf(element(tag)).trim();

  writeStructured(vcard, 'n', NAME_PARTS, 5, mode, value);
  writeStructured(vcard, 'org', ORG_PARTS, 2, mode, value);
  for (const field of TEXT_FIELDS) {
    const m = mode(field.tag);
    if (m === 'set') setSingle(vcard, field.property, value(field.tag));
    else if (m === 'delete') vcard.removeAllProperties(field.property);
  }
  for (const tag of EMAIL_TAGS)
    writeSlot(
      card,
      tag,
      mode(tag),
      () => bareAddress(value(tag)),
      () => newProperty(card, 'email', card.isVersion4 ? [] : ['INTERNET']),
    );
  for (const tag of PHONE_TAGS)
    writeSlot(
      card,
      tag,
      mode(tag),
      () => value(tag),
      () => newProperty(card, 'tel', NEW_PHONE_TYPES[tag]!),
    );
  // IMPP is a URI: a bare device value gets the generic im: scheme (RFC 3860), which imValue takes off again.
  const imUri = (raw: string): string => (raw === '' || /^[a-z][a-z0-9+.-]*:/i.test(raw) ? raw : `im:${raw}`);
  for (const tag of IM_TAGS)
    writeSlot(
      card,
      tag,
      mode(tag),
      () => imUri(value(tag)),
      () => newProperty(card, 'impp', []),
      () => value(tag),
    );
  for (const kind of Object.keys(ADDRESS_KINDS) as AddressKind[]) writeAddress(card, kind, mode, value);
  writeDate(card, 'Birthday', mode('Birthday'), value('Birthday'), options.timezone);
  writeDate(card, 'Anniversary', mode('Anniversary'), value('Anniversary'), options.timezone);
  for (const tag of ['Spouse', 'AssistantName', 'ManagerName']) {
    writeSlot(
      card,
      tag,
      mode(tag),
      () => value(tag),
      () => newRelated(card, RELATED_FORMS[tag]!.related!, RELATED_FORMS[tag]!.labels[0]!),
    );
  }
  writeChildren(card, mode('Children'), element('Children'));
  writeCategories(vcard, mode('Categories'), element('Categories'));
  writePicture(card, mode('Picture'), value('Picture'), options.maxPictureBytes ?? MAX_PICTURE_BYTES);
  const bodyMode = mode('Body');
  if (bodyMode === 'set') {
    const body = deviceBody(element('Body')!);
    if (body) setSingle(vcard, 'note', body.text);
  } else if (bodyMode === 'delete') {
    vcard.removeAllProperties('note');
  }

  ensureNames(vcard);
  removeOrphanLabels(vcard);
  const textOut = card.isVersion4 ? ICAL.stringify.component(vcard.jCal, VCARD4_URIS_AS_WRITTEN) : vcard.toString();
  return withoutBareCarriageReturns(textOut);
}

/**
 * How vCard 4 is written, where ical.js' own design set would change what it did not touch: it escapes the commas
 * of URI values like text (`data:image/png;base64\,…`, which breaks PHOTO data URIs for other readers; RFC 3986 has
 * no backslash escapes), and takes TEL's default value type to be uri (RFC 6350: text), so that it drops
 * `VALUE=uri` and adds `VALUE=TEXT`.
 */
const VCARD4_URIS_AS_WRITTEN = {
  ...ICAL.design.vcard,
  value: { ...(ICAL.design.vcard.value as Record<string, unknown>), uri: {} },
  property: {
    ...(ICAL.design.vcard.property as Record<string, object>),
    tel: { ...(ICAL.design.vcard.property as Record<string, object>).tel, defaultType: 'text' },
  },
};

function setSingle(vcard: ICAL.Component, name: string, value: string): void {
  if (value === '') {
    vcard.removeAllProperties(name);
    return;
  }
  const property = vcard.getFirstProperty(name);
  if (property) property.setValue(value);
  else vcard.addPropertyWithValue(name, value);
}

/** N or ORG from their elements, component by component. */
function writeStructured(
  vcard: ICAL.Component,
  name: string,
  parts: Record<string, number>,
  size: number,
  mode: (tag: string) => Mode,
  value: (tag: string) => string,
): void {
  const tags = Object.keys(parts);
  if (tags.every((t) => mode(t) === 'keep')) return;
  const current = structured(vcard, name);
  const next = Array.from({ length: Math.max(size, current.length) }, (_, i) => current[i] ?? '');
  for (const tag of tags) {
    const m = mode(tag);
    if (m === 'set') next[parts[tag]!] = value(tag);
    else if (m === 'delete') next[parts[tag]!] = '';
  }
  const property = vcard.getFirstProperty(name);
  if (name !== 'n' && next.every((p) => p === '')) {
    if (property) vcard.removeProperty(property);
  } else if (property) {
    property.setValue(next);
  } else {
    vcard.addProperty(new ICAL.Property(name, vcard)).setValue(next);
  }
}

/** Updates, creates or removes the property an element maps to. */
function writeSlot(
  card: Card,
  tag: string,
  m: Mode,
  value: () => string,
  create: () => ICAL.Property,
  rawValue: () => string = value,
): void {
  const current = card.slots.get(tag);
  if (m === 'keep') return;
  const next = m === 'set' ? value() : '';
  if (next === '') {
    if (current) removeProperty(card, current);
    card.slots.delete(tag);
    return;
  }
  if (current && slotValue(tag, current) === (m === 'set' ? rawValue() : undefined)) return; // unchanged: keep it as written
  const property = current ?? create();
  // A vCard 4 `TEL;VALUE=uri:tel:…` becomes text: a device's number is not a URI.
  if (property.name === 'tel' && property.type === 'uri') property.resetType('text');
  property.setValue(next);
  card.slots.set(tag, property);
}

function removeProperty(card: Card, property: ICAL.Property): void {
  card.vcard.removeProperty(property);
}

/** A new property with TYPE values (lower-case in vCard 4, as RFC 6350 writes them). */
function newProperty(card: Card, name: string, types: readonly string[]): ICAL.Property {
  const property = new ICAL.Property(name, card.vcard);
  if (types.length > 0)
    property.setParameter(
      'type',
      types.map((t) => (card.isVersion4 ? t.toLowerCase() : t)),
    );
  card.vcard.addProperty(property);
  return property;
}

/** The next free Apple group name (`item7`). */
function nextGroup(vcard: ICAL.Component): string {
  let max = 0;
  for (const property of vcard.getAllProperties()) {
    const match = /^item(\d+)$/i.exec(String(property.getFirstParameter('group') ?? ''));
    if (match) max = Math.max(max, Number(match[1]));
  }
  return `item${max + 1}`;
}

/** A related name: RELATED;TYPE=…;VALUE=text in vCard 4, Apple's labelled X-ABRELATEDNAMES in vCard 3. */
function newRelated(card: Card, relatedType: string, appleLabel: string): ICAL.Property {
  if (card.isVersion4) {
    const property = new ICAL.Property('related', card.vcard);
    property.resetType('text');
    property.setParameter('type', relatedType);
    card.vcard.addProperty(property);
    return property;
  }
  return labelled(card, 'x-abrelatednames', appleLabel);
}

function labelled(card: Card, name: string, label: string): ICAL.Property {
  const group = nextGroup(card.vcard);
  const property = new ICAL.Property(name, card.vcard);
  property.setParameter('group', group);
  card.vcard.addProperty(property);
  const labelProperty = card.vcard.addPropertyWithValue(
    'x-ablabel',
    `_$!<${label[0]!.toUpperCase()}${label.slice(1)}>!$_`,
  );
  labelProperty.setParameter('group', group);
  return property;
}

/** Apple labels whose grouped property is gone. */
function removeOrphanLabels(vcard: ICAL.Component): void {
  const used = new Set(
    vcard
      .getAllProperties()
      .filter((p) => p.name !== 'x-ablabel')
      .map((p) => p.getFirstParameter('group'))
      .filter(Boolean),
  );
  for (const label of vcard.getAllProperties('x-ablabel'))
    if (!used.has(label.getFirstParameter('group'))) vcard.removeProperty(label);
}

function writeAddress(
  card: Card,
  kind: AddressKind,
  mode: (tag: string) => Mode,
  value: (tag: string) => string,
): void {
  const parts = Object.keys(ADDRESS_PARTS) as AddressPart[];
  const tags = parts.map((p) => `${kind}Address${p}`);
  if (tags.every((t) => mode(t) === 'keep')) return;
  const current = card.slots.get(`${kind}Address`);
  const components = current ? structuredValue(current) : [];
  const next = Array.from({ length: 7 }, (_, i) => components[i] ?? '');
  parts.forEach((part, i) => {
    const m = mode(tags[i]!);
    if (m === 'set') next[ADDRESS_PARTS[part]] = value(tags[i]!);
    else if (m === 'delete') next[ADDRESS_PARTS[part]] = '';
  });
  if (next.every((c) => c === '')) {
    if (current) removeProperty(card, current);
    card.slots.delete(`${kind}Address`);
    return;
  }
  const property = current ?? newProperty(card, 'adr', [ADDRESS_KINDS[kind]]);
  property.setValue(next);
  card.slots.set(`${kind}Address`, property);
}

/** BDAY / the anniversary from a device date (nearest local midnight); an unchanged date keeps its current form. */
function writeDate(
  card: Card,
  tag: 'Birthday' | 'Anniversary',
  m: Mode,
  value: string,
  timezone: string | undefined,
): void {
  const current = tag === 'Birthday' ? (card.vcard.getFirstProperty('bday') ?? undefined) : card.slots.get(tag);
  if (m === 'keep') return;
  const date = m === 'set' ? deviceDate(value, timezone) : undefined;
  if (!date) {
    if (m === 'delete' && current) removeProperty(card, current);
    return;
  }
  const before = dateOf(current);
  if (current && before && before.year === date.year && before.month === date.month && before.day === date.day) return;
  if (current) removeProperty(card, current);
  const name = tag === 'Birthday' ? 'bday' : card.isVersion4 ? 'anniversary' : 'x-abdate';
  const property = name === 'x-abdate' ? labelled(card, name, 'anniversary') : new ICAL.Property(name, card.vcard);
  const mmdd = `${String(date.month).padStart(2, '0')}-${String(date.day).padStart(2, '0')}`;
  if (date.year === NO_YEAR && card.isVersion4) {
    // vCard 4 has year-less dates: --MMDD.
    property.resetType('date-and-or-time');
    property.jCal[3] = `--${mmdd.replace('-', '')}`;
  } else if (name === 'x-abdate') {
    property.setValue(`${date.year}-${mmdd}`);
  } else {
    property.resetType('date');
    property.setValue(ICAL.VCardTime.fromDateAndOrTimeString(`${String(date.year).padStart(4, '0')}-${mmdd}`, 'date'));
    if (date.year === NO_YEAR) property.setParameter('x-apple-omit-year', String(NO_YEAR));
  }
  if (name !== 'x-abdate') card.vcard.addProperty(property);
  if (tag === 'Anniversary') card.slots.set(tag, property);
}

function writeChildren(card: Card, m: Mode, element: WbxmlElement | undefined): void {
  if (m === 'keep') return;
  const wanted =
    m === 'set'
      ? children(element, 'Child', 'Contacts')
          .map((c) => textOf(c).trim())
          .filter((c) => c !== '')
      : [];
  const current = childProperties(card);
  if (JSON.stringify(current.map(text)) === JSON.stringify(wanted)) return;
  for (const property of current) removeProperty(card, property);
  for (const name of wanted) newRelated(card, 'child', 'child').setValue(name);
}

function writeCategories(vcard: ICAL.Component, m: Mode, element: WbxmlElement | undefined): void {
  if (m === 'keep') return;
  const categories = m === 'set' && element ? categoriesFrom(element) : [];
  const current = vcard
    .getAllProperties('categories')
    .flatMap((p) => p.getValues().map(String))
    .filter((c) => c.trim() !== '');
  if (JSON.stringify(current) === JSON.stringify(categories)) return;
  vcard.removeAllProperties('categories');
  if (categories.length === 0) return;
  const property = new ICAL.Property('categories', vcard);
  property.setValues(categories);
  vcard.addProperty(property);
}

function writePicture(card: Card, m: Mode, base64: string, maxPictureBytes: number): void {
  const current = pictureOf(card.vcard);
  if (m === 'keep') return;
  // A photo too large to have been sent was never on the device: its absence says nothing.
  if (m === 'delete' && current && base64Bytes(current) > maxPictureBytes) return;
  if (m === 'set' && current === base64.replace(/\s+/g, '')) return;
  card.vcard.removeAllProperties('photo');
  if (m !== 'set' || base64 === '') return;
  const clean = base64.replace(/\s+/g, '');
  const type = pictureType(clean);
  if (card.isVersion4) {
    const property = new ICAL.Property('photo', card.vcard);
    property.resetType('uri');
    property.setValue(`data:image/${type.toLowerCase()};base64,${clean}`);
    card.vcard.addProperty(property);
    return;
  }
  const property = new ICAL.Property('photo', card.vcard);
  property.setParameter('encoding', 'b');
  property.setParameter('type', type);
  property.setValue(new ICAL.Binary(clean));
  card.vcard.addProperty(property);
}

/** The image type by its magic bytes (devices send JPEG, sometimes PNG). */
function pictureType(base64: string): string {
  if (base64.startsWith('iVBOR')) return 'PNG';
  if (base64.startsWith('R0lG')) return 'GIF';
  return 'JPEG';
}

/** vCard 3 requires N and FN: FN from the names, the company or an address when a device sent no FileAs. */
function ensureNames(vcard: ICAL.Component): void {
  if (!vcard.hasProperty('n')) {
    const property = new ICAL.Property('n', vcard);
    property.setValue(['', '', '', '', '']);
    vcard.addProperty(property);
  }
  if (text(vcard.getFirstProperty('fn'))) return;
  const [last = '', first = '', middle = '', prefix = '', suffix = ''] = structured(vcard, 'n');
  const fromNames = [prefix, first, middle, last].filter((p) => p).join(' ') + (suffix ? `, ${suffix}` : '');
  const fallback =
    fromNames ||
    structured(vcard, 'org')[0] ||
    text(vcard.getFirstProperty('email')) ||
    text(vcard.getFirstProperty('tel')) ||
    '';
  setSingle(vcard, 'fn', fallback);
  if (!vcard.hasProperty('fn')) vcard.addPropertyWithValue('fn', '');
}
