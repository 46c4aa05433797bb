/**
 * The web console's sign-in session and CSRF tokens, without server-side storage (so that every runtime and every
 * instance of a stateless deployment can check them): the session is a signed cookie `<expiry>.<random id>`, the
 * signature an HMAC-SHA256 (hono/cookie's signed cookies) under a key derived from ADMIN_TOKEN, so that changing
 * the token ends every session. The CSRF token of a session is an HMAC of its id under the same key: forms carry it,
 * and every POST must send it back (besides the browser's Origin/Sec-Fetch-Site, checked by hono/csrf in console.ts).
 */
import type { Context } from 'hono';
import { deleteCookie, getSignedCookie, setSignedCookie } from 'hono/cookie';

export const SESSION_COOKIE = 'console_session';
/** Where the cookie goes: the console only, not every ActiveSync request. */
export const CONSOLE_PATH = '/admin/ui';
/** How long a sign-in lasts; the cookie cannot be revoked before (sign-out removes it from the browser). */
export const SESSION_SECONDS = 8 * 3600;

const encoder = new TextEncoder();

async function hmac(key: BufferSource, data: string): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return new Uint8Array(await crypto.subtle.sign('HMAC', k, encoder.encode(data)));
}

function base64url(bytes: Uint8Array): string {
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The session-signing key of an admin token: never the token itself, so that a cookie says nothing about it. */
export async function sessionKey(adminToken: string): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await hmac(encoder.encode(adminToken), 'activesync-edge console session v1'));
}

/** A signed-in session. */
export interface ConsoleSession {
  id: string;
  expiresAt: number;
  csrfToken: string;
}

export async function csrfTokenOf(key: BufferSource, sessionId: string): Promise<string> {
  return base64url(await hmac(key, `csrf ${sessionId}`));
}

/** Starts a session: sets the cookie (HttpOnly, Secure, SameSite=Strict, the console's path only). */
export async function startSession(c: Context, key: BufferSource, now = Date.now()): Promise<ConsoleSession> {
  const id = base64url(crypto.getRandomValues(new Uint8Array(18)));
  const expiresAt = now + SESSION_SECONDS * 1000;
  await setSignedCookie(c, SESSION_COOKIE, `${expiresAt}.${id}`, key, {
    path: CONSOLE_PATH,
    httpOnly: true,
    secure: true,
    sameSite: 'Strict',
    maxAge: SESSION_SECONDS,
  });
  return { id, expiresAt, csrfToken: await csrfTokenOf(key, id) };
}

/** The request's session, if its cookie is signed by the key and not expired. */
export async function readSession(
  c: Context,
  key: BufferSource,
  now = Date.now(),
): Promise<ConsoleSession | undefined> {
  const value = await getSignedCookie(c, key, SESSION_COOKIE);
  if (typeof value !== 'string') return undefined;
  const match = /^(\d+)\.([\w-]{16,})$/.exec(value);
  if (!match) return undefined;
  const expiresAt = Number(match[1]);
  if (!(expiresAt > now)) return undefined;
  return { id: match[2]!, expiresAt, csrfToken: await csrfTokenOf(key, match[2]!) };
}

export function endSession(c: Context): void {
  deleteCookie(c, SESSION_COOKIE, { path: CONSOLE_PATH, secure: true, httpOnly: true, sameSite: 'Strict' });
}

/** Whether a form's token is the session's, compared over every character whatever the lengths. */
export function csrfTokenMatches(session: ConsoleSession, given: unknown): boolean {
  if (typeof given !== 'string') return false;
  const wanted = session.csrfToken;
  let difference = given.length === wanted.length ? 0 : 1;
  for (let i = 0; i < wanted.length; i++)
    difference |= wanted.charCodeAt(i) ^ given.charCodeAt(i % (given.length || 1));
  return difference === 0;
}
