/**
 * One device session on the Cloudflare runtime as it runs locally: the Worker of wrangler.toml under `wrangler dev`
 * (workerd, state in Durable Objects), reached over HTTP, against the test Dovecot and Postfix. Push: the Ping waits
 * on the Durable Object feed while the cron's sweep (fired at /__scheduled) logs in, sees the new message and writes
 * the marker.
 *
 * Settings are `--var`s. IMAP is implicit TLS (993-style) as production Workers reach it; Postfix offers STARTTLS.
 *
 * The session ends with a few hundred messages synced in small windows (over sixty requests in all), and the Worker's
 * output must then hold no uncaught error and no listener-leak warning (issue 16: on workerd's node:net sockets each
 * read and write added a 'timeout' listener, and the warning for that threw).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { childText } from '../../../src/wbxml/tree.ts';
import { TestDevice, type TestServer } from '../../device/device.ts';
import { createUser, seedMailbox } from '../../services/seed.ts';
import type { StateStore } from '../../../src/state/types.ts';
import { fetchVia, startWranglerDev, type WranglerDev } from '../../services/wrangler-dev.ts';
import {
  fetchAttachmentMultipart,
  moveToArchive,
  notesBothWays,
  pingBody,
  pingSeesNewMessage,
  seedInbox,
  sendMailArrives,
  subjectsOf,
} from '../session-steps.ts';

const services = inject('services');

describe('a device session against the Worker in workerd (wrangler dev, Durable Objects)', () => {
  let worker: WranglerDev;
  let device: TestDevice;
  let inbox: string;
  const sweeps: Promise<unknown>[] = [];
  const user = createUser(services);

  beforeAll(async () => {
    worker = await startWranglerDev({
      IMAP_HOST: services.imaps.host,
      IMAP_PORT: String(services.imaps.port),
      // Implicit TLS (993-style), the form Workers use in production; most other tests use STARTTLS.
      IMAP_SECURE: 'true',
      ...(services.smtp
        ? { SMTP_HOST: services.smtp.host, SMTP_PORT: String(services.smtp.port), SMTP_SECURE: 'false' }
        : {}),
      TENANT: 'test',
      PING_MIN_HEARTBEAT: '1',
      PING_POLL_SECONDS: '1',
      IMAP_MASTER_USER: services.master.user,
      IMAP_MASTER_PASSWORD: services.master.password,
    });
    // The device reads no state directly here: everything goes through the Worker.
    const server: TestServer = { fetch: fetchVia(worker.origin), state: undefined as unknown as StateStore, logs: [] };
    device = new TestDevice(server, user);
  }, 90_000);

  afterAll(async () => {
    await worker?.stop();
    await Promise.allSettled(sweeps);
  }, 30_000);

  it('Provision: the two-phase handshake gives a final policy key', async () => {
    const round = await device.provision();
    expect([round.initial.status, round.ack?.status]).toEqual([200, 200]);
    expect(device.policyKey).toMatch(/^\d+$/);
  });

  it('FolderSync and Sync: the device gets the Inbox and its messages', async () => {
    await seedInbox(services, user);
    await device.folderSync();
    inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.syncUntilDone(inbox);
    expect(subjectsOf(device, inbox)).toEqual(['Plain note', 'Scan attached']);
  });

  it('Notes: a note Apple wrote over IMAP reaches the device, a note of the device is written as Apple writes them', async () => {
    await notesBothWays(services, user, device);
  });

  it('ItemOperations: the attachment as a multipart answer, byte for byte', async () => {
    await fetchAttachmentMultipart(device, inbox);
  });

  it('Ping: the protocol maximum heartbeat is allowed on Workers, one above it gets Status 5', async () => {
    const res = await device.send('Ping', pingBody(3600, [inbox]));
    expect(childText(res.body, 'Status')).toBe('5');
    expect(childText(res.body, 'HeartbeatInterval')).toBe('3540');
  });

  it('Ping: the cron sweep notices a new message, and the Ping answers Status 2', async () => {
    // The sweep keeps going for ~50 s (passes every 10 s); the Ping must not wait for it to end, and stopping
    // wrangler cuts it off.
    const ms = await pingSeesNewMessage(services, user, device, inbox, 60, () =>
      sweeps.push(
        worker.scheduled().then(
          (r) => r.text(),
          () => undefined,
        ),
      ),
    );
    expect(ms).toBeLessThan(20_000);
  }, 40_000);

  it('SendMail: the message reaches the recipient through Postfix', async () => {
    await sendMailArrives(services, device, user);
  });

  it('MoveItems: a message moves to Archive, and the next Syncs do not send it back', async () => {
    await moveToArchive(services, user, device, inbox);
  });

  it('Sync: 300 messages of 16 KB in windows of 5, one request each', async () => {
    const body = 'A line of a longer message, to make each Sync read many socket chunks.\n'.repeat(230);
    await seedMailbox(
      services,
      user,
      'Bulk',
      Array.from({ length: 300 }, (_, i) => ({
        message: { from: 'Dan <dan@example.test>', to: user.email, subject: `Bulk ${i}`, text: body },
      })),
    );
    await device.folderSync();
    const bulk = device.folderByName('Bulk').serverId;
    const rounds = await device.syncUntilDone(bulk, { windowSize: 5 });
    expect(rounds.length).toBeGreaterThanOrEqual(60);
    expect(device.items(bulk).size).toBe(300);
  }, 180_000);

  it('the Worker logged no uncaught error and no listener-leak warning', async () => {
    // wrangler passes the Worker's output on a moment after the answer.
    await new Promise((r) => setTimeout(r, 500));
    expect(worker.problems()).toEqual([]);
  });
});
