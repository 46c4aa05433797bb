/**
 * A message's follow-up flag (MS-ASEMAIL §2.2.2.34 Flag) beyond what IMAP holds. IMAP has only \Flagged; the rest a
 * device sets (complete, start and due dates, reminder, subject, ordering) is kept per user and message in the state
 * store (folders/mail-flags.ts) and sent back from there, so the device gets what it set (MS-ASEMAIL §3.2.5.4.2), and
 * so do a resync from SyncKey 0 and the user's other devices.
 *
 * - Status 2 (active): \Flagged, details kept.
 * - Status 1 (complete): not \Flagged, details kept: the device still sees the flag completed.
 * - Status 0 or an empty Flag (cleared): not \Flagged, details dropped.
 * - Another client clearing \Flagged drops active details; another client setting it replaces complete ones.
 */
import type { FlagDetails } from '../state/types.ts';
import { el, textOf, type WbxmlElement } from '../wbxml/tree.ts';

/** The Flag children a device may set, in the order Exchange sends them (MS-ASEMAIL §2.2.2.34). */
const FLAG_FIELDS: readonly (readonly ['Email' | 'Tasks', string])[] = [
  ['Tasks', 'Subject'],
  ['Email', 'Status'],
  ['Email', 'FlagType'],
  ['Tasks', 'DateCompleted'],
  ['Email', 'CompleteTime'],
  ['Tasks', 'StartDate'],
  ['Tasks', 'DueDate'],
  ['Tasks', 'UtcStartDate'],
  ['Tasks', 'UtcDueDate'],
  ['Tasks', 'ReminderSet'],
  ['Tasks', 'ReminderTime'],
  ['Tasks', 'OrdinalDate'],
  ['Tasks', 'SubOrdinalDate'],
];

/** A field longer than this is not a date or a short subject: it is not kept (the state stays small). */
const MAX_FIELD_LENGTH = 256;

/** What a device's `<Flag>` asks for; 'invalid' for a Status other than 0, 1 or 2 (MS-ASEMAIL §2.2.2.74). */
export function flagRequestOf(flag: WbxmlElement): { flagged: boolean; details: FlagDetails | undefined } | 'invalid' {
  const status = flag.children.find((c) => c.ns === 'Email' && c.tag === 'Status');
  const value = status ? textOf(status).trim() : '0';
  if (value !== '0' && value !== '1' && value !== '2') return 'invalid';
  if (value === '0') return { flagged: false, details: undefined };
  const fields: FlagDetails['fields'] = [];
  for (const [ns, tag] of FLAG_FIELDS) {
    const found = flag.children.find((c) => c.ns === ns && c.tag === tag);
    const text = found ? textOf(found).trim() : undefined;
    if (text !== undefined && text.length <= MAX_FIELD_LENGTH)
      fields.push([ns, tag, tag === 'Status' && ns === 'Email' ? value : text]);
  }
  return { flagged: value === '2', details: { status: value, fields } };
}

/**
 * The `<Flag>` to send for a message that is (or is not) \Flagged, given the details kept for it, and the details to
 * keep from now on.
 */
export function flagToDevice(
  flagged: boolean,
  kept: FlagDetails | undefined,
): { element: WbxmlElement; keep: FlagDetails | undefined } {
  if (kept && (kept.status === '2') === flagged) {
    return {
      element: el(
        'Email',
        'Flag',
        kept.fields.map(([ns, tag, text]) => ({ ns, tag, children: [], text }) as WbxmlElement),
      ),
      keep: kept,
    };
  }
  // Not what the device set: another client flagged or cleared it; IMAP's state wins.
  const element = flagged
    ? el('Email', 'Flag', [el('Email', 'Status', '2'), el('Email', 'FlagType', 'Flag for follow up')])
    : el('Email', 'Flag');
  return { element, keep: undefined };
}

/** \Flagged, compared case-insensitively (RFC 3501 §2.3.2). */
export function isFlagged(flags: ReadonlySet<string>): boolean {
  for (const f of flags) if (f.toLowerCase() === '\\flagged') return true;
  return false;
}
