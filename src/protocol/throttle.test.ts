/**
 * Where the client address for login throttling comes from, per runtime (the throttling itself:
 * test/e2e/auth-abuse.test.ts).
 */
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import type { AuthThrottleConfig } from '../config.ts';
import { clientAddress, throttleAddress, throttleKeys, throttleName } from './throttle.ts';

async function addressOf(
  headers: Record<string, string>,
  env: unknown,
  clientIpHeader?: string,
  cf = false,
): Promise<string> {
  const config: { authThrottle: AuthThrottleConfig } = {
    authThrottle: {
      pairLimit: 10,
      userLimit: 50,
      ipLimit: 100,
      windowSeconds: 900,
      knownLoginDays: 30,
      clientIpHeader,
    },
  };
  const app = new Hono();
  app.get('/', (c) => c.text(clientAddress(c, config) ?? 'none'));
  const request = new Request('https://eas.example.test/', { headers });
  if (cf) Object.defineProperty(request, 'cf', { value: { colo: 'AMS' } });
  return (await app.fetch(request, env as never)).text();
}

describe('clientAddress', () => {
  it('takes the last entry of the trusted proxy header when CLIENT_IP_HEADER names one, whatever the runtime says', async () => {
    const env = { incoming: { socket: { remoteAddress: '10.0.0.1' } } };
    expect(await addressOf({ 'X-Forwarded-For': '198.51.100.7, 203.0.113.5' }, env, 'X-Forwarded-For')).toBe(
      '203.0.113.5',
    );
    expect(await addressOf({}, env, 'X-Forwarded-For')).toBe('none');
  });

  it('uses the runtime’s own peer address otherwise, and ignores headers a client can forge', async () => {
    expect(
      await addressOf({ 'X-Forwarded-For': '1.2.3.4' }, { incoming: { socket: { remoteAddress: '10.0.0.1' } } }),
    ).toBe('10.0.0.1');
    expect(
      await addressOf({ 'X-Forwarded-For': '1.2.3.4' }, { requestContext: { http: { sourceIp: '192.0.2.44' } } }),
    ).toBe('192.0.2.44');
    // CF-Connecting-IP counts only on Cloudflare (a request with `cf`), where the edge sets it.
    expect(await addressOf({ 'CF-Connecting-IP': '192.0.2.9' }, {}, undefined, true)).toBe('192.0.2.9');
    expect(await addressOf({ 'CF-Connecting-IP': '192.0.2.9' }, {})).toBe('none');
  });
});

describe('throttleKeys', () => {
  it('counts a user name as mail servers take it: case, `DOMAIN\\` and `@domain` make no difference', () => {
    for (const login of ['alice', ' Alice@Example.TEST ', 'ALICE@other.test', 'EXAMPLE\\alice'])
      expect(throttleName(login)).toBe('alice');
    expect(throttleKeys('Alice@Example.TEST', '192.0.2.1')).toEqual({
      pair: 'pair:alice|192.0.2.1',
      user: 'user:alice',
      ip: 'ip:192.0.2.1',
    });
    expect(throttleKeys('alice', undefined)).toEqual({ pair: 'pair:alice|', user: 'user:alice', ip: undefined });
  });

  it('counts an IPv6 client by its /64, and an IPv4-mapped one as IPv4', () => {
    expect(throttleAddress('2001:db8:1:2:aaaa:bbbb:cccc:dddd')).toBe('2001:db8:1:2::/64');
    expect(throttleAddress('2001:0db8:0001:0002::1')).toBe('2001:db8:1:2::/64');
    expect(throttleAddress('[2001:db8::1]')).toBe('2001:db8:0:0::/64');
    expect(throttleAddress('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(throttleAddress('::ffff:198.51.100.7')).toBe('198.51.100.7');
    expect(throttleAddress('198.51.100.7')).toBe('198.51.100.7');
    expect(throttleAddress('not-an-address')).toBe('not-an-address');
  });
});
