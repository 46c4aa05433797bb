/**
 * Where the client address for login throttling comes from, per runtime (the throttling itself:
 * test/e2e/auth-abuse.test.ts).
 */
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import type { AuthThrottleConfig } from '../config.ts';
import { clientAddress, throttleKeys } from './throttle.ts';

async function addressOf(
  headers: Record<string, string>,
  env: unknown,
  clientIpHeader?: string,
  cf = false,
): Promise<string> {
  const config: { authThrottle: AuthThrottleConfig } = {
    authThrottle: { userLimit: 10, ipLimit: 100, windowSeconds: 900, clientIpHeader },
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
  it('counts a user name case-insensitively, and an address apart from any user', () => {
    expect(throttleKeys(' Alice@Example.TEST ', '192.0.2.1')).toEqual({
      user: 'user:alice@example.test',
      ip: 'ip:192.0.2.1',
    });
    expect(throttleKeys('alice', undefined).ip).toBeUndefined();
  });
});
