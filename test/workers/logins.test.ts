/**
 * At most one IMAP login per request inside workerd, where every connection is fresh (a socket cannot outlive its
 * request): the app built as the Worker builds it (src/app/build.ts with freshImapSessions, Durable Object state),
 * against a real Dovecot, with the logins counted where the connections are made. Node and Lambda:
 * test/e2e/logins.test.ts.
 */
import { env } from 'cloudflare:workers';
import { EventEmitter } from 'node:events';
import { describe, expect, inject, it } from 'vitest';
import { buildApp } from '../../src/app/build.ts';
import { imapClient, useImapTransport } from '../../src/backends/imap/connection.ts';
import { freshImapSessions, type ImapSessions } from '../../src/backends/imap/sessions.ts';
import { socketsImapTransport } from '../../src/runtimes/cloudflare/imap-transport.ts';
import { workerdSubmitter } from '../../src/backends/smtp/cloudflare.ts';
import { loadConfig } from '../../src/config.ts';
import { durableObjectStateStore } from '../../src/state/durable-object.ts';
import { toBase64 } from '../../src/util/base64.ts';
import { decodeWbxml } from '../../src/wbxml/decoder.ts';
import { encodeWbxml } from '../../src/wbxml/encoder.ts';
import { child, children, childText, el, type WbxmlElement } from '../../src/wbxml/tree.ts';
import type { WorkersImap } from '../services/workers-global-setup.ts';

// imapflow needs more listeners per socket than the default 10 (the Worker entry sets this too).
EventEmitter.defaultMaxListeners = 50;
// IMAP as the Worker opens it (src/runtimes/cloudflare/worker.ts): node:tls cannot STARTTLS inside workerd.
useImapTransport(socketsImapTransport());

const imap: WorkersImap = inject('imap');
const user = imap.users.find((u) => u.name === 'carol')!;
const URL_ = 'https://eas.example.test/Microsoft-Server-ActiveSync';

async function append(subject: string): Promise<void> {
  const client = imapClient(
    { host: imap.host, port: imap.port, secure: false },
    { user: user.email, password: user.password },
  );
  client.on('error', () => {});
  await client.connect();
  await client.append('INBOX', `From: a@example.org\r\nSubject: ${subject}\r\n\r\nHi.\r\n`);
  await client.logout();
}

describe('IMAP logins per request (inside workerd, a connection per request)', () => {
  it('a Sync and a Ping each log in once', async () => {
    const config = loadConfig({
      IMAP_HOST: imap.host,
      IMAP_PORT: String(imap.port),
      IMAP_SECURE: 'false',
      TENANT: 'logins',
      PROVISIONING: 'loose',
      PING_MIN_HEARTBEAT: '1',
      PING_POLL_SECONDS: '1',
    });
    let logins = 0;
    const counted = (sessions: ImapSessions): ImapSessions => ({
      acquire: (login) => {
        logins += 1;
        return sessions.acquire(login);
      },
      release: (client, reusable) => sessions.release(client, reusable),
    });
    const { app } = buildApp({
      settings: config,
      state: durableObjectStateStore(env.STATE),
      imapSessions: (settings) => counted(freshImapSessions(settings)),
      submitter: (smtp) => workerdSubmitter(smtp),
      log: () => {},
    });
    const send = async (cmd: string, body: WbxmlElement): Promise<WbxmlElement> => {
      const response = await app.request(`${URL_}?Cmd=${cmd}&User=${user.name}&DeviceId=LOGINS01&DeviceType=iPhone`, {
        method: 'POST',
        headers: {
          Authorization: `Basic ${toBase64(new TextEncoder().encode(`${user.email}:${user.password}`))}`,
          'MS-ASProtocolVersion': '14.1',
          'Content-Type': 'application/vnd.ms-sync.wbxml',
        },
        body: encodeWbxml(body) as Uint8Array<ArrayBuffer>,
      });
      expect(response.status).toBe(200);
      return decodeWbxml(new Uint8Array(await response.arrayBuffer()));
    };
    const loginsDuring = async (request: () => Promise<void>): Promise<number> => {
      const before = logins;
      await request();
      return logins - before;
    };

    const folders = await send(
      'FolderSync',
      el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]),
    );
    const inbox = children(child(folders, 'Changes'), 'Add').find((a) => childText(a, 'Type') === '2');
    const inboxId = childText(inbox!, 'ServerId')!;
    const syncBody = (key: string): WbxmlElement =>
      el('AirSync', 'Sync', [
        el('AirSync', 'Collections', [
          el('AirSync', 'Collection', [
            el('AirSync', 'SyncKey', key),
            el('AirSync', 'CollectionId', inboxId),
            key === '0' ? undefined : el('AirSync', 'GetChanges', '1'),
          ]),
        ]),
      ]);
    const collectionOf = (sync: WbxmlElement): WbxmlElement => child(child(sync, 'Collections'), 'Collection')!;
    const first = collectionOf(await send('Sync', syncBody('0')));
    let key = childText(first, 'SyncKey')!;
    // Whatever the Inbox holds already, then one new message.
    for (let more = true; more; ) {
      const round = collectionOf(await send('Sync', syncBody(key)));
      key = childText(round, 'SyncKey') ?? key;
      more = child(round, 'MoreAvailable') !== undefined;
    }
    await append(`logins ${Date.now()}`);

    let added = 0;
    const sync = await loginsDuring(async () => {
      added = children(child(collectionOf(await send('Sync', syncBody(key))), 'Commands'), 'Add').length;
    });
    expect(added).toBe(1);
    let status: string | undefined;
    const ping = await loginsDuring(async () => {
      const body = el('Ping', 'Ping', [
        el('Ping', 'HeartbeatInterval', '2'),
        el('Ping', 'Folders', [el('Ping', 'Folder', [el('Ping', 'Id', inboxId), el('Ping', 'Class', 'Email')])]),
      ]);
      status = childText(await send('Ping', body), 'Status');
    });
    expect(status).toBe('1');
    expect({ sync, ping }).toEqual({ sync: 1, ping: 1 });
  });
});
