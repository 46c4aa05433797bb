/**
 * A vCard as a person a message can be addressed to (GalEntry): the directory's entries (GAL_URL, backends/dav/
 * directory.ts) and the user's own contacts, as Search GAL and ResolveRecipients show them; with the S/MIME
 * certificates its KEY publishes (vcard-certificates.ts) and where its free/busy is read (FBURL, RFC 6350 §6.9.1).
 */
import ICAL from 'ical.js';
import type { GalEntry } from '../backends/types.ts';
import { certificatesOfVcard } from './vcard-certificates.ts';

function texts(card: ICAL.Component, name: string): string[] {
  return card.getAllProperties(name).flatMap((p) => {
    const value = p.getFirstValue();
    const text = Array.isArray(value) ? value.join(' ') : String(value ?? '');
    return text.trim() ? [text.trim()] : [];
  });
}

function phoneOf(card: ICAL.Component, types: string[]): string | undefined {
  for (const p of card.getAllProperties('tel')) {
    const type = p.getParameter('type');
    const list = (Array.isArray(type) ? type : [type]).map((t) => String(t ?? '').toLowerCase());
    if (types.some((t) => list.includes(t)))
      return (
        String(p.getFirstValue() ?? '')
          .replace(/^tel:/i, '')
          .trim() || undefined
      );
  }
  return undefined;
}

/** One directory vCard as a GAL entry; undefined when it has no email address (it cannot be a recipient). */
export function directoryEntryOf(vcard: string): GalEntry | undefined {
  let card: ICAL.Component;
  try {
    const parsed = ICAL.parse(vcard) as unknown[];
    card = new ICAL.Component((Array.isArray(parsed[0]) ? parsed[0] : parsed) as unknown[]);
  } catch {
    return undefined;
  }
  const emails = texts(card, 'email').map((e) => e.replace(/^mailto:/i, '').toLowerCase());
  if (emails.length === 0) return undefined;
  const n = card.getFirstPropertyValue('n');
  const [last, first] = Array.isArray(n) ? n.map((v) => (Array.isArray(v) ? v.join(' ') : String(v ?? '')).trim()) : [];
  const org = card.getFirstPropertyValue('org');
  const company = Array.isArray(org)
    ? String(org[0] ?? '').trim()
    : typeof org === 'string'
      ? org.split(';')[0]!.trim()
      : undefined;
  const entry: GalEntry = {
    displayName: texts(card, 'fn')[0] ?? ([first, last].filter(Boolean).join(' ') || emails[0]!),
    emails,
  };
  const set = <K extends keyof GalEntry>(key: K, value: GalEntry[K] | undefined): void => {
    if (value !== undefined && value !== '') entry[key] = value;
  };
  set('firstName', first);
  set('lastName', last);
  set('company', company);
  set('title', texts(card, 'title')[0]);
  set('office', texts(card, 'x-office')[0] ?? texts(card, 'role')[0]);
  set('alias', texts(card, 'nickname')[0] ?? emails[0]!.split('@')[0]);
  set('phone', phoneOf(card, ['work', 'voice']));
  set('homePhone', phoneOf(card, ['home']));
  set('mobilePhone', phoneOf(card, ['cell', 'mobile']));
  set('freeBusyUrl', texts(card, 'fburl')[0]);
  const certificates = certificatesOfVcard(card);
  if (certificates.length) entry.certificates = certificates;
  return entry;
}
