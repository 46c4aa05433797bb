/**
 * Backend sockets (src/backends/sockets.ts) over cloudflare:sockets, for ManageSieve and SMTP inside workerd: implicit
 * TLS with `secureTransport: 'on'`, STARTTLS with `secureTransport: 'starttls'` and the socket's own startTls(). The
 * runtime checks the certificate against the host name connected to, with its own roots (SSL_CERT_FILE under
 * wrangler dev), and offers no way to skip that check.
 */
import { connect } from 'cloudflare:sockets';
import type { BackendSocket, OpenBackendSocket } from '../../backends/sockets.ts';

export const openCloudflareSocket: OpenBackendSocket = async (target) => {
  let socket = connect(
    { hostname: target.host, port: target.port },
    { secureTransport: target.tls === 'implicit' ? 'on' : 'starttls', allowHalfOpen: false },
  );
  // A refused connection, or a failed handshake of implicit TLS, rejects here rather than at the first read.
  await socket.opened;
  let encrypted = target.tls === 'implicit';
  let reader = socket.readable.getReader();
  let writer = socket.writable.getWriter();
  const backend: BackendSocket = {
    get encrypted() {
      return encrypted;
    },
    async read() {
      const { done, value } = await reader.read();
      return done ? null : (value as Uint8Array);
    },
    write: (bytes) => writer.write(bytes),
    async startTls() {
      // startTls() takes over the plain streams: their locks must be free, with no read pending (BackendSocket.read).
      reader.releaseLock();
      writer.releaseLock();
      socket = socket.startTls();
      await socket.opened;
      reader = socket.readable.getReader();
      writer = socket.writable.getWriter();
      encrypted = true;
    },
    close() {
      socket.close().catch(() => undefined);
    },
  };
  return backend;
};
