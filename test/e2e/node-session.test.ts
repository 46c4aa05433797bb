/**
 * One device session on the Node runtime as `npm start` runs it (a separate process, SQLite state under STATE_DIR,
 * the in-process IDLE watcher): Provision, FolderSync, Sync, ItemOperations, a Ping woken by a new message, SendMail
 * and MoveItems, the same steps the Lambda and workerd sessions take (session-steps.ts), over IMAP with implicit TLS
 * (IMAP_SECURE=true) as they do.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../src/backends/types.ts';
import type { NodeSqliteStore } from '../../src/state/sqlite-node.ts';
import { childText } from '../../src/wbxml/tree.ts';
import { TestDevice } from '../device/device.ts';
import { nodeTestServer, startNodeServer, stopNodeServer, type NodeProcess } from '../services/node-server.ts';
import { freePort } from '../services/process.ts';
import { createUser } from '../services/seed.ts';
import {
  fetchAttachmentMultipart,
  moveToArchive,
  pingBody,
  pingSeesNewMessage,
  seedInbox,
  sendMailArrives,
  subjectsOf,
} from './session-steps.ts';

const services = inject('services');

describe('a device session against `npm start` (Node runtime, SQLite state, IDLE watcher)', () => {
  const user = createUser(services);
  let node: NodeProcess;
  let state: NodeSqliteStore;
  let device: TestDevice;
  let inbox: string;

  beforeAll(async () => {
    const port = await freePort();
    const stateDir = mkdtempSync(join(tmpdir(), 'ase-node-session-'));
    node = await startNodeServer({
      PORT: String(port),
      HOST: '127.0.0.1',
      STATE_DIR: stateDir,
      TENANT: 'test',
      IMAP_HOST: services.imaps.host,
      IMAP_PORT: String(services.imaps.port),
      // Implicit TLS (993-style), the form Workers use in production; most other tests use STARTTLS.
      IMAP_SECURE: 'true',
      ...(services.smtp
        ? { SMTP_HOST: services.smtp.host, SMTP_PORT: String(services.smtp.port), SMTP_SECURE: 'false' }
        : {}),
      PING_MIN_HEARTBEAT: '1',
      PING_POLL_SECONDS: '1',
    });
    const opened = nodeTestServer(`http://127.0.0.1:${port}`, stateDir);
    state = opened.state;
    device = new TestDevice(opened.server, user);
  });

  afterAll(async () => {
    state?.close();
    if (node && node.child.exitCode === null) expect(await stopNodeServer(node)).toBe(0);
  });

  it('Provision: the two-phase handshake gives a final policy key, kept in the SQLite file', async () => {
    const round = await device.provision();
    expect([round.initial.status, round.ack?.status]).toEqual([200, 200]);
    expect(device.policyKey).toMatch(/^\d+$/);
    expect((await state.store.getDevice(device.scope))?.policyKey).toBe(device.policyKey);
  });

  it('FolderSync and Sync: the device gets the Inbox and its messages', async () => {
    await seedInbox(services, user);
    await device.folderSync();
    inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.syncUntilDone(inbox);
    expect(subjectsOf(device, inbox)).toEqual(['Plain note', 'Scan attached']);
  });

  it('ItemOperations: the attachment as a multipart answer, byte for byte', async () => {
    await fetchAttachmentMultipart(device, inbox);
  });

  it('Ping: the protocol maximum heartbeat is allowed on Node, one above it gets Status 5', async () => {
    const res = await device.send('Ping', pingBody(3600, [inbox]));
    expect(childText(res.body, 'Status')).toBe('5');
    expect(childText(res.body, 'HeartbeatInterval')).toBe('3540');
  });

  it('Ping: the IDLE watcher in the process notices a new message at once, and the Ping answers Status 2', async () => {
    // The message is appended 1.5 s into the Ping; IDLE wakes the Ping well before the next feed poll would.
    expect(await pingSeesNewMessage(services, user, device, inbox, 60)).toBeLessThan(10_000);
  }, 30_000);

  it('SendMail: the message reaches the recipient through Postfix', async () => {
    await sendMailArrives(services, device, user);
  });

  it('MoveItems: a message moves to Archive, and the next Syncs do not send it back', async () => {
    await moveToArchive(services, user, device, inbox);
  });

  it('logged every request as one JSON line without the password', () => {
    const lines = node
      .output()
      .split('\n')
      .filter((l) => l.includes('"deviceId"'));
    expect(lines.length).toBeGreaterThanOrEqual(8);
    for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
    expect(node.output()).not.toContain(user.password);
    expect(node.output()).not.toContain(Buffer.from(`${user.email}:${user.password}`).toString('base64'));
  });
});
