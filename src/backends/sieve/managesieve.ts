/**
 * A small ManageSieve client (RFC 5804): enough to upload, activate and remove one script as the user, with the
 * user's own credentials (AUTHENTICATE "PLAIN"). The protocol only; the connection comes from the runtime's backend
 * sockets (src/backends/sockets.ts: node:net/node:tls, or cloudflare:sockets on Workers). Nothing here logs; the
 * credentials only ever go onto the socket, and only once it is encrypted unless plaintext was configured.
 */
import { Buffer } from 'node:buffer';
import { type BackendSocket, openBackendSocket } from '../sockets.ts';

export interface ManageSieveServer {
  host: string;
  port: number;
  /**
   * true: TLS from the first byte. false: STARTTLS (RFC 5804 §2.2), required: a server that does not offer it is
   * refused before the password is sent, unless `allowPlaintext`.
   */
  secure: boolean;
  /** With `secure` false: go on in plaintext (no STARTTLS) — loopback or private test networks only. */
  allowPlaintext?: boolean;
}

export interface ManageSieveCredentials {
  login: string;
  password: string;
}

/** A NO or BYE answer, or a broken connection. `code` is the response code when the server gave one. */
export class ManageSieveError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'ManageSieveError';
  }
}

interface Response {
  /** Lines before the final OK (capabilities, listings), literals inlined. */
  lines: string[];
  status: 'OK' | 'NO' | 'BYE';
  code?: string;
  text: string;
}

/** How long the server may take to send the next bytes of an answer. */
const TIMEOUT_MS = 15_000;

/** A ManageSieve string: quoted when it can be (no CR/LF, short), else a non-synchronising literal. */
export function sieveProtocolString(value: string): string {
  if (!/[\r\n\0]/.test(value) && Buffer.byteLength(value) <= 1024)
    return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  return `{${Buffer.byteLength(value)}+}\r\n${value}`;
}

export class ManageSieveSession {
  private buffer = Buffer.alloc(0);
  private failure: Error | null = null;
  capabilities = new Map<string, string>();

  private constructor(private readonly socket: BackendSocket) {}

  /** Whether the connection is encrypted (implicit TLS or after STARTTLS). */
  get encrypted(): boolean {
    return this.socket.encrypted;
  }

  /**
   * Connects and reads the greeting; with `secure` false, upgrades with STARTTLS before anything else is sent, or
   * refuses a server that does not offer it (the capability list came in clear: a missing STARTTLS may be an attacker
   * stripping it), unless plaintext was configured.
   */
  static async open(server: ManageSieveServer): Promise<ManageSieveSession> {
    const opening = openBackendSocket({
      host: server.host,
      port: server.port,
      tls: server.secure ? 'implicit' : 'starttls',
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    let socket: BackendSocket;
    try {
      socket = await Promise.race([
        opening,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('no connection in time')), TIMEOUT_MS);
        }),
      ]);
    } catch (err) {
      // A connection that comes up after the time ran out is closed at once.
      opening.then(
        (late) => late.close(),
        () => undefined,
      );
      throw new ManageSieveError(`ManageSieve connection failed: ${(err as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
    const session = new ManageSieveSession(socket);
    try {
      const greeting = await session.read();
      if (greeting.status !== 'OK') throw new ManageSieveError(`ManageSieve greeting: ${greeting.text}`, greeting.code);
      session.capabilities = parseCapabilities(greeting.lines);
      if (!server.secure && !server.allowPlaintext) await session.startTls(server.host);
    } catch (err) {
      session.close();
      throw err;
    }
    return session;
  }

  /** RFC 5804 §2.2: STARTTLS, the TLS handshake, then the capabilities again (those read in clear are dropped). */
  private async startTls(host: string): Promise<void> {
    if (!this.capabilities.has('STARTTLS'))
      throw new ManageSieveError(
        `ManageSieve server ${host} does not offer STARTTLS; refusing to send the password in plaintext ` +
          '(set SIEVE_SECURE=true for implicit TLS, or ALLOW_PLAINTEXT_BACKENDS=true on a private network)',
        'STARTTLS',
      );
    await this.command('STARTTLS');
    // A server sends nothing between its OK and the handshake: bytes already here were injected in clear.
    if (this.buffer.length > 0)
      throw new ManageSieveError('ManageSieve server sent data after STARTTLS before the TLS handshake', 'STARTTLS');
    try {
      await this.socket.startTls();
    } catch (err) {
      throw new ManageSieveError(`ManageSieve STARTTLS failed: ${(err as Error).message}`, 'STARTTLS');
    }
    const after = await this.read();
    if (after.status !== 'OK') throw new ManageSieveError(`ManageSieve after STARTTLS: ${after.text}`, after.code);
    this.capabilities = parseCapabilities(after.lines);
  }

  async authenticatePlain(credentials: ManageSieveCredentials): Promise<void> {
    const sasl = (this.capabilities.get('SASL') ?? '').toUpperCase().split(/\s+/);
    if (!sasl.includes('PLAIN')) throw new ManageSieveError('ManageSieve server does not offer SASL PLAIN');
    const token = Buffer.from(`\0${credentials.login}\0${credentials.password}`, 'utf8').toString('base64');
    await this.command(`AUTHENTICATE "PLAIN" ${sieveProtocolString(token)}`);
  }

  async putScript(name: string, content: string): Promise<void> {
    await this.command(`PUTSCRIPT ${sieveProtocolString(name)} {${Buffer.byteLength(content)}+}\r\n${content}`);
  }

  /** RFC 5804 §2.7: the user's scripts, and which one is active. */
  async listScripts(): Promise<{ name: string; active: boolean }[]> {
    const response = await this.command('LISTSCRIPTS');
    return response.lines.flatMap((line) => {
      const m = /^"((?:[^"\\]|\\.)*)"\s*(ACTIVE)?\s*$/i.exec(line);
      return m ? [{ name: m[1]!.replace(/\\(.)/g, '$1'), active: m[2] !== undefined }] : [];
    });
  }

  /** RFC 5804 §2.9: the text of `name` (the literal that readLine inlines as a quoted string). */
  async getScript(name: string): Promise<string> {
    const response = await this.command(`GETSCRIPT ${sieveProtocolString(name)}`);
    return unquote(response.lines.join('\r\n'));
  }

  /** The Sieve extensions the server implements (the SIEVE capability, RFC 5804 §1.7). */
  sieveExtensions(): string[] {
    return (this.capabilities.get('SIEVE') ?? '').toLowerCase().split(/\s+/).filter(Boolean);
  }

  /** Makes `name` the active script; the empty name deactivates whatever is active. */
  async setActive(name: string): Promise<void> {
    await this.command(`SETACTIVE ${sieveProtocolString(name)}`);
  }

  /** Deletes `name`; a script that does not exist is not an error here (NONEXISTENT). */
  async deleteScript(name: string): Promise<void> {
    try {
      await this.command(`DELETESCRIPT ${sieveProtocolString(name)}`);
    } catch (err) {
      if (!(err instanceof ManageSieveError && err.code?.toUpperCase() === 'NONEXISTENT')) throw err;
    }
  }

  async logout(): Promise<void> {
    try {
      await this.command('LOGOUT');
    } catch {
      // The server may close before answering; the work is done either way.
    } finally {
      this.socket.close();
    }
  }

  close(): void {
    this.failure ??= new ManageSieveError('ManageSieve connection closed');
    this.socket.close();
  }

  private async command(line: string): Promise<Response> {
    if (this.failure) throw this.failure;
    try {
      await this.socket.write(Buffer.from(`${line}\r\n`, 'utf8'));
    } catch (err) {
      throw this.fail(new ManageSieveError(`ManageSieve connection failed: ${(err as Error).message}`));
    }
    const response = await this.read();
    if (response.status !== 'OK')
      throw new ManageSieveError(
        `ManageSieve ${line.split(' ')[0]}: ${response.status} ${response.text}`.trim(),
        response.code,
      );
    return response;
  }

  /** Keeps the first failure: the connection is unusable from then on. */
  private fail(err: Error): Error {
    this.failure ??= err;
    return this.failure;
  }

  /** Reads the next bytes the server sends, within TIMEOUT_MS (then the connection is dropped). */
  private async more(): Promise<void> {
    if (this.failure) throw this.failure;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ManageSieveError('ManageSieve server did not answer in time')), TIMEOUT_MS);
    });
    let chunk: Uint8Array | null;
    try {
      chunk = await Promise.race([this.socket.read(), timeout]);
    } catch (err) {
      this.socket.close();
      throw this.fail(
        err instanceof ManageSieveError
          ? err
          : new ManageSieveError(`ManageSieve connection failed: ${(err as Error).message}`),
      );
    } finally {
      clearTimeout(timer);
    }
    if (chunk === null) throw this.fail(new ManageSieveError('ManageSieve connection closed'));
    this.buffer = Buffer.concat([this.buffer, chunk]);
  }

  /** One line (without CRLF), with any trailing literals `{n}` read and inlined as quoted text. */
  private async readLine(): Promise<string> {
    let line = '';
    for (;;) {
      const end = this.buffer.indexOf('\r\n');
      if (end < 0) {
        await this.more();
        continue;
      }
      const part = this.buffer.subarray(0, end).toString('utf8');
      this.buffer = this.buffer.subarray(end + 2);
      const literal = /\{(\d+)\+?\}$/.exec(part);
      if (!literal) return line + part;
      const size = Number(literal[1]);
      while (this.buffer.length < size) await this.more();
      const text = this.buffer.subarray(0, size).toString('utf8');
      this.buffer = this.buffer.subarray(size);
      line += `${part.slice(0, literal.index)}"${text.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
    }
  }

  private async read(): Promise<Response> {
    const lines: string[] = [];
    for (;;) {
      const line = await this.readLine();
      const m = /^(OK|NO|BYE)\b\s*(?:\(([^)]*)\))?\s*(.*)$/i.exec(line);
      if (m) {
        const code = m[2]?.split(/\s+/)[0];
        return {
          lines,
          status: m[1]!.toUpperCase() as Response['status'],
          ...(code ? { code } : {}),
          text: unquote(m[3] ?? ''),
        };
      }
      lines.push(line);
    }
  }
}

function unquote(text: string): string {
  const m = /^"((?:[^"\\]|\\.)*)"/.exec(text.trim());
  return m ? m[1]!.replace(/\\(.)/g, '$1') : text.trim();
}

/** Capability lines: `"NAME" "value"` or `"NAME"`. */
function parseCapabilities(lines: readonly string[]): Map<string, string> {
  const caps = new Map<string, string>();
  for (const line of lines) {
    const parts = [...line.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!.replace(/\\(.)/g, '$1'));
    if (parts[0]) caps.set(parts[0].toUpperCase(), parts[1] ?? '');
  }
  return caps;
}

/** Opens a session, logs in as the user, runs `work`, logs out (or drops the connection on failure). */
export async function withManageSieve<T>(
  server: ManageSieveServer,
  credentials: ManageSieveCredentials,
  work: (session: ManageSieveSession) => Promise<T>,
): Promise<T> {
  const session = await ManageSieveSession.open(server);
  try {
    await session.authenticatePlain(credentials);
    const result = await work(session);
    await session.logout();
    return result;
  } catch (err) {
    session.close();
    throw err;
  }
}
