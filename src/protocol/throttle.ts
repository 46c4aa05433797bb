/**
 * Throttling of password guessing. Failed logins are counted per user name and per client address in the
 * StateStore (so every instance of a stateless deployment sees the same counts); once either count reaches its
 * limit, logins under that name or from that address are refused with 503 and Retry-After (MS-ASHTTP: "service
 * unavailable or throttled"; devices back off rather than ask the user for a new password) until the window ends,
 * without asking the mail server. A user name counts whether or not it exists, so the answer says nothing about it.
 */
import type { Context } from 'hono';
import type { AuthThrottleConfig } from '../config.ts';
import type { StateStore } from '../state/types.ts';
import type { AuthenticatedUser, Authenticator, Credentials } from '../backends/auth.ts';
import { HttpError } from './errors.ts';

export interface LoginGuardDeps {
  config: { tenant: string; authThrottle: AuthThrottleConfig };
  state: StateStore;
  authenticator: Authenticator;
}

/** Thrown while a user name or client address is throttled: HTTP 503 with Retry-After. */
export class LoginThrottledError extends HttpError {
  constructor(retryAfterSeconds: number) {
    super(503, 'too many failed logins', { 'Retry-After': String(retryAfterSeconds) });
  }
}

/** The state keys a login counts under: the user name (case-insensitive, as mail servers treat it) and the address. */
export function throttleKeys(login: string, address: string | undefined): { user: string; ip: string | undefined } {
  return { user: `user:${login.trim().toLowerCase()}`, ip: address ? `ip:${address}` : undefined };
}

/**
 * Checks the credentials with the authenticator unless throttled: the authenticated user, or undefined for a wrong
 * password. Throws LoginThrottledError (without contacting the mail server) while throttled; the authenticator's
 * own errors (AuthUnavailableError) pass through and count as no failure.
 */
export async function guardedAuthenticate(
  deps: LoginGuardDeps,
  credentials: Credentials,
  address: string | undefined,
): Promise<AuthenticatedUser | undefined> {
  const { userLimit, ipLimit, windowSeconds } = deps.config.authThrottle;
  const tenant = deps.config.tenant;
  const keys = throttleKeys(credentials.login, address);
  const limits: [string, number][] = [[keys.user, userLimit]];
  if (keys.ip) limits.push([keys.ip, ipLimit]);
  const active = limits.filter(([, limit]) => limit > 0);

  const records = await Promise.all(active.map(([key]) => deps.state.getAuthFailures(tenant, key)));
  const blockedUntil = Math.max(0, ...records.map((r, i) => (r && r.count >= active[i]![1] ? r.resetAt : 0)));
  if (blockedUntil > 0) throw new LoginThrottledError(retryAfter(blockedUntil));

  const outcome = await deps.authenticator.authenticate(credentials);
  if (outcome.ok) {
    // A good password ends the user's count (the address's stays: one valid account must not reset a spray).
    if (records.some((r, i) => r && active[i]![0] === keys.user)) await deps.state.clearAuthFailures(tenant, keys.user);
    return outcome.user;
  }
  if (active.length > 0)
    await Promise.all(active.map(([key]) => deps.state.addAuthFailure(tenant, key, windowSeconds * 1000)));
  return undefined;
}

function retryAfter(until: number): number {
  return Math.max(1, Math.ceil((until - Date.now()) / 1000));
}

/**
 * The client's address: from the trusted proxy header when CLIENT_IP_HEADER names one (the last entry of a list,
 * the one the proxy itself added), else what the runtime knows of the peer: @hono/node-server's socket, a Lambda
 * Function URL's sourceIp, Cloudflare's CF-Connecting-IP (set by Cloudflare's edge, never by the client).
 */
export function clientAddress(c: Context, config: { authThrottle: AuthThrottleConfig }): string | undefined {
  const header = config.authThrottle.clientIpHeader;
  if (header) {
    const value = c.req.header(header);
    const last = value?.split(',').pop()?.trim();
    return last ? last.slice(0, 64) : undefined;
  }
  const env = c.env as Record<string, unknown> | undefined;
  const incoming = env?.incoming as { socket?: { remoteAddress?: unknown } } | undefined;
  if (typeof incoming?.socket?.remoteAddress === 'string') return incoming.socket.remoteAddress;
  const http = (env?.requestContext as { http?: { sourceIp?: unknown } } | undefined)?.http;
  if (typeof http?.sourceIp === 'string') return http.sourceIp;
  if ((c.req.raw as { cf?: unknown }).cf !== undefined) return c.req.header('cf-connecting-ip');
  return undefined;
}
