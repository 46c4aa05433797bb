/**
 * Capture → export → replay end to end on Node: `npm start` in its own process, a device session with capture on,
 * `npx activesync-edge admin capture export`, then `npx activesync-edge replay` (its own process, the password from
 * ASE_REPLAY_PASSWORD) against a fresh account seeded the same way: no answer may differ. The tool is no no-op: an
 * answer altered in the session file is reported, and so is a server that answers otherwise (an account without the
 * messages the session fetches).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { CaptureSession } from '../../src/admin/capture.ts';
import { FolderType } from '../../src/backends/types.ts';
import { el } from '../../src/wbxml/tree.ts';
import { TestDevice, type TestServer } from '../device/device.ts';
import { adminCli, startAdminNodeServer, type AdminNodeServer } from '../services/node-server.ts';
import { createUser, listMessages } from '../services/seed.ts';
import { replayCli } from '../services/replay-cli.ts';
import { fetchAttachmentMultipart, itemWithSubject, moveToArchive, seedInbox } from './session-steps.ts';

const services = inject('services');
const TOKEN = 'replay-admin-token-0123456789abcdef';
const ROOT = join(import.meta.dirname, '../..');

let admin: AdminNodeServer;
let server: TestServer;
let sessionFile: string;
let session: CaptureSession;

beforeAll(async () => {
  admin = await startAdminNodeServer(services.imap, TOKEN);
  server = admin.server;
});

afterAll(async () => {
  await admin?.stop();
});

describe('capture → export → replay (Node)', { timeout: 180_000 }, () => {
  it('a captured session replays against a fresh account with no difference', async () => {
    const user = createUser(services);
    await seedInbox(services, user);
    const device = new TestDevice(server, user);
    const started = await adminCli(admin.base, ['capture', 'start', user.email, device.deviceId, '--minutes', '30'], {
      ADMIN_TOKEN: TOKEN,
    });
    expect(started.code).toBe(0);

    // Provision, FolderSync, the Inbox with bodies, an attachment as multipart, a flag change, a move.
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.sync(inbox);
    await device.sync(inbox, { options: [el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '2')])] });
    await fetchAttachmentMultipart(device, inbox);
    const [scan] = itemWithSubject(device, inbox, 'Scan attached');
    const change = await device.sync(inbox, {
      commands: [
        el('AirSync', 'Change', [
          el('AirSync', 'ServerId', scan),
          el('AirSync', 'ApplicationData', [el('Email', 'Read', '1')]),
        ]),
      ],
    });
    expect(change.status).toBe(1);
    await moveToArchive(services, user, device, inbox);
    // A request the server refuses, as documented: a SyncKey it never gave (MS-ASCMD §2.2.3.177.17 Status 3).
    const stale = await device.send(
      'Sync',
      el('AirSync', 'Sync', [
        el('AirSync', 'Collections', [
          el('AirSync', 'Collection', [el('AirSync', 'SyncKey', '999999999'), el('AirSync', 'CollectionId', inbox)]),
        ]),
      ]),
    );
    expect(stale.status).toBe(200);

    const exported = await adminCli(admin.base, ['capture', 'export', user.email, device.deviceId], {
      ADMIN_TOKEN: TOKEN,
    });
    expect(exported.code).toBe(0);
    session = JSON.parse(exported.stdout) as CaptureSession;
    expect(session.requests.map((r) => r.command)).toEqual([
      'Provision',
      'Provision',
      'FolderSync',
      'Sync',
      'Sync',
      'ItemOperations',
      'Sync',
      'Sync', // Archive, key 0
      'Sync', // Archive
      'MoveItems',
      'Sync',
      'Sync',
      'Sync', // the stale key
    ]);
    expect(session.requests.at(-1)!.response.body?.xml).toContain('<Status>3</Status>');
    sessionFile = join(mkdtempSync(join(tmpdir(), 'ase-replay-')), 'session.json');
    writeFileSync(sessionFile, exported.stdout);

    // A fresh account with the same messages: every answer as captured.
    const fresh = createUser(services);
    await seedInbox(services, fresh);
    const replayed = replayCli(sessionFile, admin.base, fresh, ['--device-id', 'ReplayNode1']);
    expect(replayed.stderr).toBe('13 request(s) replayed as device ReplayNode1, 0 answer(s) differ\n');
    expect(replayed.stdout).toBe('');
    expect(replayed.code).toBe(0);
    // The replay's device did what the phone did: its moved message is in the fresh account's Archive, read.
    expect((await listMessages(services, fresh, 'Archive')).map((m) => m.subject)).toEqual(['Plain note']);
    const scanned = (await listMessages(services, fresh, 'INBOX')).find((m) => m.subject === 'Scan attached');
    expect(scanned?.flags).toContain('\\Seen');
    expect(
      await admin.state.store.getDevice({ tenant: 'test', user: fresh.email, deviceId: 'ReplayNode1' }),
    ).toBeDefined();
  });

  it('reports an answer that differs: one altered in the session file, and a server that answers otherwise', async () => {
    expect(session).toBeDefined();
    // The captured ItemOperations answer said 1; the file now says 6, as if the server had failed then.
    const altered = structuredClone(session);
    const fetch = altered.requests[5]!;
    expect(fetch.command).toBe('ItemOperations');
    const part = fetch.response.body!.parts![0]!;
    part.xml = part.xml!.replace('<Status>1</Status>', '<Status>6</Status>');
    const alteredFile = join(mkdtempSync(join(tmpdir(), 'ase-replay-')), 'altered.json');
    writeFileSync(alteredFile, JSON.stringify(altered));
    const fresh = createUser(services);
    await seedInbox(services, fresh);
    const run = replayCli(alteredFile, admin.base, fresh);
    expect(run.stdout).toBe('#6 ItemOperations: ItemOperations/Status 1, captured 6\n');
    expect(run.stderr).toMatch(/^13 request\(s\) replayed as device replay[0-9a-f]{16}, 1 answer\(s\) differ\n$/);
    expect(run.code).toBe(1);

    // An empty account: no messages to sync, to fetch, to change or to move.
    const bare = replayCli(sessionFile, admin.base, createUser(services));
    expect(bare.code).toBe(1);
    const lines = bare.stdout.trim().split('\n');
    expect(lines.find((l) => l.startsWith('#6 '))).toMatch(/^#6 ItemOperations: /);
    expect(lines.find((l) => l.startsWith('#10 '))).toMatch(
      /^#10 MoveItems: MoveItems\/Response\/Status \d+, captured 3$/,
    );
  });

  it('never takes the password from an argument: without ASE_REPLAY_PASSWORD and a terminal it says so', () => {
    const run = spawnSync(
      process.execPath,
      [join(ROOT, 'bin/activesync-edge.js'), 'replay', sessionFile, '--url', admin.base, '--user', 'x@example.test'],
      {
        cwd: ROOT,
        env: Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'ASE_REPLAY_PASSWORD')),
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    expect(run.status).toBe(1);
    expect(run.stderr).toContain('set ASE_REPLAY_PASSWORD');
  });
});
