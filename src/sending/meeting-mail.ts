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

/** The user's own addresses: the login when it is an address, else login@MAIL_DOMAIN. */
export function userAddresses(context: Pick<CommandContext, 'user' | 'config'>): string[] {
  const address = primaryAddress(context.user.login, context.config.mailDomain);
  return address ? [address] : [];
}

export interface ItipMail {
  to: { email: string; name?: string }[];
  subject: string;
  method: ItipMethod;
  ics: string;
  text: string;
}

/** Submits one iMIP message from the user. Throws SubmissionError when the SMTP server refuses it. */
export async function sendItip(
  context: Pick<CommandContext, 'user' | 'config' | 'backends'>,
  mail: ItipMail,
): Promise<void> {
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
  await context.backends.submitter.submit(context.user, { from, to: to.map((t) => t.email) }, mime);
}

/**
 * After the device wrote an event (`before` → `after`, either undefined for an Add or a Delete): when the user
 * organizes it and invites others, REQUEST to the current attendees and CANCEL to those removed, or CANCEL to all
 * when the event was deleted or cancelled. Failures are the caller's to log: the calendar write itself stands.
 */
export async function sendInvitations(
  context: Pick<CommandContext, 'user' | 'config' | 'backends'>,
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
