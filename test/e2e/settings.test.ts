/**
 * Settings end to end (MS-ASCMD §2.2.1.18) through the app and the scripted device: DeviceInformation, UserInformation
 * (the 14.1 Accounts form and the older one), Oof stored per user and honestly reported as not in effect,
 * DevicePassword under the policy, RightsManagementInformation.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { child, children, childText, el, type WbxmlElement } from '../../src/wbxml/tree.ts';
import { createUser } from '../services/seed.ts';
import type { TestUser } from '../services/types.ts';
import { TestDevice, testServer, type TestServer } from '../device/device.ts';

const services = inject('services');

let server: TestServer;
let user: TestUser;

beforeAll(() => {
  server = testServer(services);
  user = createUser(services);
});

function settings(...parts: WbxmlElement[]): WbxmlElement {
  return el('Settings', 'Settings', parts);
}

async function ask(device: TestDevice, ...parts: WbxmlElement[]): Promise<WbxmlElement> {
  const body = await device.command('Settings', settings(...parts));
  expect(body).toMatchObject({ ns: 'Settings', tag: 'Settings' });
  return body;
}

const oofGet = (bodyType = 'Text'): WbxmlElement =>
  el('Settings', 'Oof', [el('Settings', 'Get', [el('Settings', 'BodyType', bodyType)])]);

function oofMessage(
  tag: 'AppliesToInternal' | 'AppliesToExternalKnown' | 'AppliesToExternalUnknown',
  enabled: boolean,
  reply: string,
  bodyType = 'Text',
): WbxmlElement {
  return el('Settings', 'OofMessage', [
    el('Settings', tag),
    el('Settings', 'Enabled', enabled ? '1' : '0'),
    el('Settings', 'ReplyMessage', reply),
    el('Settings', 'BodyType', bodyType),
  ]);
}

const oofSet = (...content: WbxmlElement[]): WbxmlElement => el('Settings', 'Oof', [el('Settings', 'Set', content)]);

describe('Settings', () => {
  it('records DeviceInformation Set in the device record', async () => {
    const device = new TestDevice(server, user, undefined, '14.0', 'SAMSUNGSMS918B');
    const body = await ask(
      device,
      el('Settings', 'DeviceInformation', [
        el('Settings', 'Set', [
          el('Settings', 'Model', 'SM-S918B'),
          el('Settings', 'IMEI', '352099001761481'),
          el('Settings', 'FriendlyName', 'Galaxy S23 Ultra'),
          el('Settings', 'OS', 'Android 14'),
          el('Settings', 'OSLanguage', 'ja-JP'),
          el('Settings', 'PhoneNumber', '+81 90-1234-5678'),
          el('Settings', 'UserAgent', 'SAMSUNG-SM-S918B/101.140102'),
          el('Settings', 'EnableOutboundSMS', '1'),
          el('Settings', 'MobileOperator', 'NTT DOCOMO'),
        ]),
      ]),
    );
    expect(body.children.map((c) => [c.tag, childText(c, 'Status') ?? c.text])).toEqual([
      ['Status', '1'],
      ['DeviceInformation', '1'],
    ]);
    expect(await server.state.getDevice(device.scope)).toMatchObject({
      model: 'SM-S918B',
      imei: '352099001761481',
      friendlyName: 'Galaxy S23 Ultra',
      os: 'Android 14',
      osLanguage: 'ja-JP',
      phoneNumber: '+81 90-1234-5678',
      mobileOperator: 'NTT DOCOMO',
      userAgent: 'SAMSUNG-SM-S918B/101.140102',
    });
  });

  it('gives the primary SMTP address in the Accounts form from 14.1 on, and as EmailAddresses before', async () => {
    const modern = await ask(
      new TestDevice(server, user, undefined, '16.1'),
      el('Settings', 'UserInformation', [el('Settings', 'Get')]),
    );
    const info = child(modern, 'UserInformation')!;
    expect(childText(info, 'Status')).toBe('1');
    const account = child(child(child(info, 'Get'), 'Accounts'), 'Account')!;
    expect(childText(account, 'AccountId')).toBeUndefined();
    const addresses = child(account, 'EmailAddresses');
    expect(childText(addresses, 'PrimarySmtpAddress')).toBe(user.email);
    expect(children(addresses, 'SMTPAddress').map((a) => a.text)).toEqual([user.email]);

    const older = await ask(
      new TestDevice(server, user, undefined, '14.0'),
      el('Settings', 'UserInformation', [el('Settings', 'Get')]),
    );
    const get = child(child(older, 'UserInformation'), 'Get')!;
    expect(child(get, 'Accounts')).toBeUndefined();
    expect(childText(child(get, 'EmailAddresses'), 'SMTPAddress')).toBe(user.email);
  });

  it('makes an address of a login without a domain from MAIL_DOMAIN', async () => {
    const withDomain = testServer(services, { MAIL_DOMAIN: 'Example.Test' });
    const bare = { ...user, email: user.name };
    const body = await ask(
      new TestDevice(withDomain, bare, undefined, '14.1'),
      el('Settings', 'UserInformation', [el('Settings', 'Get')]),
    );
    const addresses = child(
      child(child(child(child(body, 'UserInformation'), 'Get'), 'Accounts'), 'Account'),
      'EmailAddresses',
    );
    expect(childText(addresses, 'PrimarySmtpAddress')).toBe(`${user.name}@example.test`);
  });

  it('answers RightsManagementInformation Get with no templates', async () => {
    const body = await ask(
      new TestDevice(server, user, undefined, '14.1'),
      el('Settings', 'RightsManagementInformation', [el('Settings', 'Get')]),
    );
    const rm = child(body, 'RightsManagementInformation')!;
    expect(childText(rm, 'Status')).toBe('1');
    expect(child(rm, 'Get')!.children).toEqual([
      { ns: 'RightsManagement', tag: 'RightsManagementTemplates', children: [] },
    ]);
  });

  it('answers each part in the order asked, and a request it cannot read with Status 2', async () => {
    const device = new TestDevice(server, user, undefined, '14.1');
    const body = await ask(
      device,
      el('Settings', 'UserInformation', [el('Settings', 'Get')]),
      oofGet(),
      el('Settings', 'RightsManagementInformation', [el('Settings', 'Get')]),
    );
    expect(body.children.map((c) => c.tag)).toEqual([
      'Status',
      'UserInformation',
      'Oof',
      'RightsManagementInformation',
    ]);
    expect(childText(await ask(device), 'Status')).toBe('2');
    expect(childText(await ask(device, el('Settings', 'UserInformation', [el('Settings', 'Set')])), 'Status')).toBe(
      '1',
    );
    expect(
      childText(
        child(await ask(device, el('Settings', 'UserInformation', [el('Settings', 'Set')])), 'UserInformation'),
        'Status',
      ),
    ).toBe('2');
  });
});

describe('Oof', () => {
  it('reports automatic replies off with three empty messages before anything was set', async () => {
    const fresh = createUser(services);
    const body = await ask(new TestDevice(server, fresh, undefined, '14.1'), oofGet());
    const oof = child(body, 'Oof')!;
    expect(childText(oof, 'Status')).toBe('1');
    const get = child(oof, 'Get')!;
    expect(childText(get, 'OofState')).toBe('0');
    const messages = children(get, 'OofMessage');
    expect(messages.map((m) => m.children[0]!.tag)).toEqual([
      'AppliesToInternal',
      'AppliesToExternalKnown',
      'AppliesToExternalUnknown',
    ]);
    expect(
      messages.map((m) => [childText(m, 'Enabled'), childText(m, 'ReplyMessage'), childText(m, 'BodyType')]),
    ).toEqual([
      ['0', '', 'Text'],
      ['0', '', 'Text'],
      ['0', '', 'Text'],
    ]);
  });

  it('stores a Set per user, says it is not applied (Status 7), and reports the messages but OofState 0', async () => {
    const owner = createUser(services);
    const phone = new TestDevice(server, owner, undefined, '14.1');
    const set = await ask(
      phone,
      oofSet(
        el('Settings', 'OofState', '2'),
        el('Settings', 'StartTime', '2026-05-01T00:00:00.000Z'),
        el('Settings', 'EndTime', '2026-05-24T00:00:00.000Z'),
        oofMessage(
          'AppliesToInternal',
          true,
          '<html><body><p>Bis 24.05. nicht im Büro &amp; offline.</p></body></html>',
          'HTML',
        ),
        oofMessage('AppliesToExternalKnown', true, 'Out of the office until 24 May.'),
      ),
    );
    expect(childText(set, 'Status')).toBe('1');
    expect(childText(child(set, 'Oof'), 'Status')).toBe('7');

    const stored = await server.state.getUserSettings({ tenant: 'test', user: owner.email.toLowerCase() });
    expect(stored?.oof).toMatchObject({
      state: 2,
      startTime: '2026-05-01T00:00:00.000Z',
      endTime: '2026-05-24T00:00:00.000Z',
      applied: false,
    });
    expect(stored?.oof?.messages.map((m) => m.audience)).toEqual(['internal', 'externalKnown']);

    // Another device of the same user sees the same settings: Oof belongs to the user.
    const tablet = new TestDevice(server, owner, undefined, '14.1', 'iPad');
    const text = child(child(await ask(tablet, oofGet('Text')), 'Oof'), 'Get')!;
    expect(childText(text, 'OofState')).toBe('0');
    expect(child(text, 'StartTime')).toBeUndefined();
    const [internal, known, unknown] = children(text, 'OofMessage');
    expect(childText(internal, 'Enabled')).toBe('1');
    expect(childText(internal, 'ReplyMessage')).toBe('Bis 24.05. nicht im Büro & offline.');
    expect(childText(known, 'ReplyMessage')).toBe('Out of the office until 24 May.');
    expect(childText(unknown, 'Enabled')).toBe('0');

    const html = child(child(await ask(tablet, oofGet('HTML')), 'Oof'), 'Get')!;
    const [, knownHtml] = children(html, 'OofMessage');
    expect(childText(knownHtml, 'ReplyMessage')).toBe('<html><body>Out of the office until 24 May.</body></html>');
    expect(childText(knownHtml, 'BodyType')).toBe('HTML');

    // Turning automatic replies off is what is in effect: success, and the messages stay.
    const off = await ask(phone, oofSet(el('Settings', 'OofState', '0')));
    expect(childText(child(off, 'Oof'), 'Status')).toBe('1');
    expect(
      (await server.state.getUserSettings({ tenant: 'test', user: owner.email.toLowerCase() }))?.oof,
    ).toMatchObject({ state: 0, applied: false });
    expect(
      (await server.state.getUserSettings({ tenant: 'test', user: owner.email.toLowerCase() }))?.oof?.messages,
    ).toHaveLength(2);
  });

  it('refuses a time-based Set without its times (2) or with the end before the start (6)', async () => {
    const device = new TestDevice(server, createUser(services), undefined, '14.1');
    expect(childText(child(await ask(device, oofSet(el('Settings', 'OofState', '2'))), 'Oof'), 'Status')).toBe('2');
    const backwards = oofSet(
      el('Settings', 'OofState', '2'),
      el('Settings', 'StartTime', '2026-05-24T00:00:00.000Z'),
      el('Settings', 'EndTime', '2026-05-01T00:00:00.000Z'),
    );
    expect(childText(child(await ask(device, backwards), 'Oof'), 'Status')).toBe('6');
    expect(childText(child(await ask(device, oofSet(el('Settings', 'OofState', '9'))), 'Oof'), 'Status')).toBe('2');
  });
});

describe('DevicePassword', () => {
  const setPassword = (password: string): WbxmlElement =>
    el('Settings', 'DevicePassword', [el('Settings', 'Set', [el('Settings', 'Password', password)])]);

  it('is refused (Status 7) and the password is kept nowhere; no policy can promise a recovery', async () => {
    expect(() => testServer(services, { POLICY: JSON.stringify({ PasswordRecoveryEnabled: true }) })).toThrow(
      /PasswordRecoveryEnabled/,
    );
    for (const policy of [undefined, JSON.stringify({ PasswordRecoveryEnabled: false })]) {
      const serving = policy ? testServer(services, { POLICY: policy }) : server;
      const device = new TestDevice(serving, user, undefined, '14.1');
      const body = await ask(device, setPassword('8391-2207'));
      expect(childText(child(body, 'DevicePassword'), 'Status')).toBe('7');
      expect(JSON.stringify(await serving.state.getDevice(device.scope))).not.toContain('8391-2207');
    }
    const device = new TestDevice(server, user, undefined, '14.1');
    expect(
      childText(
        child(await ask(device, el('Settings', 'DevicePassword', [el('Settings', 'Set')])), 'DevicePassword'),
        'Status',
      ),
    ).toBe('2');
  });
});
