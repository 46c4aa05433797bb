/**
 * The sweep's fan-out on Cloudflare (DESIGN §5.3): one cron invocation may hold only 6 connections at once, so a
 * tenant with more leased accounts than one invocation sweeps within its passes is split (planSweep) into slices,
 * and each slice but the cron's own is swept by another invocation of the same Worker: a POST to SWEEP_PATH through
 * a service binding to itself (wrangler.toml `SWEEP_SELF`). Every invocation sweeps its slice until the same `until`,
 * repeating its passes within the minute.
 *
 * The route is internal but reachable like any other. Its key is a secret of its own, SWEEP_SECRET, shared by the
 * deployment's invocations and used for nothing else (never derived from the credential vault's key or a password):
 * without it there is no fan-out (one invocation sweeps every slice, and says so) and the route refuses everything.
 * A request's HMAC-SHA256 is checked before anything of its body is read as JSON, every refusal before and after
 * (a bad signature, an unknown tenant, an `until` out of range) is the same 403, and `until` may lie no more than a
 * few minutes ahead, so a replayed request is short-lived.
 */
import type { ServerConfig } from '../config.ts';
import type { LogSink } from '../log.ts';
import { LEASE_SHARDS, type StateStore } from '../state/types.ts';
import { readAtMost } from '../util/bounded-read.ts';
import { sweep, type SweepMemo, type SweepReport, type SweepSlice } from './sweep.ts';

export const SWEEP_PATH = '/.internal/push-sweep';
const SIGNATURE_HEADER = 'X-Sweep-Signature';
/** A slice request's `until` may lie at most this far ahead. */
const MAX_AHEAD_MS = 3 * 60_000;

export interface SliceRequest {
  tenant: string;
  slice: SweepSlice;
  /** Epoch ms: sweep until then. */
  until: number;
}

/** What an invocation fetches another through (a service binding's Fetcher). */
export interface SweepDispatcher {
  fetch(request: Request): Promise<Response>;
}

/** The most a slice request's body holds (a tenant name, up to 16 shards, a part, a time). */
const MAX_BODY_BYTES = 4096;

/** The signature of a slice request's body under SWEEP_SECRET (hex HMAC-SHA256). */
export async function signSlice(sweepSecret: string, body: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(`activesync-edge sweep v2\n${sweepSecret}`),
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  );
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(body)));
  return [...mac].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** Sends a slice to another invocation; resolves with its report (errors count as one failed account). */
export async function dispatchSlice(
  dispatcher: SweepDispatcher,
  sweepSecret: string,
  request: SliceRequest,
): Promise<SweepReport> {
  const body = JSON.stringify(request);
  const res = await dispatcher.fetch(
    new Request(`https://sweep.internal${SWEEP_PATH}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', [SIGNATURE_HEADER]: await signSlice(sweepSecret, body) },
      body,
    }),
  );
  if (!res.ok) throw new Error(`sweep slice: HTTP ${res.status}`);
  return (await res.json()) as SweepReport;
}

function parseSlice(value: unknown): SliceRequest | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { tenant, slice, until } = value as Partial<SliceRequest>;
  if (typeof tenant !== 'string' || typeof until !== 'number' || typeof slice !== 'object' || slice === null)
    return undefined;
  const shards = (slice as Partial<SweepSlice>).shards;
  if (
    !Array.isArray(shards) ||
    shards.length === 0 ||
    !shards.every((s) => Number.isInteger(s) && s >= 0 && s < LEASE_SHARDS)
  )
    return undefined;
  const part = (slice as Partial<SweepSlice>).part;
  if (
    part !== undefined &&
    !(
      Number.isInteger(part.index) &&
      Number.isInteger(part.of) &&
      part.of >= 1 &&
      part.index >= 0 &&
      part.index < part.of
    )
  )
    return undefined;
  return { tenant, until, slice: { shards, ...(part ? { part: { index: part.index, of: part.of } } : {}) } };
}

/**
 * The internal route: verifies and runs one slice. 403 for a request without a valid signature (or without
 * SWEEP_SECRET), an unknown tenant or an `until` out of range, alike; 400 for a signed body that is not a slice; the
 * report as JSON otherwise.
 */
export async function handleSliceRequest(
  request: Request,
  deps: {
    tenant(name: string): ServerConfig | undefined;
    state: StateStore;
    sweepSecret: string | undefined;
    log: LogSink;
    memoFor(tenant: string, slice: SweepSlice): SweepMemo;
    concurrency: number;
  },
): Promise<Response> {
  if (request.method !== 'POST') return new Response('method not allowed\n', { status: 405 });
  const forbidden = () => new Response('forbidden\n', { status: 403 });
  if (!deps.sweepSecret) return forbidden();
  const body = await boundedText(request, MAX_BODY_BYTES);
  const signature = request.headers.get(SIGNATURE_HEADER) ?? '';
  if (body === undefined || !sameText(signature, await signSlice(deps.sweepSecret, body))) return forbidden();
  let parsed: SliceRequest | undefined;
  try {
    parsed = parseSlice(JSON.parse(body));
  } catch {
    parsed = undefined;
  }
  if (!parsed) return new Response('bad sweep slice\n', { status: 400 });
  const config = deps.tenant(parsed.tenant);
  const now = Date.now();
  if (!config || parsed.until <= now || parsed.until > now + MAX_AHEAD_MS) return forbidden();
  const report = await sweep({
    state: deps.state,
    tenant: config.tenant,
    imap: config.imap,
    push: config.push,
    dav: { caldavUrl: config.caldavUrl, carddavUrl: config.carddavUrl },
    log: deps.log,
    until: parsed.until,
    shards: parsed.slice.shards,
    ...(parsed.slice.part ? { part: parsed.slice.part } : {}),
    memo: deps.memoFor(config.tenant, parsed.slice),
    concurrency: deps.concurrency,
  });
  return Response.json(report);
}

/** The body as text, or undefined once it passes `limit` bytes (read no further). */
async function boundedText(request: Request, limit: number): Promise<string | undefined> {
  if (Number(request.headers.get('content-length') ?? 0) > limit) return undefined;
  const bytes = await readAtMost(request.body, limit);
  return bytes && new TextDecoder().decode(bytes);
}
