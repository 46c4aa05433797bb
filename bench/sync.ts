/**
 * Email sync speed against a real Dovecot on loopback, for INBOXes of 1,000 and 10,000 messages (100,000 with
 * --large), of two shapes: small synthetic HTML messages (12 KB) and a realistic mailbox (bench/realistic-mailbox.ts:
 * a few KB to 25 MB, 30 % with attachments, newsletters with inline images, threads, legacy charsets). The device is
 * the scripted test device talking to the app in process; every IMAP command the server issues passes a counting
 * proxy, so the figures include the real IMAP round trips and the bytes the server read.
 *
 * For each mailbox and size: initial full sync (messages/s; server CPU ms per message, the process CPU spent while a
 * request was in the app, which leaves out the device's own work; bytes read from IMAP per byte of WBXML sent to the
 * device; peak RSS of the process so far), FolderSync (ms), a Sync with no change (ms), and a Sync after one new
 * message (ms, IMAP commands), and the IMAP commands of the initial sync. WindowSize 100, HTML bodies truncated at 5 KB. The machine's load average is printed
 * with the figures: wall times on a shared machine are only comparable at a similar load, CPU times more so.
 *
 * With --cpu-prof <dir>, the initial sync of each mailbox and size is profiled (node:inspector, the whole process: the
 * app, its IMAP client and the device) into <dir>/sync-<mailbox>-<size>.cpuprofile, for Chrome DevTools or
 * `npx speedscope`.
 *
 *   npm run bench:sync [-- --sizes 1000,10000] [--mailbox small|realistic] [--large] [--cpu-prof <dir>]
 */
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { TestProject } from 'vitest/node';
import { FolderType } from '../src/backends/types.ts';
import { el } from '../src/wbxml/tree.ts';
import { TestDevice, testServer } from '../test/device/device.ts';
import setup from '../test/services/global-setup.ts';
import { createUser, withImap } from '../test/services/seed.ts';
import type { TestServices, TestUser } from '../test/services/types.ts';
import { multiAppend } from './imap-fill.ts';
import { realisticMessage } from './realistic-mailbox.ts';

const WINDOW = 100;
const BODY_PREFERENCE = [
  el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '2'), el('AirSyncBase', 'TruncationSize', '5120')]),
];

/** A TCP proxy to Dovecot that counts the commands clients send (tagged lines). */
class CountingProxy {
  commands = 0;
  /** Bytes the server read from IMAP (server → client direction). */
  bytesRead = 0;
  private readonly server: Server;
  constructor(private readonly target: { host: string; port: number }) {
    this.server = createServer((client) => this.pipe(client));
  }
  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as { port: number }).port;
  }
  private readonly sockets = new Set<Socket>();
  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
  private pipe(client: Socket): void {
    const upstream = connect(this.target.port, this.target.host);
    this.sockets.add(client).add(upstream);
    let pendingLine = '';
    client.on('data', (chunk: Buffer) => {
      // Count tagged command lines; literal payloads (APPEND) do not start with a tag and an atom.
      const text = pendingLine + chunk.toString('latin1');
      const lines = text.split('\r\n');
      pendingLine = lines.pop() ?? '';
      for (const line of lines) if (/^[A-Za-z0-9.]+ [A-Z]+/.test(line)) this.commands++;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      this.bytesRead += chunk.length;
      client.write(chunk);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  }
}

/** A newsletter-like HTML message of about 12 KB, so that the 5 KB truncation really cuts. */
function message(i: number): string {
  const paragraph = (p: number): string =>
    `<p style="font-family:Segoe UI,sans-serif">Paragraph ${p} of message ${i}: figures, plans and <a href="https://example.test/${i}/${p}">links</a> &amp; more, Grüße.</p>`;
  const html = `<html><body>${Array.from({ length: 60 }, (_, p) => paragraph(p)).join('\n')}</body></html>`;
  return [
    `From: "Sender ${i % 97}" <sender${i % 97}@example.org>`,
    'To: "Bench User" <bench@example.test>',
    `Subject: Bench message ${i}`,
    `Date: ${new Date(Date.now() - i * 60_000).toUTCString()}`,
    `Message-ID: <bench-${i}@example.test>`,
    'MIME-Version: 1.0',
    'Content-Type: text/html; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    html,
    '',
  ].join('\r\n');
}

type MailboxShape = 'small' | 'realistic';
const MESSAGES: Record<MailboxShape, (i: number) => string | Uint8Array> = {
  small: message,
  realistic: (i) => realisticMessage(i),
};

/** Appends `count` messages, a third of them read. */
function fill(services: TestServices, user: TestUser, count: number, shape: MailboxShape): Promise<void> {
  return multiAppend(
    { ...services.imap, user: user.email, password: user.password },
    'INBOX',
    count,
    MESSAGES[shape],
    (i) => (i % 3 === 0 ? ['\\Seen'] : []),
  );
}

/**
 * The app as the device reaches it, measured: process CPU while a request is in the app (the device waits for the
 * answer meanwhile, so this is the server's work: the app, its IMAP client and the counting proxy's copying), and the
 * bytes of the answers.
 */
function measured(server: ReturnType<typeof testServer>): {
  server: ReturnType<typeof testServer>;
  figures: { cpuMicros: number; bytesSent: number };
} {
  const figures = { cpuMicros: 0, bytesSent: 0 };
  return {
    figures,
    server: {
      ...server,
      fetch: async (url, init) => {
        const before = process.cpuUsage();
        const res = await server.fetch(url, init);
        const body = new Uint8Array(await res.arrayBuffer());
        const used = process.cpuUsage(before);
        figures.cpuMicros += used.user + used.system;
        figures.bytesSent += body.length;
        return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
      },
    },
  };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

interface SizeFigures {
  shape: MailboxShape;
  size: number;
  cpuMsPerMessage: number;
  readPerSent: number;
  mbRead: number;
  mbSent: number;
  peakRssMb: number;
  fillSeconds: number;
  initialPerSecond: number;
  initialRequests: number;
  initialImapCommands: number;
  folderSyncMs: number;
  noChangeMs: number;
  oneNewMs: number;
  oneNewImapCommands: number;
}

/** Runs `fn` under the V8 CPU profiler and writes the profile to `file`. */
async function profiled<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  try {
    return await fn();
  } finally {
    const { profile } = await session.post('Profiler.stop');
    await writeFile(file, JSON.stringify(profile));
    session.disconnect();
  }
}

async function benchSize(
  services: TestServices,
  size: number,
  shape: MailboxShape,
  profileDir?: string,
): Promise<SizeFigures> {
  const user = createUser(services);
  const fillSeconds = (await timed(() => fill(services, user, size, shape))) / 1000;
  const proxy = new CountingProxy(services.imap);
  const proxyPort = await proxy.listen();
  // Mail only: this is the email benchmark (CalDAV/CardDAV discovery would add its own round trips to FolderSync).
  const app = testServer(services, {
    IMAP_PORT: String(proxyPort),
    // The counting proxy reads the IMAP commands: plaintext on loopback, by the explicit setting.
    ALLOW_PLAINTEXT_BACKENDS: 'true',
    CALDAV_URL: '',
    CARDDAV_URL: '',
    PROVISIONING: 'loose',
  });
  const { server, figures } = measured(app);
  try {
    const device = new TestDevice(server, user);
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;

    let requests = 0;
    const commandsBefore = proxy.commands;
    const readBefore = proxy.bytesRead;
    const sentBefore = figures.bytesSent;
    const cpuBefore = figures.cpuMicros;
    const initialSync = async (): Promise<void> => {
      await device.sync(inbox, { options: BODY_PREFERENCE });
      requests = 1 + (await device.syncUntilDone(inbox, { windowSize: WINDOW })).length;
    };
    const initialMs = await timed(() =>
      profileDir ? profiled(join(profileDir, `sync-${shape}-${size}.cpuprofile`), initialSync) : initialSync(),
    );
    if (device.items(inbox).size !== size) throw new Error(`synced ${device.items(inbox).size} of ${size} messages`);
    const bytesRead = proxy.bytesRead - readBefore;
    const initialImapCommands = proxy.commands - commandsBefore;
    const bytesSent = figures.bytesSent - sentBefore;
    const cpuMsPerMessage = (figures.cpuMicros - cpuBefore) / 1000 / size;
    const peakRssMb = process.resourceUsage().maxRSS / 1024;
    // The device's copy of 100,000 items lives in this process too: let it go, or its garbage collection is
    // measured as the server's time.
    device.items(inbox).clear();

    const folderSync: number[] = [];
    for (let i = 0; i < 15; i++) folderSync.push(await timed(() => device.folderSync()));
    const folderSyncMs = median(folderSync);
    const noChange: number[] = [];
    for (let i = 0; i < 15; i++) noChange.push(await timed(() => device.sync(inbox, { windowSize: WINDOW })));

    const oneNew: number[] = [];
    const oneNewCommands: number[] = [];
    for (let i = 0; i < 7; i++) {
      await withImap(services, user, (imap) => imap.append('INBOX', message(size + i)));
      const before = proxy.commands;
      let added = 0;
      oneNew.push(await timed(async () => (added = (await device.sync(inbox, { windowSize: WINDOW })).added.length)));
      if (added !== 1) throw new Error(`expected one new message, got ${added}`);
      oneNewCommands.push(proxy.commands - before);
    }
    return {
      shape,
      size,
      cpuMsPerMessage,
      readPerSent: bytesRead / bytesSent,
      mbRead: bytesRead / 1e6,
      mbSent: bytesSent / 1e6,
      peakRssMb,
      fillSeconds,
      initialPerSecond: size / (initialMs / 1000),
      initialRequests: requests,
      initialImapCommands,
      folderSyncMs,
      noChangeMs: median(noChange),
      oneNewMs: median(oneNew),
      oneNewImapCommands: median(oneNewCommands),
    };
  } finally {
    await proxy.close();
  }
}

export async function runSyncBench(sizes: number[], shapes: MailboxShape[], profileDir?: string): Promise<void> {
  let services: TestServices | undefined;
  const project = { provide: (_k: string, v: TestServices) => (services = v) } as unknown as TestProject;
  const teardown = await setup(project);
  try {
    console.log(
      `\nEmail sync against Dovecot (loopback), WindowSize ${WINDOW}, HTML truncated at 5 KB; medians of repeated runs`,
    );
    console.log(
      'mailbox    messages  initial msg/s  CPU ms/msg  read/sent  MB read  MB sent  peak RSS MB  requests  IMAP cmds  FolderSync ms  no-change ms  1-new ms  1-new cmds  (fill s, load)',
    );
    for (const shape of shapes) {
      for (const size of sizes) {
        const f = await benchSize(services!, size, shape, profileDir);
        console.log(
          `${f.shape.padEnd(9)}  ${String(f.size).padStart(8)}  ${f.initialPerSecond.toFixed(0).padStart(13)}  ` +
            `${f.cpuMsPerMessage.toFixed(3).padStart(10)}  ${f.readPerSent.toFixed(2).padStart(9)}  ${f.mbRead.toFixed(1).padStart(7)}  ` +
            `${f.mbSent.toFixed(1).padStart(7)}  ${f.peakRssMb.toFixed(0).padStart(11)}  ${String(f.initialRequests).padStart(8)}  ${String(f.initialImapCommands).padStart(9)}  ` +
            `${f.folderSyncMs.toFixed(1).padStart(13)}  ${f.noChangeMs.toFixed(1).padStart(12)}  ${f.oneNewMs.toFixed(1).padStart(8)}  ` +
            `${String(f.oneNewImapCommands).padStart(10)}  (${f.fillSeconds.toFixed(0)} s, ${loadavg()
              .map((l) => l.toFixed(2))
              .join(' ')})`,
        );
      }
    }
  } finally {
    await teardown();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const at = process.argv.indexOf('--sizes');
  const large = process.argv.includes('--large');
  const sizes = at > 0 ? process.argv[at + 1]!.split(',').map(Number) : [1_000, 10_000, ...(large ? [100_000] : [])];
  const shapeAt = process.argv.indexOf('--mailbox');
  const shapes: MailboxShape[] = shapeAt > 0 ? [process.argv[shapeAt + 1] as MailboxShape] : ['small', 'realistic'];
  const profileAt = process.argv.indexOf('--cpu-prof');
  await runSyncBench(sizes, shapes, profileAt > 0 ? process.argv[profileAt + 1] : undefined);
}
