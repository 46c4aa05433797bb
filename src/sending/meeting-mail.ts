/**
 * Sending iTIP messages by mail (iMIP) for the user: MeetingResponse's REPLY or COUNTER (16.x), and the REQUEST/CANCEL
 * of meetings the user organizes on a 16.x device (Sync of a calendar). Through the same SMTP submitter as SendMail.
 */
import {
  imipMime,
  meetingText,
  organizedMeeting,
  organizerMessageCalendar,
  schedulingSignature,
  withSequenceRaised,
  type ItipMethod,
} from '../items/itip.ts';
import { plainAddress, plainName, primaryAddress } from '../items/address.ts';
import type { CommandContext } from '../protocol/command.ts';

/**
 * The user's own addresses, the one to send from first: the login when it is an address, else login@MAIL_DOMAIN; then
 * the aliases SENDER_ALIASES gives the login or that address. Lower case.
 */
export function userAddresses(context: Pick<CommandContext, 'user' | 'config'>): string[] {
  const login = context.user.login.toLowerCase();
  const address = primaryAddress(login, context.config.mailDomain);
  const aliases = context.config.senderAliases ?? {};
  const all = [address, ...(aliases[login] ?? []), ...(address ? (aliases[address] ?? []) : [])];
  return [...new Set(all.filter((a): a is string => a !== undefined).map((a) => a.toLowerCase()))];
}

export interface ItipMail {
  to: { email: string; name?: string }[];
  subject: string;
  method: ItipMethod;
  ics: string;
  text: string;
}

/** How long a sent iMIP message is remembered: as long as a device may retry the request that sent it. */
const ITIP_MARKER_TTL_MS = 7 * 24 * 3_600_000;
/** How long one is held while it is being sent; a crashed attempt frees it after this. */
const ITIP_SENDING_TTL_MS = 10 * 60_000;

/** What sending iMIP needs of a request: the user, the submitter, and the device's markers (once per message). */
export type ItipContext = Pick<CommandContext, 'user' | 'config' | 'backends' | 'state' | 'device'>;

/**
 * Submits one iMIP message from the user, once: a retried request (a resent Add or MeetingResponse, a Status 16 or 3
 * retry meeting an earlier attempt's work) that would mail the same message again sends nothing. The same message is
 * the same method, event (UID, RECURRENCE-ID), SEQUENCE and recipient set, and for a REPLY or COUNTER the same answer
 * (RFC 5546 §2.1.4: SEQUENCE orders an organizer's revisions; an attendee's answer is its PARTSTAT and proposal), kept
 * as a device marker. Throws SubmissionError when the SMTP server refuses it (the marker is freed for a retry).
 */
export async function sendItip(context: ItipContext, mail: ItipMail): Promise<void> {
  const from = userAddresses(context)[0] ?? context.user.login;
  // Recipients come from iCalendar the device or an invitation wrote: only plain addresses reach headers and envelope.
  const to = mail.to.flatMap((t) => {
    const email = plainAddress(t.email);
    const name = plainName(t.name);
    return email ? [{ email, ...(name ? { name } : {}) }] : [];
  });
  if (to.length === 0) return;
  const mime = imipMime({
    from: { email: from },
    to,
    subject: mail.subject,
    method: mail.method,
    ics: mail.ics,
    text: mail.text,
  });
  const marker = await itipMarker(
    mail,
    to.map((t) => t.email),
  );
  const held = await context.state.claimMarker(context.device, marker, {
    value: 'sending',
    expiresAt: Date.now() + ITIP_SENDING_TTL_MS,
  });
  if (held) return;
  try {
    await context.backends.submitter.submit(context.user, { from, to: to.map((t) => t.email) }, mime);
  } catch (err) {
    await context.state.deleteMarker(context.device, marker).catch(() => undefined);
    throw err;
  }
  await context.state
    .putMarker(context.device, marker, { value: 'sent', expiresAt: Date.now() + ITIP_MARKER_TTL_MS })
    .catch(() => undefined);
}

/** The marker name of one iMIP message: a hash of what makes it the same message (see sendItip). */
async function itipMarker(mail: ItipMail, recipients: string[]): Promise<string> {
  const lines = mail.ics.replace(/\r?\n[ \t]/g, '').split(/\r?\n/);
  const value = (name: string): string =>
    lines
      .filter((l) => new RegExp(`^${name}[;:]`, 'i').test(l))
      .map((l) => l.slice(l.indexOf(':') + 1).trim())
      .join(',');
  const answer =
    mail.method === 'REPLY' || mail.method === 'COUNTER'
      ? lines.filter((l) => /^(ATTENDEE|DTSTART|DTEND|DURATION|COMMENT)[;:]/i.test(l)).join('\n')
      : '';
  const key = JSON.stringify([
    mail.method,
    value('UID'),
    value('RECURRENCE-ID'),
    value('SEQUENCE') || '0',
    [...new Set(recipients.map((r) => r.toLowerCase()))].sort(),
    // What attendees must hear about (times, place, title, status, who): a change sent without a raised SEQUENCE is
    // still a new message.
    schedulingSignature(mail.ics) ?? '',
    answer,
  ]);
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(key));
  return `imip:${Array.from(new Uint8Array(digest).slice(0, 16), (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/**
 * After the device wrote an event (`before` → `after`, either undefined for an Add or a Delete): when the user
 * organizes it and invites others, REQUEST to the current attendees and CANCEL to those removed, or CANCEL to all
 * when the event was deleted or cancelled. Failures are the caller's to log: the calendar write itself stands.
 */
export async function sendInvitations(
  context: ItipContext,
  before: string | undefined,
  after: string | undefined,
): Promise<ItipMethod[]> {
  const me = userAddresses(context);
  const old = before ? organizedMeeting(before, me) : undefined;
  const now = after ? organizedMeeting(after, me) : undefined;
  const users = new Set(me);
  const others = (m: typeof now): { email: string; name?: string }[] =>
    m ? m.attendees.filter((a) => !users.has(a.email)) : [];
  const sent: ItipMethod[] = [];
  // A change attendees need not hear about (a reminder, a category, the body): no mail.
  if (old && now && before && after && schedulingSignature(before) === schedulingSignature(after)) return sent;
  if (now && !now.cancelled) {
    await sendItip(context, {
      to: others(now),
      subject: now.summary,
      method: 'REQUEST',
      ics: organizerMessageCalendar(after!, 'REQUEST'),
      text: meetingText(now),
    });
    sent.push('REQUEST');
    const removed = others(old).filter((a) => !others(now).some((n) => n.email === a.email));
    if (removed.length && before) {
      await sendItip(context, {
        to: removed,
        subject: `Canceled: ${now.summary}`,
        method: 'CANCEL',
        ics: organizerMessageCalendar(before, 'CANCEL'),
        text: meetingText(now),
      });
      sent.push('CANCEL');
    }
    return sent;
  }
  const cancelled = now?.cancelled ? now : old;
  const source = now?.cancelled ? after : before;
  if (cancelled && source && !(old?.cancelled && now?.cancelled)) {
    await sendItip(context, {
      to: others(cancelled),
      subject: `Canceled: ${cancelled.summary}`,
      method: 'CANCEL',
      ics: organizerMessageCalendar(source, 'CANCEL'),
      text: meetingText(cancelled),
    });
    sent.push('CANCEL');
  }
  return sent;
}

/**
 * Before a device's Change of an event is written: a meeting the user organizes gets its SEQUENCE raised when attendees
 * must hear of it.
 */
export function prepareMeetingWrite(
  context: Pick<CommandContext, 'user' | 'config'>,
  before: string,
  after: string,
): string {
  try {
    return withSequenceRaised(before, after, userAddresses(context));
  } catch {
    return after;
  }
}
