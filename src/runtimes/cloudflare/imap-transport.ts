/**
 * IMAP over cloudflare:sockets, not workerd's node:net: there every read and write of a socket with an idle timeout
 * adds a 'timeout' listener that stays (issue 16), and node:tls cannot upgrade a connection with STARTTLS. The sockets
 * transport re-arms one timer and upgrades with the socket's own startTls() (`secureTransport: 'starttls'`), so
 * IMAP_SECURE=false (STARTTLS, required) works on Workers as well as implicit TLS.
 */
import { connect } from 'cloudflare:sockets';
import { createSocketsTransport, type ImapTransport } from 'imapflow';

export function socketsImapTransport(): ImapTransport {
  return createSocketsTransport((address, options) =>
    // The Workers types want allowHalfOpen always given; its default is false.
    connect(address, { ...options, allowHalfOpen: options?.allowHalfOpen ?? false }),
  );
}
