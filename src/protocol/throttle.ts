/**
 * Throttling of password guessing, in the StateStore (so every instance of a stateless deployment sees the same
 * counts). Each login attempt is counted before the mail server is asked, atomically (concurrent guesses all count),
 * and taken back when it succeeds, under three keys:
 * - the user name and the client address together (AUTH_FAIL_LIMIT): one stranger's guesses;
 * - the user name from any address (AUTH_FAIL_USER_LIMIT, higher): guesses spread over many addresses;
 * - the client address for any name (AUTH_FAIL_IP_LIMIT): one address spraying many names.
 * An address the user signed in from lately (a known login, AUTH_KNOWN_LOGIN_DAYS) is held only to the first count,
 * so strangers who exhaust the name's count lock out other strangers, never the owner's own devices.
 * Over a limit, logins are refused with 503 and Retry-After (MS-ASHTTP: "service unavailable or throttled"; devices
 * back off rather than ask the user for a new password) until the window ends, without asking the mail server. A user
 * name counts whether or not it exists, so the answer says nothing about it.
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

/**
 * The name a login counts under: lower case, without a `DOMAIN\` and without an `@domain`, so that `Alice`,
 * `alice@example.com` and `EXAMPLE\alice` (which mail servers commonly take for one account) share one count.
 * Users of one tenant with the same local part in two domains share it too: the safe side, since their devices
 * that signed in are not held to it.
 */
export function throttleName(login: string): string {
  const name = login.trim().toLowerCase();
  const local = name.slice(name.lastIndexOf('\\') + 1);
  const at = local.lastIndexOf('@');
  return at > 0 ? local.slice(0, at) : local;
}

/**
 * The address a login counts under: an IPv4-mapped IPv6 address as IPv4, any other IPv6 address as its /64 (one
 * subscriber's share, RFC 6177 §3: a client rotating addresses inside it stays one address).
 */
export function throttleAddress(address: string): string {
  const plain = address
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, '')
    .replace(/%.*$/, '');
  const mapped = /^(?:0*:)*:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(plain) ?? /^::(\d+\.\d+\.\d+\.\d+)$/.exec(plain);
  if (mapped) return mapped[1]!;
  if (!plain.includes(':')) return plain;
  const groups = expandIpv6(plain);
  return groups ? `${groups.slice(0, 4).join(':')}::/64` : plain;
}

/** The eight groups of an IPv6 address, without leading zeros; undefined for what is not one. */
function expandIpv6(address: string): string[] | undefined {
  const halves = address.split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - tail.length;
  if (missing < 0 || (halves.length === 1 && missing !== 0)) return undefined;
  const groups = [...head, ...Array<string>(missing).fill('0'), ...tail];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return undefined;
  return groups.map((g) => g.replace(/^0+(?=.)/, ''));
}

/** The state keys a login counts under (see the file comment); without an address, the pair is the name alone. */
export function throttleKeys(
  login: string,
  address: string | undefined,
): { pair: string; user: string; ip: string | undefined } {
  const name = throttleName(login);
  const ip = address ? throttleAddress(address) : undefined;
  return { pair: `pair:${name}|${ip ?? ''}`, user: `user:${name}`, ip: ip ? `ip:${ip}` : undefined };
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
  const { pairLimit, userLimit, ipLimit, windowSeconds, knownLoginDays } = deps.config.authThrottle;
  const { state } = deps;
  const tenant = deps.config.tenant;
  const keys = throttleKeys(credentials.login, address);
  const knownFor = address ? knownLoginDays * 86_400_000 : 0;
  const knownUntil = knownFor > 0 ? await state.getKnownLogin(tenant, keys.pair) : undefined;
  // A known login is held to its own count only: the name's and the address's are the strangers'.
  const limits: [string, number][] = [[keys.pair, pairLimit]];
  if (knownUntil === undefined) {
    limits.push([keys.user, userLimit]);
    if (keys.ip) limits.push([keys.ip, ipLimit]);
  }
  const counted = limits.filter(([, limit]) => limit > 0);
  const windowMs = windowSeconds * 1000;
  // Counted before the mail server is asked, so that of many concurrent guesses only the allowed number get through.
  const counts = await Promise.all(counted.map(([key]) => state.addAuthFailure(tenant, key, windowMs)));
  const refund = () => Promise.all(counted.map(([key]) => state.refundAuthFailure(tenant, key)));
  const blockedUntil = Math.max(0, ...counts.map((c, i) => (c.count > counted[i]![1] ? c.resetAt : 0)));
  if (blockedUntil > 0) {
    // A refused attempt is no failure: one stranger held at the pair's limit must not fill the name's count.
    await refund();
    throw new LoginThrottledError(retryAfter(blockedUntil));
  }

  let outcome: Awaited<ReturnType<Authenticator['authenticate']>>;
  try {
    outcome = await deps.authenticator.authenticate(credentials);
  } catch (err) {
    await refund();
    throw err;
  }
  if (!outcome.ok) return undefined;
  // A good password ends the pair's count (a typo now and then never adds up); the name's and the address's only
  // get this attempt back, so that one valid login cannot reset a spray.
  await Promise.all(
    counted.map(([key]) =>
      key === keys.pair ? state.clearAuthFailures(tenant, key) : state.refundAuthFailure(tenant, key),
    ),
  );
  // Refreshed when half its time has passed, not on every request.
  const now = Date.now();
  if (knownFor > 0 && (knownUntil === undefined || knownUntil - now < knownFor / 2))
    await state.putKnownLogin(tenant, keys.pair, now + knownFor);
  return outcome.user;
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
