import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../config.ts';
import type { DeviceRecord } from '../state/types.ts';
import { HttpError } from './errors.ts';
import { DEFAULT_POLICY_CONFIG, effectivePolicy, parsePolicyConfig, POLICY_FIELDS } from '../tenants/policy.ts';
import {
  newPolicyKey,
  policyHash,
  provisioningRefusal,
  provisionDoc,
  refusalResponse,
  type ProvisioningCheck,
} from './policy.ts';
import type { ActiveSyncRequest } from './request.ts';

describe('the POLICY setting', () => {
  it('takes any EASProvisionDoc element, booleans as true/false or 0/1, null for an empty element, and per-user overrides', () => {
    const config = parsePolicyConfig(
      JSON.stringify({
        DevicePasswordEnabled: true,
        AllowCamera: 0,
        MaxAttachmentSize: 10485760,
        UnapprovedInROMApplicationList: ['Solitaire'],
        AllowNonProvisionableDevices: false,
        users: {
          'Alice@Example.Test': {
            DevicePasswordEnabled: false,
            MaxAttachmentSize: null,
            AllowNonProvisionableDevices: true,
          },
        },
      }),
    );
    const tenant = effectivePolicy(config, 'bob@example.test');
    expect(tenant.values).toMatchObject({
      DevicePasswordEnabled: 1,
      AllowCamera: 0,
      MaxAttachmentSize: 10485760,
      AllowWiFi: 1,
      UnapprovedInROMApplicationList: ['Solitaire'],
    });
    expect(tenant.allowNonProvisionableDevices).toBe(false);
    const alice = effectivePolicy(config, 'ALICE@example.test');
    expect(alice.values).toMatchObject({ DevicePasswordEnabled: 0, AllowCamera: 0, MaxAttachmentSize: null });
    expect(alice.allowNonProvisionableDevices).toBe(true);
  });

  it('refuses unknown names, out-of-range values and what is not JSON, naming the culprit', () => {
    expect(() => parsePolicyConfig('{"DevicePasswordEnabeld": true}')).toThrow(/DevicePasswordEnabeld|Unrecognized/);
    expect(() => parsePolicyConfig('{"MinDevicePasswordLength": 40}')).toThrow(/MinDevicePasswordLength/);
    expect(() => parsePolicyConfig('{"MaxCalendarAgeFilter": 3}')).toThrow(/MaxCalendarAgeFilter/);
    expect(() => parsePolicyConfig('{"users": {"a": {"Nope": 1}}}')).toThrow(/users\.a/);
    expect(() => parsePolicyConfig('{not json')).toThrow(/not JSON/);
    // No recovery password is kept (Settings DevicePassword answers Status 7): a policy cannot promise one.
    expect(() => parsePolicyConfig('{"PasswordRecoveryEnabled": true}')).toThrow(/PasswordRecoveryEnabled/);
    expect(() => parsePolicyConfig('{"users": {"a": {"PasswordRecoveryEnabled": 1}}}')).toThrow(
      /PasswordRecoveryEnabled/,
    );
    expect(parsePolicyConfig('{"PasswordRecoveryEnabled": false}').base.PasswordRecoveryEnabled).toBe(0);
    const base = { IMAP_HOST: 'imap.example.test' };
    expect(() => loadConfig({ ...base, POLICY: '{"AllowCamera": 7}' })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, POLICY: '{"AllowCamera": 7}' })).toThrow(/POLICY/);
    expect(() => loadConfig({ ...base, PROVISIONING: 'sometimes' })).toThrow(/PROVISIONING/);
    expect(() => loadConfig({ ...base, PUBLIC_URL: 'ftp://x.example' })).toThrow(/PUBLIC_URL/);
  });

  it('defaults to strict provisioning and the permissive policy', () => {
    const config = loadConfig({
      IMAP_HOST: 'imap.example.test',
      PROVISIONING: 'LOOSE',
      PUBLIC_URL: 'https://sync.example.test/',
    });
    expect(config.provisioning).toBe('loose');
    expect(config.publicUrl).toBe('https://sync.example.test');
    const defaults = loadConfig({ IMAP_HOST: 'imap.example.test' });
    expect(defaults.provisioning).toBe('strict');
    expect(defaults.policy).toEqual(DEFAULT_POLICY_CONFIG);
    expect(effectivePolicy(defaults.policy, 'x').values.DevicePasswordEnabled).toBe(0);
  });
});

describe('the policy document', () => {
  it('has every element for 12.1 and later, and the twelve of 12.0 for 12.0', () => {
    const values = effectivePolicy(DEFAULT_POLICY_CONFIG, 'x').values;
    expect(provisionDoc(values, '16.1').children).toHaveLength(POLICY_FIELDS.length);
    expect(provisionDoc(values, '12.1').children).toHaveLength(POLICY_FIELDS.length);
    expect(provisionDoc(values, '12.0').children.map((c) => c.tag)).toEqual([
      'DevicePasswordEnabled',
      'AlphanumericDevicePasswordRequired',
      'PasswordRecoveryEnabled',
      'RequireStorageCardEncryption',
      'AttachmentsEnabled',
      'MinDevicePasswordLength',
      'MaxInactivityTimeDeviceLock',
      'MaxDevicePasswordFailedAttempts',
      'MaxAttachmentSize',
      'AllowSimpleDevicePassword',
      'DevicePasswordExpiration',
      'DevicePasswordHistory',
    ]);
  });

  it('writes lists as ApplicationName / Hash children and empty values as empty elements', () => {
    const values = effectivePolicy(
      parsePolicyConfig(
        '{"ApprovedApplicationList": ["3A7F", "0F1E"], "DevicePasswordExpiration": null, "MinDevicePasswordLength": null}',
      ),
      'x',
    ).values;
    const doc = provisionDoc(values, '14.1');
    expect(doc.children.find((c) => c.tag === 'ApprovedApplicationList')?.children.map((c) => [c.tag, c.text])).toEqual(
      [
        ['Hash', '3A7F'],
        ['Hash', '0F1E'],
      ],
    );
    expect(doc.children.find((c) => c.tag === 'UnapprovedInROMApplicationList')).toEqual({
      ns: 'Provision',
      tag: 'UnapprovedInROMApplicationList',
      children: [],
    });
    expect(doc.children.find((c) => c.tag === 'DevicePasswordExpiration')).toEqual({
      ns: 'Provision',
      tag: 'DevicePasswordExpiration',
      children: [],
    });
    // null empties a setting whose default is not empty.
    expect(doc.children.find((c) => c.tag === 'MinDevicePasswordLength')).toEqual({
      ns: 'Provision',
      tag: 'MinDevicePasswordLength',
      children: [],
    });
  });

  it('has a fingerprint that changes with the policy and only with it', async () => {
    const a = await policyHash(effectivePolicy(DEFAULT_POLICY_CONFIG, 'x'));
    expect(await policyHash(effectivePolicy(DEFAULT_POLICY_CONFIG, 'y'))).toBe(a);
    expect(await policyHash(effectivePolicy(parsePolicyConfig('{"AllowCamera": false}'), 'x'))).not.toBe(a);
    expect(
      await policyHash(effectivePolicy(parsePolicyConfig('{"AllowNonProvisionableDevices": false}'), 'x')),
    ).not.toBe(a);
    expect(await policyHash(effectivePolicy(parsePolicyConfig('{"MinDevicePasswordLength": null}'), 'x'))).not.toBe(a);
  });

  it('hands out policy keys that are never 0 and never the one given', () => {
    for (let i = 0; i < 1000; i++) {
      const key = newPolicyKey('5');
      expect(key).toMatch(/^[1-9]\d{0,9}$/);
      expect(Number(key)).toBeLessThan(2 ** 32);
    }
  });
});

describe('the check before a command', () => {
  const device = (over: Partial<DeviceRecord> = {}): DeviceRecord => ({
    deviceId: 'D',
    deviceType: 'iPhone',
    provisioning: 'none',
    wipe: 'none',
    firstSeen: 0,
    lastSeen: 0,
    ...over,
  });
  const request = (policyKey?: string): ActiveSyncRequest => ({
    command: 'Sync',
    user: undefined,
    deviceId: 'D',
    deviceType: 'iPhone',
    version: '14.1',
    policyKey,
    locale: undefined,
    queryForm: 'plain',
    userAgent: undefined,
    params: {},
  });
  const check = (over: Partial<ProvisioningCheck>): ProvisioningCheck => ({
    mode: 'strict',
    policy: DEFAULT_POLICY_CONFIG,
    login: 'alice',
    device: device(),
    request: request(),
    command: 'Sync',
    body: undefined,
    ...over,
  });

  it('tells the reasons apart', async () => {
    const hash = await policyHash(effectivePolicy(DEFAULT_POLICY_CONFIG, 'alice'));
    const provisioned = device({ provisioning: 'provisioned', policyKey: '42', policyHash: hash });
    expect(await provisioningRefusal(check({}))).toBe('not-provisioned');
    expect(await provisioningRefusal(check({ device: provisioned, request: request('0') }))).toBe('not-provisioned');
    expect(await provisioningRefusal(check({ device: provisioned, request: request('41') }))).toBe('invalid-key');
    expect(await provisioningRefusal(check({ device: provisioned, request: request('42') }))).toBeUndefined();
    expect(
      await provisioningRefusal(check({ device: { ...provisioned, policyHash: 'old' }, request: request('42') })),
    ).toBe('policy-refresh');
    expect(
      await provisioningRefusal(check({ device: { ...provisioned, wipe: 'acknowledged' }, request: request('42') })),
    ).toBe('wipe');
    expect(
      await provisioningRefusal(check({ command: 'Provision', device: device({ wipe: 'pending' }) })),
    ).toBeUndefined();
    expect(await provisioningRefusal(check({ mode: 'loose' }))).toBeUndefined();
    expect(await provisioningRefusal(check({ mode: 'loose', request: request('0') }))).toBe('not-provisioned');
    expect(await provisioningRefusal(check({ mode: 'loose', device: device({ wipe: 'requested' }) }))).toBe('wipe');
  });

  it('answers 449 below 14.0 and the common status in the command root from 14.0 on', () => {
    expect(() => refusalResponse('not-provisioned', '12.1', 'Sync')).toThrow(HttpError);
    try {
      refusalResponse('wipe', '12.0', 'FolderSync');
    } catch (err) {
      expect((err as HttpError).status).toBe(449);
    }
    expect(refusalResponse('wipe', '14.0', 'Ping')).toEqual({
      kind: 'wbxml',
      body: { ns: 'Ping', tag: 'Ping', children: [{ ns: 'Ping', tag: 'Status', children: [], text: '140' }] },
    });
    expect(refusalResponse('policy-refresh', '16.1', 'SendMail')).toMatchObject({
      body: { ns: 'ComposeMail', tag: 'SendMail', children: [{ text: '143' }] },
    });
    // A command without a WBXML response (GetAttachment) gets 449 whatever the version.
    expect(() => refusalResponse('invalid-key', '14.1', 'GetAttachment')).toThrow(HttpError);
  });
});
