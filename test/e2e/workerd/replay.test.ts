/**
 * Capture → export → replay on the Cloudflare runtime: the Worker under `wrangler dev` (workerd, Durable Objects)
 * captures a device session (the rule and the records in Durable Objects), `npx activesync-edge admin capture export`
 * reads it from the Worker's admin API, and `npx activesync-edge replay` plays it against the same Worker for a fresh
 * account seeded the same way: no answer may differ. The same session with an altered answer is reported.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { CaptureSession } from '../../../src/admin/capture.ts';
import { FolderType } from '../../../src/backends/types.ts';
import type { StateStore } from '../../../src/state/types.ts';
import { el } from '../../../src/wbxml/tree.ts';
import { TestDevice, type TestServer } from '../../device/device.ts';
import { adminCli } from '../../services/node-server.ts';
import { replayCli } from '../../services/replay-cli.ts';
import { createUser, listMessages } from '../../services/seed.ts';
import { fetchVia, startWranglerDev, type WranglerDev } from '../../services/wrangler-dev.ts';
import { fetchAttachmentMultipart, itemWithSubject, seedInbox } from '../session-steps.ts';

const services = inject('services');
const TOKEN = 'workerd-replay-admin-token-0123456789';

describe('capture → export → replay on workerd (wrangler dev, Durable Objects)', { timeout: 180_000 }, () => {
  let worker: WranglerDev;

  beforeAll(async () => {
    worker = await startWranglerDev({
      IMAP_HOST: services.imap.host,
      IMAP_PORT: String(services.imap.port),
      IMAP_SECURE: 'false',
      TENANT: 'test',
      ADMIN_TOKEN: TOKEN,
    });
  }, 90_000);

  afterAll(async () => {
    await worker?.stop();
  }, 30_000);

  it('a session captured inside workerd replays against a fresh account with no difference', async () => {
    const user = createUser(services);
    await seedInbox(services, user);
    const server: TestServer = { fetch: fetchVia(worker.origin), state: undefined as unknown as StateStore, logs: [] };
    const device = new TestDevice(server, user);
    const cli = (args: string[]) => adminCli(worker.origin, args, { ADMIN_TOKEN: TOKEN });
    expect((await cli(['capture', 'start', user.email, device.deviceId, '--minutes', '30'])).code).toBe(0);

    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.sync(inbox);
    await device.sync(inbox, { options: [el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '2')])] });
    await fetchAttachmentMultipart(device, inbox);
    const [note] = itemWithSubject(device, inbox, 'Plain note');
    const change = await device.sync(inbox, {
      commands: [
        el('AirSync', 'Change', [
          el('AirSync', 'ServerId', note),
          el('AirSync', 'ApplicationData', [el('Email', 'Read', '1')]),
        ]),
      ],
    });
    expect(change.status).toBe(1);

    const exported = await cli(['capture', 'export', user.email, device.deviceId]);
    expect(exported.code).toBe(0);
    const session = JSON.parse(exported.stdout) as CaptureSession;
    expect(session.requests.map((r) => r.command)).toEqual([
      'Provision',
      'Provision',
      'FolderSync',
      'Sync',
      'Sync',
      'ItemOperations',
      'Sync',
    ]);
    const dir = mkdtempSync(join(tmpdir(), 'ase-replay-workerd-'));
    const file = join(dir, 'session.json');
    writeFileSync(file, exported.stdout);

    const fresh = createUser(services);
    await seedInbox(services, fresh);
    const replayed = replayCli(file, worker.origin, fresh, ['--device-id', 'ReplayWorkerd1']);
    expect(replayed.stderr).toBe('7 request(s) replayed as device ReplayWorkerd1, 0 answer(s) differ\n');
    expect(replayed.stdout).toBe('');
    expect(replayed.code).toBe(0);
    const read = (await listMessages(services, fresh, 'INBOX')).find((m) => m.subject === 'Plain note');
    expect(read?.flags).toContain('\\Seen');

    // The tool is no no-op: the captured FolderSync said Status 1; the file now says 9 (a bad key).
    const altered = structuredClone(session);
    altered.requests[2]!.response.body!.xml = altered.requests[2]!.response.body!.xml!.replace(
      '<Status>1</Status>',
      '<Status>9</Status>',
    );
    const alteredFile = join(dir, 'altered.json');
    writeFileSync(alteredFile, JSON.stringify(altered));
    const other = createUser(services);
    await seedInbox(services, other);
    const run = replayCli(alteredFile, worker.origin, other);
    expect(run.stdout).toBe('#3 FolderSync: FolderSync/Status 1, captured 9\n');
    expect(run.code).toBe(1);
  });

  it('the Worker logged no uncaught error and no listener-leak warning', async () => {
    await new Promise((r) => setTimeout(r, 500));
    expect(worker.problems()).toEqual([]);
  });
});
