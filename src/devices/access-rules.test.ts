import { describe, expect, it } from 'vitest';
import type { AccessRules, DeviceRecord } from '../state/types.ts';
import { AccessRuleError, decideAccess, parseAccessRule, parseAccessRules, ruleMatches } from './access-rules.ts';

const iphone: DeviceRecord = {
  deviceId: 'D1',
  deviceType: 'iPhone',
  model: 'iPhone15C2',
  userAgent: 'Apple-iPhone15C2/2104.61',
  os: 'iOS 17.4 21E219',
  provisioning: 'provisioned',
  wipe: 'none',
  firstSeen: 1,
  lastSeen: 1,
};
const android: DeviceRecord = {
  ...iphone,
  deviceId: 'D2',
  deviceType: 'SAMSUNGSMG991B',
  model: 'SM-G991B',
  userAgent: 'SAMSUNG-SM-G991B/101.140102',
};

function rules(defaultAccess: AccessRules['defaultAccess'], list: unknown[]): AccessRules {
  return parseAccessRules({ defaultAccess, rules: list });
}

describe('device access rules', () => {
  it('matches patterns against the whole value, ignoring case, and every condition of a rule', () => {
    expect(ruleMatches({ id: 'a', action: 'block', deviceType: 'iphone' }, iphone, 'alice')).toBe(true);
    expect(ruleMatches({ id: 'a', action: 'block', deviceType: 'iPh' }, iphone, 'alice')).toBe(false);
    expect(ruleMatches({ id: 'a', action: 'block', deviceType: 'iPh.*' }, iphone, 'alice')).toBe(true);
    expect(ruleMatches({ id: 'a', action: 'block', userAgent: 'Apple-.*/2104\\..*' }, iphone, 'alice')).toBe(true);
    expect(ruleMatches({ id: 'a', action: 'block', userAgent: 'Apple-.*', model: 'SM-.*' }, iphone, 'alice')).toBe(
      false,
    );
    expect(ruleMatches({ id: 'a', action: 'block', model: 'SM-G99\\dB' }, android, 'alice')).toBe(true);
    // An alternation does not escape the anchors.
    expect(ruleMatches({ id: 'a', action: 'block', deviceType: 'iPad|iPhone' }, iphone, 'alice')).toBe(true);
    expect(ruleMatches({ id: 'a', action: 'block', deviceType: 'iPad|iPho' }, iphone, 'alice')).toBe(false);
    // A device that has not said what model it is has an empty model.
    expect(
      ruleMatches({ id: 'a', action: 'block', model: '.+' }, { ...iphone, model: undefined } as DeviceRecord, 'alice'),
    ).toBe(false);
  });

  it('matches the user as a whole login, ignoring case', () => {
    expect(ruleMatches({ id: 'a', action: 'allow', user: 'CEO@example.com' }, iphone, 'ceo@example.com')).toBe(true);
    expect(ruleMatches({ id: 'a', action: 'allow', user: 'ceo@example.com' }, iphone, 'xceo@example.com')).toBe(false);
    expect(ruleMatches({ id: 'a', action: 'allow', user: 'ceo@.*' }, iphone, 'ceo@example.com')).toBe(false);
  });

  it('lets the first matching rule decide, else the default', () => {
    const r = rules('quarantine', [
      { id: 'boss', action: 'allow', user: 'ceo@example.com' },
      { id: 'old-ios', action: 'block', deviceType: 'iPhone', userAgent: 'Apple-.*/1\\d{3}\\..*' },
      { id: 'iphones', action: 'allow', deviceType: 'iPhone' },
    ]);
    expect(decideAccess(r, iphone, 'alice')).toEqual({ state: 'allowed', reason: 'rule iphones' });
    expect(decideAccess(r, { ...iphone, userAgent: 'Apple-iPhone9C1/1402.72' }, 'alice')).toEqual({
      state: 'blocked',
      reason: 'rule old-ios',
    });
    expect(decideAccess(r, { ...iphone, userAgent: 'Apple-iPhone9C1/1402.72' }, 'ceo@example.com')).toEqual({
      state: 'allowed',
      reason: 'rule boss',
    });
    expect(decideAccess(r, android, 'alice')).toEqual({ state: 'quarantined', reason: 'default' });
  });

  it("puts an admin's decision for one device above the rules", () => {
    const r = rules('block', []);
    expect(decideAccess(r, { ...android, accessOverride: 'allow' }, 'alice')).toEqual({
      state: 'allowed',
      reason: 'admin',
    });
    expect(decideAccess(rules('allow', []), { ...android, accessOverride: 'block' }, 'alice')).toEqual({
      state: 'blocked',
      reason: 'admin',
    });
    expect(decideAccess(r, { ...android, accessOverride: 'none' }, 'alice')).toEqual({
      state: 'blocked',
      reason: 'default',
    });
  });

  it('refuses rules it could not apply, naming the problem', () => {
    expect(() => parseAccessRules({ defaultAccess: 'deny' })).toThrow(/defaultAccess/);
    expect(() => parseAccessRules({ rules: {} })).toThrow(/list/);
    expect(() => parseAccessRule({ action: 'permit' })).toThrow(/action/);
    expect(() => parseAccessRule({ action: 'block', model: '(' })).toThrow(/not a regular expression/);
    expect(() => parseAccessRule({ action: 'block', os: 'iOS' })).toThrow(/unknown field os/);
    // Nested quantifiers: exponential backtracking on a crafted user agent.
    expect(() => parseAccessRule({ action: 'block', userAgent: '(a+)+b' })).toThrow(/exponential/);
    expect(() => parseAccessRule({ action: 'block', userAgent: 'x(\\w*y?){2,}' })).toThrow(/exponential/);
    expect(() => parseAccessRule({ action: 'block', userAgent: '((ab*))+' })).toThrow(/exponential/);
    expect(() => parseAccessRule({ action: 'block', userAgent: '(x(y)+z)*' })).toThrow(/exponential/);
    expect(parseAccessRule({ action: 'block', userAgent: '(Apple|Android)-.*' }).userAgent).toBe('(Apple|Android)-.*');
    expect(parseAccessRule({ action: 'block', userAgent: '(a)+[(+)]*\\(b+\\)+' }).userAgent).toBeDefined();
    expect(parseAccessRule({ action: 'block', model: 'SM-(G|S)9\\d+B' }).model).toBe('SM-(G|S)9\\d+B');
    expect(() => parseAccessRule({ action: 'block', user: '' })).toThrow(AccessRuleError);
    expect(() =>
      parseAccessRules({
        rules: [
          { id: 'x', action: 'allow' },
          { id: 'x', action: 'block' },
        ],
      }),
    ).toThrow(/two rules/);
    expect(parseAccessRule({ action: 'quarantine', deviceType: ' Android ' })).toMatchObject({
      action: 'quarantine',
      deviceType: 'Android',
      id: expect.any(String),
    });
    expect(parseAccessRules({})).toMatchObject({ defaultAccess: 'allow', rules: [] });
  });
});
