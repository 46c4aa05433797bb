/**
 * The request line of a replayed request: the captured query in the form the device used (MS-ASHTTP §2.2.1.1.1 plain,
 * §2.2.1.1.1.1 base64-packed), with User and DeviceId those of the replay and the ids it carries (collection, item,
 * attachment, policy key) mapped to the live server's.
 */
import { versionFromByte } from '../protocol/versions.ts';
import { fromBase64, toBase64 } from '../util/base64.ts';

/** What the replay puts into a query. */
export interface QueryRewrite {
  user: string;
  deviceId: string;
  /** A captured collection id → the live one. */
  folder(id: string): string;
  /** A captured item id (ItemId, LongId) → the live one. */
  item(id: string): string;
  /** A captured attachment name (GetAttachment) → the live one. */
  attachment(name: string): string;
  /** A captured policy key → the live one ('0' stays '0'). */
  policyKey(key: string): string;
}

export interface RewrittenQuery {
  query: string;
  form: 'plain' | 'base64';
  /** The protocol version the base64 form carries (the plain form has it in a header). */
  version?: string;
}

const BASE64_QUERY = /^[A-Za-z0-9+/]+={0,2}$/;

export function rewriteQuery(query: string, map: QueryRewrite): RewrittenQuery {
  let raw = query;
  try {
    raw = decodeURIComponent(query);
  } catch {
    // kept as it is: the server judges it
  }
  if (raw !== '' && BASE64_QUERY.test(raw)) {
    const packed = rewriteBase64Query(raw, map);
    if (packed) return packed;
  }
  return { query: rewritePlainQuery(query, map), form: 'plain' };
}

function rewritePlainQuery(query: string, map: QueryRewrite): string {
  const params = new URLSearchParams(query);
  const out = new URLSearchParams();
  for (const [name, value] of params) {
    switch (name.toLowerCase()) {
      case 'user':
        out.append(name, map.user);
        break;
      case 'deviceid':
        out.append(name, map.deviceId);
        break;
      case 'collectionid':
        out.append(name, map.folder(value));
        break;
      case 'itemid':
      case 'longid':
        out.append(name, map.item(value));
        break;
      case 'attachmentname':
        out.append(name, map.attachment(value));
        break;
      default:
        out.append(name, value);
    }
  }
  return out.toString();
}

/** MS-ASHTTP §2.2.1.1.1.1.1 parameter tags whose values the replay maps. */
const TAG_ATTACHMENT_NAME = 0;
const TAG_COLLECTION_ID = 1;
const TAG_ITEM_ID = 3;
const TAG_LONG_ID = 4;
const TAG_USER = 8;

/** Undefined when the bytes do not hold a whole packed query (then it is replayed as written). */
function rewriteBase64Query(text: string, map: QueryRewrite): RewrittenQuery | undefined {
  const bytes = fromBase64(text);
  if (!bytes || bytes.length < 6) return undefined;
  let pos = 0;
  const take = (n: number): Uint8Array | undefined => {
    if (pos + n > bytes.length) return undefined;
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  const head = take(4); // version, command code, locale (2)
  const deviceIdLength = take(1)?.[0];
  if (!head || deviceIdLength === undefined || !take(deviceIdLength)) return undefined;
  const policyKeyLength = take(1)?.[0];
  if (policyKeyLength === undefined) return undefined;
  const policyKey = take(policyKeyLength);
  const deviceTypeLength = take(1)?.[0];
  if (!policyKey || deviceTypeLength === undefined) return undefined;
  const deviceType = take(deviceTypeLength);
  if (!deviceType) return undefined;
  const params: [number, Uint8Array][] = [];
  while (pos < bytes.length) {
    const tag = take(1)?.[0];
    const length = take(1)?.[0];
    const value = length === undefined ? undefined : take(length);
    if (tag === undefined || !value) return undefined;
    params.push([tag, value]);
  }

  const utf8 = new TextEncoder();
  const text8 = (b: Uint8Array): string => new TextDecoder().decode(b);
  const out: number[] = [...head];
  const deviceId = utf8.encode(map.deviceId);
  out.push(deviceId.length, ...deviceId);
  if (policyKey.length === 4) {
    const captured = String(new DataView(policyKey.buffer, policyKey.byteOffset, 4).getUint32(0, true));
    const live = Number(map.policyKey(captured)) >>> 0;
    out.push(4, live & 0xff, (live >>> 8) & 0xff, (live >>> 16) & 0xff, (live >>> 24) & 0xff);
  } else {
    out.push(policyKey.length, ...policyKey);
  }
  out.push(deviceType.length, ...deviceType);
  for (const [tag, value] of params) {
    let mapped: Uint8Array = value;
    if (tag === TAG_USER) mapped = utf8.encode(map.user);
    else if (tag === TAG_COLLECTION_ID) mapped = utf8.encode(map.folder(text8(value)));
    else if (tag === TAG_ITEM_ID || tag === TAG_LONG_ID) mapped = utf8.encode(map.item(text8(value)));
    else if (tag === TAG_ATTACHMENT_NAME) mapped = utf8.encode(map.attachment(text8(value)));
    if (mapped.length > 255) return undefined;
    out.push(tag, mapped.length, ...mapped);
  }
  return { query: toBase64(new Uint8Array(out)), form: 'base64', version: versionFromByte(head[0]!) };
}
