/**
 * SMTP submission inside workerd (Cloudflare Workers, `nodejs_compat`): nodemailer's client, on a socket opened here.
 *
 * What was checked in workerd 1.20260426 (wrangler 4.86; test/workers/smtp.test.ts runs the first three):
 * - nodemailer's SMTP client and MailComposer run: plain TCP, implicit TLS (465) and STARTTLS (587) all deliver;
 * - workerd checks the server certificate against the host it connected to and ignores `servername`; nodemailer
 *   resolves a host name itself (node:dns, over DNS-over-HTTPS in workerd) and connects to the address, so a server
 *   certificate issued for a name, as they all are, would never match. Opening the socket by name here avoids both;
 * - `rejectUnauthorized: false` does not exist there: the server needs a certificate the platform trusts.
 * Workers allow 6 simultaneous outbound connections per request; a submission uses one, beside the IMAP one.
 */
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import { nodemailerSubmitter } from './nodemailer.ts';
import type { MailSubmitter, SmtpSettings } from './types.ts';

/** A connection to the SMTP server by its host name: TLS from the start when `secure`, plain TCP otherwise. */
export function openByHostName(settings: SmtpSettings): Socket {
  repairIdleTimerRearm();
  return settings.secure
    ? tls.connect({ host: settings.host, port: settings.port, servername: settings.host })
    : net.connect({ host: settings.host, port: settings.port });
}

export function workerdSubmitter(settings: SmtpSettings): MailSubmitter {
  return nodemailerSubmitter(settings, { openSocket: openByHostName });
}

/** The parts of workerd's node:net Socket that re-arm its idle timer. */
interface IdleTimedSocket {
  /** The idle timeout set by setTimeout, in ms (0: none); public in Node's API. */
  timeout?: number;
  /** The plain socket under a TLS socket that was upgraded from it (STARTTLS). */
  _parentWrap?: IdleTimedSocket | null;
  setTimeout(ms: number): unknown;
}

let repaired = false;

/**
 * workerd's node:net re-arms a socket's idle timer on every read and write (`Socket.prototype._unrefTimer`) by
 * calling `this.setTimeout(ms, callback)`: each call adds a `once('timeout')` listener, and the new timer is lost
 * (the field meant to hold it gets the socket, which setTimeout returns). nodemailer gives its socket an idle timeout
 * (socketTimeout) and writes once per SMTP command and per chunk of DATA, so one submission piled up listeners past
 * EventEmitter's limit of 10 (the leak warning, which inside workerd could itself throw) and left a timer behind per
 * write. Re-armed here as Node does it, through `setTimeout(ms)` alone, which replaces the one timer and adds no
 * listener; once per isolate, only in workerd (the Node runtime never loads this module's submitter, and Node's own
 * Socket is right). STARTTLS sockets are covered: the TLS socket is a Socket too, and walks down to the plain one.
 */
function repairIdleTimerRearm(): void {
  if (repaired) return;
  repaired = true;
  const runtime = (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent;
  if (runtime !== 'Cloudflare-Workers') return;
  const proto = net.Socket.prototype as unknown as { _unrefTimer?: () => void };
  if (typeof proto._unrefTimer !== 'function') return;
  proto._unrefTimer = function rearmIdleTimer(this: IdleTimedSocket): void {
    for (let s: IdleTimedSocket | null | undefined = this; s; s = s._parentWrap) {
      if (s.timeout) s.setTimeout(s.timeout);
    }
  };
}
