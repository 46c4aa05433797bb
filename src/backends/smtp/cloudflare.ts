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
  const socket = settings.secure
    ? tls.connect({ host: settings.host, port: settings.port, servername: settings.host })
    : net.connect({ host: settings.host, port: settings.port });
  // workerd's sockets gain a 'timeout' listener each time nodemailer sets the idle timeout (once per command), so a
  // message to many recipients passes the default limit of 10, and the warning for that can crash inside workerd.
  socket.setMaxListeners(0);
  return socket;
}

export function workerdSubmitter(settings: SmtpSettings): MailSubmitter {
  return nodemailerSubmitter(settings, { openSocket: openByHostName });
}
