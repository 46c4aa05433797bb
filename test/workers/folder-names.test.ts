/**
 * Non-ASCII mailbox names through the Worker (src/runtimes/cloudflare/worker.ts) inside workerd, where imapflow's
 * modified UTF-7 comes from the Worker's iconv-lite (src/runtimes/cloudflare/iconv-lite.ts). The mailboxes are created
 * and listed on the test Dovecot over a raw IMAP connection (cloudflare:sockets), so what the server holds is checked
 * independently of the code under test: Dovecot 2.3 has no UTF8=ACCEPT, names travel in modified UTF-7.
 */
import { createExecutionContext } from 'cloudflare:test';
import { connect } from 'cloudflare:sockets';
import { env } from 'cloudflare:workers';
import { EventEmitter } from 'node:events';
import { describe, expect, inject, it } from 'vitest';
import worker from '../../src/runtimes/cloudflare/worker.ts';
import { decodeWbxml } from '../../src/wbxml/decoder.ts';
import { encodeWbxml } from '../../src/wbxml/encoder.ts';
import { child, childText, el, type WbxmlElement } from '../../src/wbxml/tree.ts';
import type { WorkersImap } from '../services/workers-global-setup.ts';

EventEmitter.defaultMaxListeners = 50;

const imap: WorkersImap = inject('imap');
// carol: the sweep tests watch only INBOX, new mailboxes do not disturb them.
const carol = imap.users.find((u) => u.name === 'carol')!;
const configured = {
  ...env,
  IMAP_HOST: imap.host,
  IMAP_PORT: String(imap.port),
  IMAP_SECURE: 'false',
  TENANT: 'names',
  PROVISIONING: 'loose',
};
const IncomingRequest = Request<unknown, IncomingRequestCfProperties>;
const deviceId = `NAMES${Date.now()}`;

/** One ActiveSync command to the Worker, as a device without provisioning (PROVISIONING=loose). */
async function command(cmd: string, body: WbxmlElement): Promise<WbxmlElement> {
  const url = `https://eas.example.test/Microsoft-Server-ActiveSync?Cmd=${cmd}&User=${carol.name}&DeviceId=${deviceId}&DeviceType=iPhone`;
  const response = await worker.fetch(
    new IncomingRequest(url, {
      method: 'POST',
      body: encodeWbxml(body),
      headers: {
        Authorization: `Basic ${btoa(`${carol.email}:${carol.password}`)}`,
        'MS-ASProtocolVersion': '14.1',
        'Content-Type': 'application/vnd.ms-sync.wbxml',
      },
    }),
    configured,
    createExecutionContext(),
  );
  expect(response.status).toBe(200);
  return decodeWbxml(new Uint8Array(await response.arrayBuffer()));
}

/** IMAP commands over a plain socket, each tagged and awaited; the whole transcript. */
async function rawImap(commands: string[]): Promise<string> {
  const socket = connect({ hostname: imap.host, port: imap.port });
  const writer = socket.writable.getWriter();
  const reader = socket.readable.getReader();
  const decoder = new TextDecoder();
  let transcript = '';
  const readUntil = async (done: RegExp): Promise<void> => {
    while (!done.test(transcript)) {
      const { value, done: closed } = await reader.read();
      if (closed) throw new Error(`IMAP connection closed: ${transcript}`);
      transcript += decoder.decode(value, { stream: true });
    }
  };
  await readUntil(/^\* OK/m);
  for (const [i, line] of [`LOGIN "${carol.email}" "${carol.password}"`, ...commands, 'LOGOUT'].entries()) {
    await writer.write(new TextEncoder().encode(`t${i} ${line}\r\n`));
    await readUntil(new RegExp(`^t${i} (OK|NO|BAD)`, 'm'));
    expect(transcript).toMatch(new RegExp(`^t${i} OK`, 'm'));
  }
  await socket.close();
  return transcript;
}

describe('non-ASCII folder names on the Worker', () => {
  it('FolderSync shows mailboxes named in modified UTF-7 by their names, and FolderCreate writes one', async () => {
    // Entwürfe, 日本語 with 台北 under it, and an ampersand.
    await rawImap([
      'CREATE "Entw&APw-rfe"',
      'CREATE "&ZeVnLIqe-"',
      'CREATE "&ZeVnLIqe-/&U,BTFw-"',
      'CREATE "Tom &- Jerry"',
    ]);

    const sync = await command(
      'FolderSync',
      el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]),
    );
    expect(childText(sync, 'Status')).toBe('1');
    const folders = (child(sync, 'Changes')?.children ?? []).filter((c) => c.tag === 'Add');
    const byName = new Map(folders.map((f) => [childText(f, 'DisplayName'), f]));
    expect([...byName.keys()]).toEqual(expect.arrayContaining(['Entwürfe', '日本語', '台北', 'Tom & Jerry']));
    expect(childText(byName.get('台北'), 'ParentId')).toBe(childText(byName.get('日本語'), 'ServerId'));
    expect([...byName.keys()].filter((name) => name?.includes('&'))).toEqual(['Tom & Jerry']);

    const created = await command(
      'FolderCreate',
      el('FolderHierarchy', 'FolderCreate', [
        el('FolderHierarchy', 'SyncKey', childText(sync, 'SyncKey')!),
        el('FolderHierarchy', 'ParentId', '0'),
        el('FolderHierarchy', 'DisplayName', 'Привет & 😀'),
        el('FolderHierarchy', 'Type', '12'),
      ]),
    );
    expect(childText(created, 'Status')).toBe('1');
    const list = await rawImap(['LIST "" "*"']);
    expect(list).toContain('"&BB8EQAQ4BDIENQRC- &- &2D3eAA-"');
  });
});
