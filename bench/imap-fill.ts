/**
 * Fills a mailbox fast for benchmarks: MULTIAPPEND (RFC 3502) with non-synchronising literals (LITERAL+, RFC 7888),
 * so a batch of messages is one IMAP command instead of one round trip per message. The messages still arrive
 * through IMAP APPEND, as a mail client's would.
 */
import { connect, type Socket } from 'node:net';

export interface FillTarget {
  host: string;
  port: number;
  user: string;
  password: string;
}

/** One IMAP connection that sends a command and waits for its tagged answer. */
class RawImap {
  private buffered = '';
  private waiting: { tag: string; resolve: (line: string) => void; reject: (err: Error) => void } | undefined;
  private counter = 0;
  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk.toString('latin1')));
    socket.on('error', (err) => this.waiting?.reject(err));
  }

  static async open(host: string, port: number): Promise<RawImap> {
    const socket = connect(port, host);
    const imap = new RawImap(socket);
    await new Promise<void>((resolve, reject) => {
      imap.waiting = { tag: '*', resolve: () => resolve(), reject };
    });
    return imap;
  }

  async command(parts: (string | Buffer)[]): Promise<void> {
    const tag = `f${++this.counter}`;
    const answer = new Promise<string>((resolve, reject) => (this.waiting = { tag, resolve, reject }));
    this.socket.write(
      Buffer.concat([
        Buffer.from(`${tag} `),
        ...parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)),
        Buffer.from('\r\n'),
      ]),
    );
    const line = await answer;
    if (!line.startsWith(`${tag} OK`)) throw new Error(`IMAP: ${line.slice(0, 200)}`);
  }

  close(): void {
    this.socket.end();
  }

  private onData(text: string): void {
    this.buffered += text;
    for (let end = this.buffered.indexOf('\r\n'); end >= 0; end = this.buffered.indexOf('\r\n')) {
      const line = this.buffered.slice(0, end);
      this.buffered = this.buffered.slice(end + 2);
      const waiting = this.waiting;
      if (!waiting) continue;
      if ((waiting.tag === '*' && line.startsWith('* OK')) || line.startsWith(`${waiting.tag} `)) {
        this.waiting = undefined;
        waiting.resolve(line);
      }
    }
  }
}

const quote = (s: string): string => `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`;

/**
 * Appends `count` messages (`message(i)` with `flags(i)`) to `folder`, in batches over `connections` parallel
 * connections. Message i lands before message i+connections on the same connection; order across connections is free.
 */
export async function multiAppend(
  target: FillTarget,
  folder: string,
  count: number,
  message: (i: number) => string | Uint8Array,
  flags: (i: number) => string[] = () => [],
  connections = 2,
  batch = 250,
): Promise<void> {
  await Promise.all(
    Array.from({ length: connections }, async (_, c) => {
      const imap = await RawImap.open(target.host, target.port);
      try {
        await imap.command([`LOGIN ${quote(target.user)} ${quote(target.password)}`]);
        const mine = Array.from({ length: Math.ceil((count - c) / connections) }, (_, k) => c + k * connections);
        for (let start = 0; start < mine.length; start += batch) {
          const parts: (string | Buffer)[] = [`APPEND ${quote(folder)}`];
          for (const i of mine.slice(start, start + batch)) {
            const raw = message(i);
            const body = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : Buffer.from(raw);
            parts.push(` (${flags(i).join(' ')}) {${body.length}+}\r\n`, body);
          }
          await imap.command(parts);
        }
        await imap.command(['LOGOUT']);
      } finally {
        imap.close();
      }
    }),
  );
}
