/**
 * What a protocol capture keeps of one request and its answer (CapturedExchange): the request line, the headers
 * without anything that authenticates, and the bodies as readable XML with passwords redacted and bodies,
 * attachments and pictures cut to the rule's size. Pure: the hook (capture.ts) decides when, the store keeps it.
 */
import type { LogEntry } from '../log.ts';
import { CAPTURE_RECORD_MAX_CHARS, type CapturedBody, type CapturedExchange } from '../state/types.ts';
import { toBase64 } from '../util/base64.ts';
import { decodeWbxml } from '../wbxml/decoder.ts';
import { toXml } from '../wbxml/xml.ts';

/** One finished request, as the pipeline hands it to the hook (app/activesync.ts Exchange). */
export interface ExchangeInput {
  started: number;
  entry: LogEntry;
  request: Request;
  /** The request body as the pipeline read it; undefined when it was not read (the request failed before). */
  body: Uint8Array | undefined;
  response: Response;
}

/**
 * Headers that authenticate or track, whatever their spelling: never kept. Authorization and cookies by name, the
 * rest by what their names say (a proxy's `X-Auth-Token`, `X-Api-Key`, …).
 */
const SECRET_HEADER = /authorization|cookie|auth|token|secret|passw|credential|session|api-?key|signature/i;

/**
 * Elements whose values are message content: bodies (AirSyncBase Data, 2.5's Body and MIMEData), MIME to send
 * (ComposeMail Mime), attachments (ItemOperations Data, AirSyncBase Content), pictures and compressed RTF.
 */
const CONTENT_TAGS: ReadonlySet<string> = new Set([
  'Data',
  'Body',
  'MIMEData',
  'Mime',
  'Content',
  'Picture',
  'CompressedRTF',
]);

const WBXML_TYPES = new Set(['application/vnd.ms-sync.wbxml', 'application/vnd.ms-sync']);
const MULTIPART_TYPE = 'application/vnd.ms-sync.multipart';
/** What the content of a record is cut to when cutting at the rule's size still leaves it over the record limit. */
const FALLBACK_CUT = 256;

export function keptHeaders(headers: Headers): Record<string, string> {
  const kept: Record<string, string> = {};
  headers.forEach((value, name) => {
    if (!SECRET_HEADER.test(name)) kept[name] = value;
  });
  return kept;
}

/** The record of one exchange; its XML and text stay under CAPTURE_RECORD_MAX_CHARS. */
export async function captureExchangeRecord(input: ExchangeInput, maxBodyBytes: number): Promise<CapturedExchange> {
  const requestType = input.request.headers.get('content-type') ?? '';
  const responseType = input.response.headers.get('content-type') ?? '';
  const responseBytes = new Uint8Array(await input.response.clone().arrayBuffer());
  const bodies = (max: number): [CapturedBody | undefined, CapturedBody | undefined] => [
    input.body && input.body.length > 0 ? captureBody(input.body, requestType, max) : undefined,
    responseBytes.length > 0 ? captureBody(responseBytes, responseType, max) : undefined,
  ];
  let [request, response] = bodies(maxBodyBytes);
  if (charsOf(request) + charsOf(response) > CAPTURE_RECORD_MAX_CHARS) {
    [request, response] = bodies(Math.min(maxBodyBytes, FALLBACK_CUT));
    // Still over (a huge answer of many items): the larger side keeps only its size.
    if (charsOf(request) + charsOf(response) > CAPTURE_RECORD_MAX_CHARS) {
      if (charsOf(response) >= charsOf(request)) response = response && sizeOnly(response);
      else request = request && sizeOnly(request);
    }
  }
  const url = new URL(input.request.url);
  const { entry } = input;
  const record: CapturedExchange = {
    time: input.started,
    ms: typeof entry.ms === 'number' ? entry.ms : Date.now() - input.started,
    method: input.request.method,
    command: typeof entry.cmd === 'string' ? entry.cmd : '',
    query: url.search.replace(/^\?/, ''),
    request: { headers: keptHeaders(input.request.headers), ...(request ? { body: request } : {}) },
    response: {
      status: input.response.status,
      headers: keptHeaders(input.response.headers),
      ...(response ? { body: response } : {}),
    },
  };
  if (typeof entry.status === 'number') record.commandStatus = entry.status;
  if (typeof entry.error === 'string') record.error = entry.error;
  return record;
}

/** A body as the capture keeps it: WBXML as XML, multipart answers part by part, anything else as text or base64. */
export function captureBody(bytes: Uint8Array, contentType: string, max: number): CapturedBody {
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  if (WBXML_TYPES.has(type)) {
    const xml = wbxmlAsXml(bytes, max);
    if (xml !== undefined)
      return { contentType, bytes: bytes.length, xml, ...(xml.includes('<!--cut: ') ? { cut: true } : {}) };
  } else if (type === MULTIPART_TYPE) {
    const parts = multipartParts(bytes);
    if (parts) {
      const captured = parts.map((part, i) =>
        i === 0
          ? captureBody(part, 'application/vnd.ms-sync.wbxml', max)
          : captureBody(part, 'application/octet-stream', max),
      );
      return {
        contentType,
        bytes: bytes.length,
        parts: captured,
        ...(captured.some((p) => p.cut) ? { cut: true } : {}),
      };
    }
  }
  return rawBody(bytes, contentType, type, max);
}

function wbxmlAsXml(bytes: Uint8Array, max: number): string | undefined {
  try {
    return toXml(decodeWbxml(bytes), { redact: true, cut: { tags: CONTENT_TAGS, maxLength: max } });
  } catch {
    // Not WBXML after all (a broken request is worth seeing too): kept as bytes.
    return undefined;
  }
}

/** Text (a MIME message of SendMail ≤ 12.1, a text answer) as text, anything else as base64; both cut to `max`. */
function rawBody(bytes: Uint8Array, contentType: string, type: string, max: number): CapturedBody {
  const body: CapturedBody = { contentType, bytes: bytes.length };
  let kept: number;
  if (type.startsWith('text/') || type === 'message/rfc822') {
    kept = max;
    const text = new TextDecoder().decode(bytes.subarray(0, kept));
    // A character cut in two decodes as U+FFFD at the end.
    body.text = bytes.length > kept ? text.replace(/\uFFFD$/, '') : text;
  } else {
    // Whole base64 groups: 3 bytes per 4 characters.
    kept = Math.floor(max / 4) * 3;
    body.base64 = toBase64(bytes.subarray(0, kept));
  }
  if (bytes.length > kept) body.cut = true;
  return body;
}

/** MS-ASCMD §2.2.2.9.1: a part count, then an offset and a length per part, all 32-bit little-endian. */
export function multipartParts(bytes: Uint8Array): Uint8Array[] | undefined {
  if (bytes.length < 4) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getInt32(0, true);
  if (count < 1 || 4 + count * 8 > bytes.length) return undefined;
  const parts: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const offset = view.getInt32(4 + i * 8, true);
    const length = view.getInt32(8 + i * 8, true);
    if (offset < 0 || length < 0 || offset + length > bytes.length) return undefined;
    parts.push(bytes.subarray(offset, offset + length));
  }
  return parts;
}

function sizeOnly(body: CapturedBody): CapturedBody {
  return { contentType: body.contentType, bytes: body.bytes, cut: true };
}

function charsOf(body: CapturedBody | undefined): number {
  if (!body) return 0;
  return (
    (body.xml?.length ?? 0) +
    (body.text?.length ?? 0) +
    (body.base64?.length ?? 0) +
    (body.parts ?? []).reduce((sum, p) => sum + charsOf(p), 0)
  );
}
