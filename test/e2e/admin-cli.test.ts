/**
 * `npx activesync-edge admin …` against a running Node server (`npm start` in its own process, with ADMIN_TOKEN),
 * as an operator runs it: a scripted device talks to the server over HTTP, the CLI manages it over the admin API.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { NodeSqliteStore } from '../../src/state/sqlite-node.ts';
import { el } from '../../src/wbxml/tree.ts';
import { TestDevice, type TestServer } from '../device/device.ts';
import { adminCli, runNode, startAdminNodeServer, type AdminNodeServer } from '../services/node-server.ts';
import { freePort } from '../services/process.ts';
import { createUser } from '../services/seed.ts';

const services = inject('services');
const ROOT = join(import.meta.dirname, '../..');
const BIN = join(ROOT, 'bin/activesync-edge.js');
const TOKEN = 'cli-admin-token-0123456789abcdef';

let admin: AdminNodeServer;
let state: NodeSqliteStore;
let server: TestServer;

/** The CLI as a separate process, the way `npx activesync-edge admin …` runs it. */
function cli(
  args: string[],
  env: Record<string, string | undefined> = { ADMIN_TOKEN: TOKEN },
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return adminCli(admin.base, args, env);
}

beforeAll(async () => {
  admin = await startAdminNodeServer(services.imap, TOKEN);
  ({ server, state } = admin);
});

afterAll(async () => {
  await admin?.stop();
});

// Every CLI call is a process start (about a second through tsx): the tests get more time than the default, and calls
// that read only run side by side.
describe('activesync-edge admin', { timeout: 90_000 }, () => {
  it('lists devices as a table or JSON, and shows one with its folders', async () => {
    const user = createUser(services);
    const device = new TestDevice(server, user);
    await device.folderSync();

    const [listed, json, shown] = await Promise.all([
      cli(['devices', '--user', user.email]),
      cli(['--json', 'devices']),
      cli(['device', user.email, device.deviceId]),
    ]);
    expect(listed.code).toBe(0);
    const [header, rule, row] = listed.stdout.split('\n');
    expect(header).toMatch(/^user\s+deviceId\s+deviceType\s+model/);
    expect(rule).toMatch(/^-+\s+-+/);
    expect(row).toContain(device.deviceId);
    expect(row).toContain('provisioned');

    expect(json.code).toBe(0);
    const devices = (JSON.parse(json.stdout) as { devices: { deviceId: string; model: string }[] }).devices;
    expect(devices.find((d) => d.deviceId === device.deviceId)).toMatchObject({ model: 'iPhone Test' });

    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/^deviceType\s+iPhone$/m);
    expect(shown.stdout).toMatch(/^folders\ncollectionId\s+name/m);
    expect(shown.stdout).toContain('Inbox');
    expect(shown.stdout).toMatch(/broken items\n\(none\)/);
  });

  it('wipes and cancels, allows and blocks, and manages the access rules', async () => {
    const user = createUser(services);
    const device = new TestDevice(server, user);
    await device.folderSync();

    expect((await cli(['wipe', user.email, device.deviceId])).stdout).toContain('requested');
    expect((await cli(['cancel-wipe', user.email, device.deviceId])).stdout).toMatch(/\bnone\b/);
    const account = await cli(['wipe', '--account', user.email, device.deviceId]);
    expect(account.code).toBe(1);
    expect(account.stderr).toMatch(/^activesync-edge: .*16\.1/);

    const added = await cli(['rules', 'add', '--action', 'block', '--device-type', 'iPhone', '--id', 'no-iphones']);
    expect(added.code).toBe(0);
    expect(added.stdout).toMatch(/no-iphones\s+block\s+iPhone/);
    const blocked = await device.send(
      'FolderSync',
      el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]),
    );
    expect(blocked.body?.children.find((c) => c.tag === 'Status')?.text).toBe('129');
    expect((await cli(['allow', user.email, device.deviceId])).code).toBe(0);
    const allowed = await device.send(
      'FolderSync',
      el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]),
    );
    expect(allowed.body?.children.find((c) => c.tag === 'Status')?.text).toBe('1');
    expect((await cli(['device', user.email, device.deviceId])).stdout).toMatch(/^accessReason\s+admin$/m);

    expect((await cli(['rules', 'default', 'quarantine'])).stdout).toMatch(/default: quarantine/);
    const removed = await cli(['rules', 'remove', 'no-iphones']);
    expect(removed.stdout).toContain('(none)');
    expect((await cli(['rules', 'default', 'allow'])).stdout).toMatch(/default: allow/);
    const bad = await cli(['rules', 'add', '--action', 'block', '--model', '((']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/not a regular expression/);
  });

  it('removes idle devices with progress, and shows the counters', async () => {
    const user = createUser(services);
    const idle = new TestDevice(server, user);
    await idle.folderSync();
    const fresh = new TestDevice(server, user);
    await fresh.folderSync();
    await state.store.updateDevice(idle.scope, { deviceType: 'iPhone', lastSeen: Date.now() - 100 * 86_400_000 });

    const dry = await cli(['remove-idle', '--days', '90', '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(idle.deviceId);
    expect(dry.stdout).toMatch(/1 device\(s\) would be removed/);
    expect(dry.stderr).toBe('');

    const done = await cli(['remove-idle', '--days', '90']);
    expect(done.code).toBe(0);
    expect(done.stderr).toBe(`removed 1/1: ${idle.scope.user} ${idle.deviceId}\n`);
    expect(done.stdout).toMatch(/1 device\(s\) removed/);
    const [listed, stats] = await Promise.all([
      cli(['--json', 'devices', '--user', user.email]),
      cli(['stats', '--minutes', '10']),
    ]);
    const left = JSON.parse(listed.stdout) as { devices: { deviceId: string }[] };
    expect(left.devices.map((d) => d.deviceId)).toEqual([fresh.deviceId]);

    expect(stats.code).toBe(0);
    expect(stats.stdout).toMatch(/^FolderSync\s+\d+\s+0\s+\d+\s+\d+$/m);
    expect(stats.stdout).toMatch(/^Provision\s+\d+/m);
  });

  it('says what is wrong without a token, with a wrong one, or without a server', async () => {
    const port = await freePort();
    const [none, wrong, away] = await Promise.all([
      cli(['devices'], {}),
      cli(['devices', '--token', 'not-the-token-at-all']),
      runNode([BIN, 'admin', '--url', `http://127.0.0.1:${port}`, '--token', TOKEN, 'devices'], process.env),
    ]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no admin token/);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/valid admin token/);
    expect(away.code).toBe(1);
    expect(away.stderr).toMatch(/cannot reach/);
  });
});
