/**
 * The sweep's fan-out on Cloudflare (DESIGN §5.3): one cron invocation may hold only 6 connections at once, so a
 * tenant with more leased accounts than one invocation sweeps within its passes is split (planSweep) into slices,
 * and each slice but the cron's own is swept by another invocation of the same Worker: a POST to SWEEP_PATH through
 * a service binding to itself (wrangler.toml `SWEEP_SELF`). Every invocation sweeps its slice until the same `until`,
 * repeating its passes within the minute.
 *
 * The route is internal but reachable like any other: a request must carry an HMAC-SHA256 of its body under a key
 * only the deployment has (SWEEP_SECRET, else derived from the tenant's CREDENTIAL_KEY or master password, which a
 * sweep needs anyway), and an `until` no more than a few minutes ahead, so a replayed request is short-lived.
 */
import type { ServerConfig } from '../config.ts';
import type { LogSink } from '../log.ts';
import { LEASE_SHARDS, type StateStore } from '../state/types.ts';
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

function signingMaterial(config: ServerConfig, sweepSecret: string | undefined): string | undefined {
  if (sweepSecret) return `secret:${sweepSecret}`;
  if (config.push.credentialKey) return `vault:${[...config.push.credentialKey].join(',')}`;
  if (config.push.master) return `master:${config.push.master.user}:${config.push.master.password}`;
  return undefined;
}

async function sign(material: string, body: string): Promise<string> {
  const key = await crypto.subtle.importKey(
    'raw',
    new TextEncoder().encode(`activesync-edge sweep v1\n${material}`),
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
  config: ServerConfig,
  sweepSecret: string | undefined,
  request: SliceRequest,
): Promise<SweepReport> {
  const material = signingMaterial(config, sweepSecret);
  if (!material) throw new Error('no key to sign a sweep slice with');
  const body = JSON.stringify(request);
  const res = await dispatcher.fetch(
    new Request(`https://sweep.internal${SWEEP_PATH}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', [SIGNATURE_HEADER]: await sign(material, body) },
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
 * The internal route: verifies and runs one slice. 400 for a malformed request, 403 for a bad signature or an
 * `until` out of range, 404 for an unknown tenant; the report as JSON otherwise.
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
  const body = await request.text();
  let parsed: SliceRequest | undefined;
  try {
    parsed = parseSlice(JSON.parse(body));
  } catch {
    parsed = undefined;
  }
  if (!parsed) return new Response('bad sweep slice\n', { status: 400 });
  const config = deps.tenant(parsed.tenant);
  if (!config) return new Response('unknown tenant\n', { status: 404 });
  const material = signingMaterial(config, deps.sweepSecret);
  const signature = request.headers.get(SIGNATURE_HEADER) ?? '';
  if (!material || !sameText(signature, await sign(material, body)))
    return new Response('forbidden\n', { status: 403 });
  const now = Date.now();
  if (parsed.until <= now || parsed.until > now + MAX_AHEAD_MS) return new Response('forbidden\n', { status: 403 });
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
