/**
 * Protocol capture end to end on Node: `npm start` in its own process against the test Dovecot, an admin turns capture
 * on for one device with `npx activesync-edge admin capture start`, the device runs a short session, and
 * `capture export` writes the session file. The XML must be there, readable and cut, and no credential anywhere.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startCapture, type CaptureSession } from '../../src/admin/capture.ts';
import { openSqliteStateStore } from '../../src/state/sqlite-node.ts';
import { FolderType } from '../../src/backends/types.ts';
import type { CapturedBody } from '../../src/state/types.ts';
import type { NodeSqliteStore } from '../../src/state/sqlite-node.ts';
import { fromXml } from '../../src/wbxml/xml.ts';
import { el } from '../../src/wbxml/tree.ts';
import { TestDevice, testServer, type TestServer } from '../device/device.ts';
import { failingStore } from '../faults/failing-store.ts';
import { adminCli, startAdminNodeServer, type AdminNodeServer } from '../services/node-server.ts';
import { createUser, seedMailbox } from '../services/seed.ts';
import { fetchAttachmentMultipart, seedInbox } from './session-steps.ts';

const services = inject('services');
const TOKEN = 'capture-admin-token-0123456789abcdef';
/** A body far longer than the capture keeps of it. */
const LONG_BODY = `${'Quarterly numbers follow. '.repeat(400)}\n`;

let admin: AdminNodeServer;
let state: NodeSqliteStore;
let server: TestServer;

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return adminCli(admin.base, args, { ADMIN_TOKEN: TOKEN });
}

beforeAll(async () => {
  admin = await startAdminNodeServer(services.imap, TOKEN, { CAPTURE_MAX_BODY_BYTES: '64' });
  ({ server, state } = admin);
});

afterAll(async () => {
  await admin?.stop();
});

/** Every XML document of a body, its parts included. */
function xmlOf(body: CapturedBody | undefined): string[] {
  if (!body) return [];
  return [...(body.xml !== undefined ? [body.xml] : []), ...(body.parts ?? []).flatMap(xmlOf)];
}

describe('protocol capture', { timeout: 120_000 }, () => {
  it('keeps a device session as XML with its headers, cut and without credentials, and exports it', async () => {
    const user = createUser(services);
    await seedInbox(services, user);
    await seedMailbox(services, user, 'INBOX', [
      { message: { from: 'Erin <erin@example.test>', to: user.email, subject: 'Long read', text: LONG_BODY } },
    ]);
    const device = new TestDevice(server, user);
    const bystander = new TestDevice(server, user);

    const started = await cli(['capture', 'start', user.email, device.deviceId, '--minutes', '30']);
    expect(started.code).toBe(0);
    expect(started.stdout).toMatch(
      new RegExp(`${user.email.toLowerCase()}\\s+${device.deviceId}\\s+\\S+\\s+\\S+\\s+64`),
    );
    expect((await cli(['capture', 'list'])).stdout).toContain(device.deviceId);

    // A short session: Provision, FolderSync, the Inbox with bodies, an attachment as multipart.
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.sync(inbox);
    const round = await device.sync(inbox, {
      options: [el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '1')])],
    });
    expect(round.added).toHaveLength(3);
    await fetchAttachmentMultipart(device, inbox);
    await bystander.folderSync();

    // Two exports side by side: the device's session and the bystander's (another device of the same user).
    const [exported, bystanderExport] = await Promise.all([
      cli(['capture', 'export', user.email, device.deviceId]),
      cli(['capture', 'export', user.email, bystander.deviceId]),
    ]);
    expect(exported.code).toBe(0);
    expect(exported.stderr).toMatch(/^\d+ request\(s\)\n$/);
    const session = JSON.parse(exported.stdout) as CaptureSession;
    expect(session).toMatchObject({
      format: 'activesync-edge-capture',
      version: 1,
      tenant: 'test',
      user: user.email.toLowerCase(),
      deviceId: device.deviceId,
    });
    expect(session.requests.map((r) => r.command)).toEqual([
      'Provision',
      'Provision',
      'FolderSync',
      'Sync',
      'Sync',
      'ItemOperations',
    ]);
    const times = session.requests.map((r) => Date.parse(r.time));
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    for (const r of session.requests) {
      expect(r.method).toBe('POST');
      expect(r.query).toContain(`DeviceId=${device.deviceId}`);
      expect(r.response.status).toBe(200);
      expect(r.request.headers['ms-asprotocolversion']).toBeDefined();
      // Every XML document parses back (a replay reads them).
      for (const xml of [...xmlOf(r.request.body), ...xmlOf(r.response.body)]) expect(() => fromXml(xml)).not.toThrow();
    }

    const [provision, , folderSync, , bodies, fetch] = session.requests;
    expect(provision!.request.body?.xml).toContain('<Provision xmlns="Provision"');
    expect(folderSync!.response.body?.xml).toContain('<DisplayName>Inbox</DisplayName>');
    expect(bodies!.request.body?.xml).toContain('<airsyncbase:Type>1</airsyncbase:Type>');
    // The long body is cut to CAPTURE_MAX_BODY_BYTES, with how long it was.
    const sync = bodies!.response.body!;
    expect(sync.cut).toBe(true);
    expect(sync.xml).toContain('<email:Subject>Long read</email:Subject>');
    expect(sync.xml).toMatch(/<airsyncbase:Data>Quarterly numbers follow\. [^<]{0,64}<!--cut: \d{5} chars-->/);
    expect(sync.xml).not.toContain('Quarterly numbers follow. '.repeat(4));
    // The multipart answer: the WBXML part as XML, the attachment cut.
    expect(fetch!.request.headers['ms-asacceptmultipart']).toBe('T');
    expect(fetch!.response.body?.parts?.[0]?.xml).toContain('<ItemOperations xmlns="ItemOperations"');
    expect(fetch!.response.body?.parts?.[1]).toMatchObject({ bytes: 2256, cut: true });

    // No credential anywhere: not the password, not the Basic header, not the admin token.
    const basic = Buffer.from(`${user.email}:${user.password}`).toString('base64');
    for (const secret of [user.password, basic, 'Basic ', TOKEN]) expect(exported.stdout).not.toContain(secret);
    expect(exported.stdout).not.toMatch(/authorization|cookie/i);

    // The bystander, another device of the same user, was not captured.
    expect((JSON.parse(bystanderExport.stdout) as CaptureSession).requests).toEqual([]);

    // Stopped, the device's next request is not kept; what was kept stays until it is cleared.
    expect((await cli(['capture', 'stop', user.email, device.deviceId])).stdout).toContain('stopped');
    expect((await cli(['capture', 'list'])).stdout).toContain('(none)');
    await device.sync(inbox);
    const after = JSON.parse(
      (await cli(['--json', 'capture', 'export', user.email, device.deviceId])).stdout,
    ) as CaptureSession;
    expect(after.requests).toHaveLength(6);
    expect((await cli(['capture', 'clear', user.email, device.deviceId])).code).toBe(0);
    expect(await state.store.listCaptureRecords(device.scope)).toEqual([]);
  });

  it('captures every device of a user when no device is named, and refuses a capture without an end', async () => {
    const user = createUser(services);
    expect((await cli(['capture', 'start', user.email, '--minutes', '5'])).code).toBe(0);
    const phone = new TestDevice(server, user);
    const tablet = new TestDevice(server, user);
    await phone.folderSync();
    await tablet.folderSync();
    const exports = await Promise.all([phone, tablet].map((d) => cli(['capture', 'export', user.email, d.deviceId])));
    for (const exported of exports) {
      const session = JSON.parse(exported.stdout) as CaptureSession;
      expect(session.requests.map((r) => r.command)).toEqual(['Provision', 'Provision', 'FolderSync']);
    }
    const [stopped, endless] = await Promise.all([
      cli(['capture', 'stop', user.email]),
      cli(['capture', 'start', user.email, '--minutes', '100000']),
    ]);
    expect(stopped.code).toBe(0);
    expect(endless.code).toBe(1);
    expect(endless.stderr).toMatch(/minutes must be/);
  });

  it('never fails a request: a capture the store refuses is named in the log line, the answer stands', async () => {
    const faulty = failingStore(openSqliteStateStore(':memory:').store);
    const inProcess = testServer(services, {}, { state: faulty.store });
    const user = createUser(services);
    const device = new TestDevice(inProcess, user);
    await startCapture(faulty.store, 'test', { user: user.email, deviceId: device.deviceId, minutes: 5 });
    faulty.failOn({ method: 'addCaptureRecord', nth: 3 });
    await device.folderSync();
    expect(device.folders.size).toBeGreaterThan(0);
    expect(faulty.fired).toBe(1);
    const folderSync = inProcess.logs.find((e) => e.cmd === 'FolderSync');
    expect(folderSync).toMatchObject({
      http: 200,
      captureFailed: 'InjectedStoreError: injected failure of addCaptureRecord',
    });
    expect(await faulty.store.listCaptureRecords(device.scope)).toHaveLength(2);
  });
});
