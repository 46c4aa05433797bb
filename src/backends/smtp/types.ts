/**
 * Sending mail: what SendMail, SmartReply and SmartForward ask of an SMTP submission server. One interface, one
 * implementation per runtime where the runtimes differ (nodemailer on Node and Lambda; see index.ts).
 *
 * The message goes as given (the caller has built it, Bcc header removed); the envelope says who gets it. The user's
 * credentials are passed through for each submission and never kept or logged.
 */

import type { UserCredentials } from '../auth.ts';

export interface SmtpSettings {
  host: string;
  port: number;
  /**
   * true: implicit TLS (465). false: plain TCP, upgraded with STARTTLS when the server offers it (required for
   * 'required' auth).
   */
  secure: boolean;
  /**
   * 'optional': log in when the server offers AUTH on an encrypted connection, submit without otherwise;
   * 'required': always log in (no AUTH, or no encryption: the submission fails); 'none': never log in.
   */
  auth: 'optional' | 'required' | 'none';
}

/** The user's credentials, whole: AUTH with the password, or AUTH XOAUTH2 with the access token of a Bearer login. */
export type SmtpLogin = UserCredentials;

export interface SmtpEnvelope {
  /** MAIL FROM; '' for the null sender. */
  from: string;
  /** RCPT TO, one per address. */
  to: string[];
}

export interface SubmissionResult {
  /** Recipients the server took. */
  accepted: string[];
  /** Recipients the server refused while taking the message for the others. */
  rejected: string[];
  /** The server's reply to each refused recipient (RCPT TO), for the non-delivery report. */
  rejectedReplies?: { address: string; reply: string }[];
  /** The server's last reply, e.g. `250 2.0.0 Ok: queued as 4Z…`. */
  response: string;
}

/**
 * Why a submission failed, as far as a device needs to know:
 * - 'connection': the server could not be reached or went away (worth retrying later);
 * - 'auth': the login was refused, or the server offered no login (or no TLS) where one is required;
 * - 'recipients': the server refused every recipient (`recipientAddress`: because of the addresses themselves, 5.1.x);
 * - 'size': the message is larger than the server takes (552, 5.2.3, 5.3.4);
 * - 'quota': the sender is over a sending or storage quota (4.2.2/5.2.2 mailbox full, rate or quota limits);
 * - 'rejected': anything else the server refused (sender, content, policy);
 * - 'unconfirmed': the whole message went out, and the connection broke before the server's reply to it: the server
 *   may well have taken it (the lost final reply of RFC 1047). Sending it again risks a second copy.
 */
export type SubmissionFailure = 'connection' | 'auth' | 'recipients' | 'size' | 'quota' | 'rejected' | 'unconfirmed';

export class SubmissionError extends Error {
  override readonly name = 'SubmissionError';
  constructor(
    readonly failure: SubmissionFailure,
    /** For logs: the SMTP reply or the socket error, never a credential. */
    message: string,
    readonly details: {
      responseCode?: number;
      enhancedCode?: string;
      recipientAddress?: boolean;
      transient?: boolean;
    } = {},
  ) {
    super(message);
  }
}

/** Submits messages to the SMTP server for one user at a time. */
export interface MailSubmitter {
  /** Sends one message. Resolves when the server has taken it; rejects with SubmissionError. */
  submit(login: SmtpLogin, envelope: SmtpEnvelope, message: Uint8Array): Promise<SubmissionResult>;
}

/** `5.1.1` from a reply like `550 5.1.1 <x@y>: Recipient address rejected`, when the server sends enhanced codes. */
export function enhancedCodeOf(response: string | undefined): string | undefined {
  return /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(response ?? '')?.[1];
}

/** Sorts an SMTP reply the server refused something with into a SubmissionFailure. */
export function classifyReply(
  code: number | undefined,
  response: string | undefined,
  stage: 'mail' | 'rcpt' | 'data' | 'auth' | 'other',
): SubmissionFailure {
  // X.Y.Z without the class: '1.1' bad mailbox, '2.2' mailbox full, '3.4' message too big, '7.8' bad credentials …
  const sub = enhancedCodeOf(response)?.slice(2);
  if (
    stage === 'auth' ||
    code === 530 ||
    code === 534 ||
    code === 535 ||
    code === 538 ||
    sub === '7.8' ||
    sub === '7.9'
  )
    return 'auth';
  if (sub === '3.4' || sub === '2.3' || (code === 552 && sub === undefined)) return 'size';
  if (sub === '2.2' || /quota|rate limit|too many messages/i.test(response ?? '')) return 'quota';
  if (code === 421) return 'connection';
  if (stage === 'rcpt') return 'recipients';
  return 'rejected';
}
