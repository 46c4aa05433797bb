/**
 * Throttling of password guessing, in the StateStore (so every instance of a stateless deployment sees the same
 * counts). Each login attempt is counted before the mail server is asked, atomically (concurrent guesses all count),
 * and taken back when it succeeds (so a count holds the attempts still at the mail server too; an attempt over a limit
 * only because of those waits for them rather than being refused, countAttempt), under three keys:
 * - the user name and the client address together (AUTH_FAIL_LIMIT): one stranger's guesses;
 * - the user name from any address (AUTH_FAIL_USER_LIMIT, higher): guesses spread over many addresses;
 * - the client address for any name (AUTH_FAIL_IP_LIMIT): one address spraying many names.
 * An address the user signed in from lately (a known login, AUTH_KNOWN_LOGIN_DAYS) is held only to the first count,
 * so strangers who exhaust the name's count lock out other strangers, never the owner's own devices.
 * Over a limit, logins are refused with 503 and Retry-After (MS-ASHTTP: "service unavailable or throttled"; devices
 * back off rather than ask the user for a new password) until the window ends, without asking the mail server. A user
 * name counts whether or not it exists, so the answer says nothing about it. Credentials this process saw sign in
 * lately are not counted before the login (verifiedLogins): a device's steady requests cost one read, no write, and
 * that read goes out beside the request's own (LoginGuardDeps.defer).
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
  /**
   * Takes state work that need not come before the request's own (forgetting a proven login's old failures): the
   * caller starts it beside its first reads and waits for it before it answers. Without it, the work is done at once.
   */
  defer?(work: () => Promise<void>): void;
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

/** How long a refused attempt waits at most for earlier attempts still at the mail server (see countAttempt). */
const PENDING_WAIT_MS = 10_000;
/** How long credentials that signed in are taken as proven by this process for the count (see verifiedLogins). */
const VERIFIED_MS = 5 * 60_000;
const VERIFIED_MAX = 10_000;

/**
 * Credentials this process saw sign in lately, by a salted SHA-256 (never the secret itself): their next logins are
 * not counted before the mail server is asked (no state write, no read), since they are not guesses; the mail server
 * still checks them on every request, and one that fails (a changed password) is counted then and forgotten here.
 * Guesses carry other credentials and are counted as before, so of parallel guesses still only the allowed number get
 * through. Per process (per isolate on Workers, per warm instance on Lambda): elsewhere they are counted.
 */
const verifiedLogins = new Map<string, number>();
// Made on first use: workerd refuses random values in a module's global scope (the Worker would not start).
let verifiedSalt: Uint8Array | undefined;

async function verifiedKey(tenant: string, pair: string, credentials: Credentials): Promise<string> {
  const text = new TextEncoder().encode(
    JSON.stringify([tenant, pair, credentials.login, credentials.password, credentials.accessToken ?? '']),
  );
  verifiedSalt ??= crypto.getRandomValues(new Uint8Array(16));
  const input = new Uint8Array(verifiedSalt.length + text.length);
  input.set(verifiedSalt);
  input.set(text, verifiedSalt.length);
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', input));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

function isVerified(key: string): boolean {
  const until = verifiedLogins.get(key);
  if (until === undefined) return false;
  if (until > Date.now()) return true;
  verifiedLogins.delete(key);
  return false;
}

function rememberVerified(key: string): void {
  verifiedLogins.delete(key);
  if (verifiedLogins.size >= VERIFIED_MAX) verifiedLogins.delete(verifiedLogins.keys().next().value!);
  verifiedLogins.set(key, Date.now() + VERIFIED_MS);
}

/** Forgets every proven login, as a fresh process would have none (benchmarks and tests of another instance). */
export function forgetVerifiedLogins(): void {
  verifiedLogins.clear();
}

/** The key under which the failures that reached the mail server are kept, beside a count that includes pending ones. */
function failedKey(key: string): string {
  return `failed:${key}`;
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
  const windowMs = windowSeconds * 1000;
  const throttled = pairLimit > 0 || userLimit > 0 || ipLimit > 0;
  const proven = throttled ? await verifiedKey(tenant, keys.pair, credentials) : undefined;

  // Credentials this process saw sign in: asked without a count (verifiedLogins).
  if (proven !== undefined && isVerified(proven)) {
    const outcome = await deps.authenticator.authenticate(credentials);
    if (outcome.ok) {
      // A read, and a write only when the pair has failures to forget (a typo on another instance); nothing that
      // decides this request, so the caller may run it beside its own reads (defer).
      const forget = async (): Promise<void> => {
        if (((await state.getAuthFailures(tenant, keys.pair))?.count ?? 0) > 0)
          await Promise.all([
            state.clearAuthFailures(tenant, keys.pair),
            state.clearAuthFailures(tenant, failedKey(keys.pair)),
          ]);
      };
      if (deps.defer) deps.defer(forget);
      else await forget();
      return outcome.user;
    }
    verifiedLogins.delete(proven);
    // No longer good (a changed password): a failure like any other, counted now.
    const counted = await countedKeys(deps, keys, address);
    await Promise.all(
      counted.flatMap(([key]) => [
        state.addAuthFailure(tenant, key, windowMs),
        state.addAuthFailure(tenant, failedKey(key), windowMs),
      ]),
    );
    return undefined;
  }

  const knownFor = address ? knownLoginDays * 86_400_000 : 0;
  const knownUntil = knownFor > 0 ? await state.getKnownLogin(tenant, keys.pair) : undefined;
  // Counted under nothing when the credentials were proven while the attempt waited (countAttempt).
  const attempt = await countAttempt(deps, limitsFor(deps, keys, knownUntil !== undefined), proven);
  const counted = attempt?.keys ?? [];
  const refund = () => Promise.all(counted.map(([key]) => state.refundAuthFailure(tenant, key)));

  let outcome: Awaited<ReturnType<Authenticator['authenticate']>>;
  try {
    outcome = await deps.authenticator.authenticate(credentials);
  } catch (err) {
    await refund();
    throw err;
  }
  if (!outcome.ok) {
    // A failure that reached the mail server: what a refused attempt waiting on pending ones looks at (countAttempt).
    await Promise.all(counted.map(([key]) => state.addAuthFailure(tenant, failedKey(key), windowMs)));
    return undefined;
  }
  if (proven !== undefined) rememberVerified(proven);
  // A good password ends the pair's count (a typo now and then never adds up; when this attempt was all it held,
  // taking it back is one write instead of two); the name's and the address's only get this attempt back, so that
  // one valid login cannot reset a spray.
  await Promise.all(
    counted.flatMap(([key], i) =>
      key === keys.pair && attempt!.counts[i]! > 1
        ? [state.clearAuthFailures(tenant, key), state.clearAuthFailures(tenant, failedKey(key))]
        : [state.refundAuthFailure(tenant, key)],
    ),
  );
  // Refreshed when half its time has passed, not on every request.
  const now = Date.now();
  if (knownFor > 0 && (knownUntil === undefined || knownUntil - now < knownFor / 2))
    await state.putKnownLogin(tenant, keys.pair, now + knownFor);
  return outcome.user;
}

type Keys = ReturnType<typeof throttleKeys>;

/** The counts a login is held to: a known login only to its own, the name's and the address's are the strangers'. */
function limitsFor(deps: LoginGuardDeps, keys: Keys, known: boolean): [string, number][] {
  const { pairLimit, userLimit, ipLimit } = deps.config.authThrottle;
  const limits: [string, number][] = [[keys.pair, pairLimit]];
  if (!known) {
    limits.push([keys.user, userLimit]);
    if (keys.ip) limits.push([keys.ip, ipLimit]);
  }
  return limits.filter(([, limit]) => limit > 0);
}

async function countedKeys(deps: LoginGuardDeps, keys: Keys, address: string | undefined): Promise<[string, number][]> {
  const knownFor = address ? deps.config.authThrottle.knownLoginDays * 86_400_000 : 0;
  const known = knownFor > 0 && (await deps.state.getKnownLogin(deps.config.tenant, keys.pair)) !== undefined;
  return limitsFor(deps, keys, known);
}

/**
 * Counts the attempt before the mail server is asked, so that of many concurrent guesses only the allowed number get
 * through; throws LoginThrottledError when a count is over its limit. A count holds the attempts still at the mail
 * server as well as the failures: when it is over its limit only because of pending ones (fewer failures than the
 * limit under failedKey), the attempt is no guess refused but one in a queue: it takes its count back and tries again
 * as they end (one user's devices signing in at once from one address, or a process's first requests), for at most
 * PENDING_WAIT_MS, and proceeds at once when the credentials were proven meanwhile.
 */
async function countAttempt(
  deps: LoginGuardDeps,
  counted: [string, number][],
  proven: string | undefined,
): Promise<{ keys: [string, number][]; counts: number[] } | undefined> {
  const { state } = deps;
  const tenant = deps.config.tenant;
  const windowMs = deps.config.authThrottle.windowSeconds * 1000;
  const deadline = Date.now() + PENDING_WAIT_MS;
  for (let pause = 50; ; pause = Math.min(pause * 2, 1000)) {
    const counts = await Promise.all(counted.map(([key]) => state.addAuthFailure(tenant, key, windowMs)));
    const over = counted.flatMap(([key, limit], i) =>
      counts[i]!.count > limit ? [{ key, limit, c: counts[i]! }] : [],
    );
    if (over.length === 0) return { keys: counted, counts: counts.map((c) => c.count) };
    // A refused attempt is no failure: one stranger held at the pair's limit must not fill the name's count.
    await Promise.all(counted.map(([key]) => state.refundAuthFailure(tenant, key)));
    const failed = await Promise.all(over.map(({ key }) => state.getAuthFailures(tenant, failedKey(key))));
    const blockedUntil = Math.max(
      0,
      ...over.map(({ c }, i) => ((failed[i]?.count ?? 0) >= over[i]!.limit ? c.resetAt : 0)),
    );
    if (blockedUntil > 0) throw new LoginThrottledError(retryAfter(blockedUntil));
    if (Date.now() + pause > deadline) throw new LoginThrottledError(1);
    await new Promise((resolve) => setTimeout(resolve, pause));
    if (proven !== undefined && isVerified(proven)) return undefined;
  }
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
