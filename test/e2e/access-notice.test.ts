/**
 * The notice Exchange leaves in the user's Inbox when a device becomes quarantined or blocked (src/devices/
 * access-notice.ts), end to end through the app and the real Dovecot: once per change of state, not per retry.
 */
import { describe, expect, inject, it } from 'vitest';
import { childText, el } from '../../src/wbxml/tree.ts';
import { TestDevice, testServer } from '../device/device.ts';
import { createUser, listMessages } from '../services/seed.ts';
import { readFolder } from './mail/compose-helpers.ts';

const services = inject('services');
const TOKEN = 'test-admin-token-notice-0123456789';
const FOLDER_SYNC_0 = el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]);

describe('access notices', () => {
  it('a device that becomes quarantined leaves one notice in the Inbox naming it; blocked later, another', async () => {
    const server = testServer(services, { ADMIN_TOKEN: TOKEN });
    const rules = async (body: unknown): Promise<number> =>
      (
        await server.fetch('https://eas.example.test/admin/rules', {
          method: 'PUT',
          headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
          body: JSON.stringify(body),
        })
      ).status;
    const user = createUser(services);
    expect(
      await rules({
        defaultAccess: 'allow',
        rules: [{ id: 'hold-tests', action: 'quarantine', deviceType: 'TestPhone' }],
      }),
    ).toBe(200);

    const device = new TestDevice(server, user, undefined, '14.1', 'TestPhone');
    expect(childText((await device.send('FolderSync', FOLDER_SYNC_0)).body, 'Status')).toBe('129');
    expect(childText((await device.send('FolderSync', FOLDER_SYNC_0)).body, 'Status')).toBe('129'); // a retry: no second notice
    const notices = await readFolder(services, user, 'INBOX');
    expect(notices.map((m) => m.email.subject)).toEqual(['Your device is quarantined']);
    const text = notices[0]!.email.text ?? '';
    expect(text).toContain(`Device ID: ${device.deviceId}`);
    expect(text).toContain('Device type: TestPhone');
    expect(text).toContain('Device access state reason: rule hold-tests');
    expect(notices[0]!.flags.has('\\Seen')).toBe(false);

    // Now blocked: one more notice, saying so.
    expect(
      await rules({ defaultAccess: 'allow', rules: [{ id: 'no-tests', action: 'block', deviceType: 'TestPhone' }] }),
    ).toBe(200);
    expect(childText((await device.send('FolderSync', FOLDER_SYNC_0)).body, 'Status')).toBe('129');
    expect((await listMessages(services, user)).map((m) => m.subject).sort()).toEqual([
      'Your device is blocked',
      'Your device is quarantined',
    ]);
  });
});
