/**
 * Email sync speed against a real Dovecot on loopback, for INBOXes of 1,000, 10,000 and 100,000 messages (generated
 * and appended here). The device is the scripted test device talking to the app in process; every IMAP command the
 * server issues passes a counting proxy, so the figures include the real IMAP round trips.
 *
 * For each size: initial full sync (messages/s, requests), FolderSync (ms), a Sync with no change (ms), and a Sync
 * after one new message (ms, IMAP commands). WindowSize 100, HTML bodies truncated at 5 KB.
 *
 *   npm run bench:sync [-- --sizes 1000,10000]
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { TestProject } from 'vitest/node';
import { FolderType } from '../src/backends/types.ts';
import { el } from '../src/wbxml/tree.ts';
import { TestDevice, testServer } from '../test/device/device.ts';
import setup from '../test/services/global-setup.ts';
import { createUser, withImap } from '../test/services/seed.ts';
import type { TestServices, TestUser } from '../test/services/types.ts';
import { multiAppend } from './imap-fill.ts';

const WINDOW = 100;
const BODY_PREFERENCE = [
  el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '2'), el('AirSyncBase', 'TruncationSize', '5120')]),
];

/** A TCP proxy to Dovecot that counts the commands clients send (tagged lines). */
class CountingProxy {
  commands = 0;
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
    upstream.on('data', (chunk) => client.write(chunk));
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

/** Appends `count` messages, a third of them read. */
function fill(services: TestServices, user: TestUser, count: number): Promise<void> {
  return multiAppend({ ...services.imap, user: user.email, password: user.password }, 'INBOX', count, message, (i) =>
    i % 3 === 0 ? ['\\Seen'] : [],
  );
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
  size: number;
  fillSeconds: number;
  initialPerSecond: number;
  initialRequests: number;
  folderSyncMs: number;
  noChangeMs: number;
  oneNewMs: number;
  oneNewImapCommands: number;
}

async function benchSize(services: TestServices, size: number): Promise<SizeFigures> {
  const user = createUser(services);
  const fillSeconds = (await timed(() => fill(services, user, size))) / 1000;
  const proxy = new CountingProxy(services.imap);
  const proxyPort = await proxy.listen();
  // Mail only: this is the email benchmark (CalDAV/CardDAV discovery would add its own round trips to FolderSync).
  const server = testServer(services, {
    IMAP_PORT: String(proxyPort),
    // The counting proxy reads the IMAP commands: plaintext on loopback, by the explicit setting.
    ALLOW_PLAINTEXT_BACKENDS: 'true',
    CALDAV_URL: '',
    CARDDAV_URL: '',
    PROVISIONING: 'loose',
  });
  try {
    const device = new TestDevice(server, user);
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;

    let requests = 0;
    const initialMs = await timed(async () => {
      await device.sync(inbox, { options: BODY_PREFERENCE });
      requests = 1 + (await device.syncUntilDone(inbox, { windowSize: WINDOW })).length;
    });
    if (device.items(inbox).size !== size) throw new Error(`synced ${device.items(inbox).size} of ${size} messages`);
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
      size,
      fillSeconds,
      initialPerSecond: size / (initialMs / 1000),
      initialRequests: requests,
      folderSyncMs,
      noChangeMs: median(noChange),
      oneNewMs: median(oneNew),
      oneNewImapCommands: median(oneNewCommands),
    };
  } finally {
    await proxy.close();
  }
}

export async function runSyncBench(sizes: number[]): Promise<void> {
  let services: TestServices | undefined;
  const project = { provide: (_k: string, v: TestServices) => (services = v) } as unknown as TestProject;
  const teardown = await setup(project);
  try {
    console.log(
      `\nEmail sync against Dovecot (loopback), WindowSize ${WINDOW}, HTML truncated at 5 KB; medians of repeated runs`,
    );
    console.log(
      'messages   initial msg/s  requests  FolderSync ms  no-change Sync ms  1-new Sync ms  1-new IMAP cmds   (fill s)',
    );
    for (const size of sizes) {
      const f = await benchSize(services!, size);
      console.log(
        `${String(f.size).padStart(8)}   ${f.initialPerSecond.toFixed(0).padStart(13)}  ${String(f.initialRequests).padStart(8)}  ` +
          `${f.folderSyncMs.toFixed(1).padStart(13)}  ${f.noChangeMs.toFixed(1).padStart(17)}  ${f.oneNewMs.toFixed(1).padStart(13)}  ` +
          `${String(f.oneNewImapCommands).padStart(15)}   (${f.fillSeconds.toFixed(0)})`,
      );
    }
  } finally {
    await teardown();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const at = process.argv.indexOf('--sizes');
  const sizes = at > 0 ? process.argv[at + 1]!.split(',').map(Number) : [1_000, 10_000, 100_000];
  await runSyncBench(sizes);
}
