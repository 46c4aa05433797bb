/**
 * A small ManageSieve client (RFC 5804), Node only (node:net / node:tls): enough to upload, activate and remove one
 * script as the user, with the user's own credentials (AUTHENTICATE "PLAIN"). Nothing here logs; the credentials
 * only ever go onto the socket.
 */
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';

export interface ManageSieveServer {
  host: string;
  port: number;
  /** TLS from the first byte (no STARTTLS); plaintext otherwise (tests, loopback). */
  secure: boolean;
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

const TIMEOUT_MS = 15_000;

/** A ManageSieve string: quoted when it can be (no CR/LF, short), else a non-synchronising literal. */
export function sieveProtocolString(value: string): string {
  if (!/[\r\n\0]/.test(value) && Buffer.byteLength(value) <= 1024)
    return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  return `{${Buffer.byteLength(value)}+}\r\n${value}`;
}

export class ManageSieveSession {
  private buffer = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  private failure: Error | null = null;
  capabilities = new Map<string, string>();

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.wake();
    });
    socket.on('error', (err) => this.fail(new ManageSieveError(`ManageSieve connection failed: ${err.message}`)));
    socket.on('close', () => this.fail(new ManageSieveError('ManageSieve connection closed')));
    socket.setTimeout(TIMEOUT_MS, () => {
      this.fail(new ManageSieveError('ManageSieve server did not answer in time'));
      socket.destroy();
    });
  }

  static async open(server: ManageSieveServer): Promise<ManageSieveSession> {
    const socket = server.secure
      ? connectTls({ host: server.host, port: server.port, servername: server.host })
      : connectTcp({ host: server.host, port: server.port });
    const session = new ManageSieveSession(socket);
    const greeting = await session.read();
    if (greeting.status !== 'OK') throw new ManageSieveError(`ManageSieve greeting: ${greeting.text}`, greeting.code);
    session.capabilities = parseCapabilities(greeting.lines);
    return session;
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
      this.socket.end();
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private async command(line: string): Promise<Response> {
    if (this.failure) throw this.failure;
    this.socket.write(`${line}\r\n`, 'utf8');
    const response = await this.read();
    if (response.status !== 'OK')
      throw new ManageSieveError(
        `ManageSieve ${line.split(' ')[0]}: ${response.status} ${response.text}`.trim(),
        response.code,
      );
    return response;
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private async more(): Promise<void> {
    if (this.failure) throw this.failure;
    await new Promise<void>((resolve) => this.waiters.push(resolve));
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
