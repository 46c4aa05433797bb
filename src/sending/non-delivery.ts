/**
 * The non-delivery report for recipients the SMTP server refused while it took the message for the others (RCPT TO
 * answered 4xx/5xx, RFC 5321 §3.3): the device was told the message was sent, so the refusal reaches the user as
 * Exchange's does, a report in the Inbox. RFC 3464 (multipart/report, RFC 6522): a human-readable part, one
 * message/delivery-status part with a block per refused recipient, and the original's header (text/rfc822-headers).
 * Built with nodemailer's MIME tree (MimeNode, what its MailComposer builds on): MailComposer itself makes only
 * multipart/mixed and alternative trees.
 */
import MimeNode from 'nodemailer/lib/mime-node';
import { enhancedCodeOf } from '../backends/smtp/types.ts';
import { headerBlock, rfc5322Date } from '../items/outgoing.ts';

export interface RefusedRecipient {
  address: string;
  /** The server's reply to RCPT TO, e.g. `550 5.1.1 <bob@example.test>: Recipient address rejected`. */
  reply: string;
}

export interface NonDeliveryReport {
  /** The user's address: the report's To. */
  user: string;
  /** The message as it was sent (its header goes into the report). */
  original: Uint8Array;
  subject: string | undefined;
  refused: RefusedRecipient[];
  /** The SMTP server that refused them (Remote-MTA) and the one reporting (Reporting-MTA: this service's name). */
  remoteMta: string;
  reportingMta: string;
  now?: Date;
}

/** The report as a message, ready to append to the Inbox. */
export async function buildNonDeliveryReport(report: NonDeliveryReport): Promise<Uint8Array> {
  const now = report.now ?? new Date();
  const oneLine = (text: string): string => text.replace(/[\r\n\t]+/g, ' ').trim();
  const root = new MimeNode('multipart/report; report-type=delivery-status', { newline: 'windows' });
  root.setHeader({
    From: `Mail Delivery System <postmaster@${domainOf(report.user)}>`,
    To: report.user,
    Subject: `Undeliverable: ${oneLine(report.subject ?? '')}`.trim(),
    Date: rfc5322Date(now),
    // RFC 3834 §5: generated automatically, in answer to a message; nothing must answer it again.
    'Auto-Submitted': 'auto-replied',
  });
  const lines = [
    'Your message was not delivered to these recipients; the mail server refused them.',
    'Everyone else it was addressed to got it.',
    '',
    ...report.refused.flatMap((r) => [`  ${oneLine(r.address)}`, `    ${oneLine(r.reply)}`]),
    '',
  ];
  root.createChild('text/plain; charset=utf-8').setContent(lines.join('\r\n'));
  const perMessage = [`Reporting-MTA: dns; ${oneLine(report.reportingMta)}`, `Arrival-Date: ${rfc5322Date(now)}`];
  const perRecipient = report.refused.map((r) =>
    [
      `Final-Recipient: rfc822; ${oneLine(r.address)}`,
      'Action: failed',
      `Status: ${statusOf(r.reply)}`,
      `Remote-MTA: dns; ${oneLine(report.remoteMta)}`,
      `Diagnostic-Code: smtp; ${oneLine(r.reply)}`,
    ].join('\r\n'),
  );
  root
    .createChild('message/delivery-status')
    .setContent(`${[perMessage.join('\r\n'), ...perRecipient].join('\r\n\r\n')}\r\n`);
  root.createChild('text/rfc822-headers').setContent(`${headerBlock(report.original)}\r\n`);
  return new Uint8Array(await root.build());
}

/** The RFC 3463 status of a refusal: the reply's enhanced code, else its class (4.0.0, 5.0.0). */
function statusOf(reply: string): string {
  return enhancedCodeOf(reply) ?? (reply.startsWith('4') ? '4.0.0' : '5.0.0');
}

function domainOf(address: string): string {
  return /@([^@\s>]+)$/.exec(address)?.[1] ?? 'localhost';
}
