/**
 * Replays a session against a live server over HTTP, one request after the other as the device sent them: each
 * request's XML encoded again as WBXML with the live server's keys and ids (mapping.ts), its query in the device's
 * form with the replay's User and DeviceId (query.ts), its headers as captured but for the policy key and the
 * credentials, which are the replay's. Each answer is judged (verdict.ts) and taught to the map before the next request.
 */
import { asSender, SENDING_COMMANDS, withSender } from './sender.ts';
import { multipartParts } from '../admin/capture-record.ts';
import type { CapturedBody } from '../state/types.ts';
import { fromBase64 } from '../util/base64.ts';
import { decodeWbxml } from '../wbxml/decoder.ts';
import { encodeWbxml } from '../wbxml/encoder.ts';
import type { WbxmlElement } from '../wbxml/tree.ts';
import { fromXml } from '../wbxml/xml.ts';
import { ReplayMap } from './mapping.ts';
import { rewriteQuery } from './query.ts';
import type { ReplayExchange, ReplaySession } from './session.ts';
import { compareWithCaptured, compareWithExpected, isSuccess, statusesOf, type CapturedAnswer } from './verdict.ts';

export const ACTIVESYNC_PATH = '/Microsoft-Server-ActiveSync';
export const AUTODISCOVER_PATH = '/autodiscover/autodiscover.xml';
const WBXML_TYPES = new Set(['application/vnd.ms-sync.wbxml', 'application/vnd.ms-sync']);
const MULTIPART_TYPE = 'application/vnd.ms-sync.multipart';
/** Headers a replay never copies: the connection's own, and the ones it sets itself. */
const NOT_COPIED = new Set([
  'host',
  'content-length',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'accept-encoding',
  'te',
  'upgrade',
  'expect',
  'authorization',
  'cookie',
  'x-ms-policykey',
]);
/** Long enough for a hanging Sync or Ping at the protocol's longest interval (MS-ASCMD §2.2.3.88: 3540 s). */
const DEFAULT_TIMEOUT_MS = 3_600_000;

export interface ReplayOptions {
  /** The server's base URL, e.g. https://eas.example.com (the paths are the protocol's). */
  url: string;
  user: string;
  password: string;
  /** The DeviceId the replay uses; by default a new one, so that no earlier device state is reused. */
  deviceId?: string;
  /** Caps every HeartbeatInterval (Ping, Sync) at this many seconds. */
  maxHeartbeat?: number;
  /** Per request, in ms. */
  timeoutMs?: number;
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
  /** Called after each exchange (tests check every answer with another codec). */
  onExchange?: (exchange: ReplayedExchange) => void | Promise<void>;
}

export interface ReplayedExchange {
  /** 0-based position in the session. */
  index: number;
  command: string;
  method: string;
  url: string;
  requestBody: Uint8Array | undefined;
  status: number;
  headers: Headers;
  bytes: Uint8Array;
  /** The WBXML parts of the answer (one, or the first of a multipart answer), decoded. */
  tree: WbxmlElement | undefined;
  /** The raw WBXML of `tree`. */
  wbxml: Uint8Array | undefined;
  differences: string[];
}

export interface ReplayReport {
  deviceId: string;
  replayed: number;
  /** The exchanges whose answer differs, with how. */
  differing: { index: number; command: string; differences: string[] }[];
}

export async function replaySession(session: ReplaySession, options: ReplayOptions): Promise<ReplayReport> {
  const map = new ReplayMap(session.folders);
  const deviceId = options.deviceId ?? `replay${crypto.randomUUID().replace(/-/g, '').slice(0, 16)}`;
  const base = options.url.replace(/\/+$/, '');
  const doFetch = options.fetch ?? ((url: string, init: RequestInit) => fetch(url, init));
  const report: ReplayReport = { deviceId, replayed: 0, differing: [] };

  for (const [index, exchange] of session.requests.entries()) {
    const captured = exchange.response ? capturedAnswer(exchange) : undefined;
    // A request whose answer was (or is documented as) a refusal keeps its unknown keys and ids: a stale SyncKey
    // must stay stale.
    map.guessUnknown = captured
      ? captured.statuses === undefined || captured.statuses.every(isSuccess)
      : exchange.expect?.status === undefined;
    const request = buildRequest(session, exchange, map, options, deviceId);
    const differences: string[] = [];
    let status = 0;
    let headers = new Headers();
    let bytes = new Uint8Array(0);
    try {
      const res = await doFetch(`${base}${request.target}`, {
        method: exchange.method,
        headers: request.headers,
        ...(request.body ? { body: request.body } : {}),
        signal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
      });
      status = res.status;
      headers = res.headers;
      bytes = new Uint8Array(await res.arrayBuffer());
    } catch (err) {
      differences.push(`no answer: ${err instanceof Error ? err.message : String(err)}`);
    }
    const answer = readAnswer(headers.get('content-type') ?? '', bytes);
    if (answer.error) differences.push(answer.error);
    if (status !== 0) {
      const live = { httpStatus: status, statuses: statusesOf(answer.tree), headers };
      differences.push(
        ...(captured ? compareWithCaptured(captured, live) : compareWithExpected(exchange.expect, live)),
      );
    }
    map.learn(exchange.command, request.tree, capturedTree(exchange.response?.body), answer.tree);
    report.replayed++;
    if (differences.length > 0) report.differing.push({ index, command: labelOf(exchange), differences });
    await options.onExchange?.({
      index,
      command: labelOf(exchange),
      method: exchange.method,
      url: `${base}${request.target}`,
      requestBody: request.body,
      status,
      headers,
      bytes,
      tree: answer.tree,
      wbxml: answer.wbxml,
      differences,
    });
  }
  return report;
}

/** One line per differing answer: `#4 Sync: …; …`. */
export function formatDifferences(report: ReplayReport): string {
  return report.differing.map((d) => `#${d.index + 1} ${d.command}: ${d.differences.join('; ')}\n`).join('');
}

function labelOf(exchange: ReplayExchange): string {
  return exchange.command || exchange.method;
}

interface BuiltRequest {
  target: string;
  headers: Headers;
  body: Uint8Array<ArrayBuffer> | undefined;
  /** The captured request body as a tree (before mapping), for learning. */
  tree: WbxmlElement | undefined;
}

function buildRequest(
  session: ReplaySession,
  exchange: ReplayExchange,
  map: ReplayMap,
  options: ReplayOptions,
  deviceId: string,
): BuiltRequest {
  const autodiscover = exchange.command.toLowerCase() === 'autodiscover';
  const path = exchange.path ?? (autodiscover ? AUTODISCOVER_PATH : ACTIVESYNC_PATH);
  const headers = new Headers();
  for (const [name, value] of Object.entries(exchange.request.headers)) {
    if (!NOT_COPIED.has(name.toLowerCase())) headers.set(name, value);
  }
  if (!exchange.anonymous)
    headers.set('Authorization', `Basic ${btoa(String.fromCharCode(...utf8(`${options.user}:${options.password}`)))}`);

  let target = path;
  if (!autodiscover && exchange.query !== '') {
    const query = rewriteQuery(exchange.query, {
      user: options.user,
      deviceId,
      folder: (id) => map.folder(id),
      item: (id) => map.item(id),
      attachment: (name) => map.fileReference(name),
      policyKey: (key) => map.policyKey(key),
    });
    target = `${path}?${query.query}`;
  }
  const capturedPolicyKey = headerOf(exchange.request.headers, 'x-ms-policykey');
  if (capturedPolicyKey !== undefined) headers.set('X-MS-PolicyKey', map.policyKey(capturedPolicyKey.trim()));
  if (!headers.has('MS-ASProtocolVersion') && session.protocolVersion && !autodiscover && exchange.method === 'POST')
    headers.set('MS-ASProtocolVersion', session.protocolVersion);

  const captured = exchange.request.body;
  const sending = SENDING_COMMANDS.has(exchange.command.toLowerCase());
  let tree: WbxmlElement | undefined;
  let body: Uint8Array<ArrayBuffer> | undefined;
  if (captured?.xml !== undefined) {
    tree = fromXml(captured.xml);
    const mapped = map.rewriteRequest(tree, {
      ...(options.maxHeartbeat ? { maxHeartbeat: options.maxHeartbeat } : {}),
    });
    body = encodeWbxml(sending ? withSender(mapped, options.user) : mapped);
    if (!headers.has('Content-Type')) headers.set('Content-Type', 'application/vnd.ms-sync.wbxml');
  } else if (captured?.text !== undefined) {
    body = utf8(
      autodiscover
        ? withEmailAddress(captured.text, options.user)
        : sending
          ? asSender(captured.text, options.user)
          : captured.text,
    );
  } else if (captured?.base64 !== undefined) {
    const bytes = fromBase64(captured.base64);
    if (bytes) body = new Uint8Array(bytes);
  }
  return { target, headers, body, tree };
}

/** Autodiscover asks about an address (MS-ASCMD §2.2.3.59 EMailAddress): the replay's user, when it is one. */
function withEmailAddress(xml: string, user: string): string {
  return user.includes('@') ? xml.replace(/(<(?:\w+:)?EMailAddress>)[^<]*(<\/)/g, `$1${user}$2`) : xml;
}

function headerOf(headers: Record<string, string>, name: string): string | undefined {
  const found = Object.entries(headers).find(([k]) => k.toLowerCase() === name);
  return found?.[1];
}

function utf8(text: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(text);
}

interface Answer {
  tree?: WbxmlElement;
  wbxml?: Uint8Array;
  error?: string;
}

/** The answer's WBXML (alone, or the first part of a multipart answer, MS-ASCMD §2.2.2.9.1), decoded. */
function readAnswer(contentType: string, bytes: Uint8Array): Answer {
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  if (bytes.length === 0) return {};
  let wbxml: Uint8Array | undefined;
  if (WBXML_TYPES.has(type)) wbxml = bytes;
  else if (type === MULTIPART_TYPE) {
    const parts = multipartParts(bytes);
    if (!parts) return { error: 'the multipart answer does not parse' };
    wbxml = parts[0];
  }
  if (!wbxml || wbxml.length === 0) return {};
  try {
    return { tree: decodeWbxml(wbxml, { maxBytes: Number.MAX_SAFE_INTEGER }), wbxml };
  } catch (err) {
    return { wbxml, error: `the answer does not decode as WBXML: ${err instanceof Error ? err.message : String(err)}` };
  }
}

function capturedTree(body: CapturedBody | undefined): WbxmlElement | undefined {
  const xml = body?.xml ?? body?.parts?.[0]?.xml;
  if (xml === undefined) return undefined;
  try {
    return fromXml(xml);
  } catch {
    return undefined;
  }
}

function capturedAnswer(exchange: ReplayExchange): CapturedAnswer {
  const response = exchange.response!;
  const tree = capturedTree(response.body);
  const noBody = response.body === undefined || response.body.bytes === 0;
  return {
    httpStatus: response.status,
    // An answer without a body has no statuses; one whose XML was not kept is judged by its log line's status.
    statuses: tree ? statusesOf(tree) : noBody ? [] : undefined,
    ...(exchange.commandStatus !== undefined ? { commandStatus: exchange.commandStatus } : {}),
  };
}
