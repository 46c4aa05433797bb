/**
 * The ActiveSync request line and headers (MS-ASHTTP §2.2.1.1): the plain query
 * (`?Cmd=Sync&User=u&DeviceId=d&DeviceType=t`) or the base64-packed one (`?jAAJBAp2MTQw…`), the protocol version and
 * the policy key, folded into one ActiveSyncRequest.
 */
import { Buffer } from 'node:buffer';
import { commandByCode } from './commands.ts';
import { HttpError } from './errors.ts';
import { SUPPORTED_VERSIONS, isSupportedVersion, versionFromByte, type ProtocolVersion } from './versions.ts';

export interface ActiveSyncRequest {
  /** The command as the client named it (`Cmd=`), or the name of its base64 code. */
  command: string;
  /** `User` from the query; only for logs, authentication uses the Authorization header. */
  user: string | undefined;
  deviceId: string;
  deviceType: string;
  version: ProtocolVersion;
  /** X-MS-PolicyKey (decimal uint32), when the client sent one. */
  policyKey: string | undefined;
  /** Windows LCID from the base64 query (0x0409 = en-US). */
  locale: number | undefined;
  queryForm: 'plain' | 'base64';
  userAgent: string | undefined;
  params: CommandParameters;
}

/** Command parameters carried in the query rather than the body (mostly protocol ≤ 12.1). */
export interface CommandParameters {
  attachmentName?: string;
  collectionId?: string;
  itemId?: string;
  longId?: string;
  occurrence?: string;
  saveInSent?: boolean;
  acceptMultiPart?: boolean;
}

const MAX_ID_LENGTH = 128;
const BASE64_QUERY = /^[A-Za-z0-9+/]+={0,2}$/;

/** Reads the request line and headers; throws HttpError(400) for anything a client cannot mean. */
export function parseActiveSyncRequest(url: URL, headers: Headers): ActiveSyncRequest {
  const raw = safeDecode(url.search.slice(1));
  const base = BASE64_QUERY.test(raw) ? parseBase64Query(raw) : parsePlainQuery(url.searchParams, headers);
  if (!base.deviceId || base.deviceId.length > MAX_ID_LENGTH) throw badRequest('DeviceId is missing or too long');
  if (!base.deviceType || base.deviceType.length > MAX_ID_LENGTH) throw badRequest('DeviceType is missing or too long');
  if (headers.get('ms-asacceptmultipart')?.toUpperCase() === 'T') base.params.acceptMultiPart = true;
  return { ...base, userAgent: headers.get('user-agent') ?? undefined };
}

function parsePlainQuery(query: URLSearchParams, headers: Headers): Omit<ActiveSyncRequest, 'userAgent'> {
  const q = new Map<string, string>();
  for (const [name, value] of query) q.set(name.toLowerCase(), value);
  const command = q.get('cmd');
  if (!command) throw badRequest('the query has no Cmd');

  const params: CommandParameters = {};
  const take = (name: string, key: keyof CommandParameters): void => {
    const v = q.get(name);
    if (v !== undefined) (params as Record<string, string>)[key] = v;
  };
  take('attachmentname', 'attachmentName');
  take('collectionid', 'collectionId');
  take('itemid', 'itemId');
  take('longid', 'longId');
  take('occurrence', 'occurrence');
  if (q.has('saveinsent')) params.saveInSent = q.get('saveinsent')!.toUpperCase() === 'T';

  const policyKey = headers.get('x-ms-policykey')?.trim() || undefined;
  return {
    command,
    user: q.get('user') || undefined,
    deviceId: q.get('deviceid') ?? '',
    deviceType: q.get('devicetype') ?? '',
    version: negotiate(headers.get('ms-asprotocolversion')?.trim()),
    policyKey,
    locale: undefined,
    queryForm: 'plain',
    params,
  };
}

/**
 * MS-ASHTTP §2.2.1.1.1.1: version, command code, locale, device id, policy key, device type, then tagged parameters.
 */
function parseBase64Query(text: string): Omit<ActiveSyncRequest, 'userAgent'> {
  const bytes = new Uint8Array(Buffer.from(text, 'base64'));
  let pos = 0;
  const need = (n: number): void => {
    if (pos + n > bytes.length) throw badRequest('the base64 query is truncated');
  };
  const u8 = (): number => {
    need(1);
    return bytes[pos++]!;
  };
  const take = (n: number): Uint8Array => {
    need(n);
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };

  const version = negotiate(versionFromByte(u8()));
  const code = u8();
  const command = commandByCode(code);
  if (!command) throw badRequest(`unknown command code ${code} in the base64 query`);
  const localeBytes = take(2);
  const locale = localeBytes[0]! | (localeBytes[1]! << 8);
  const deviceId = deviceIdText(take(u8()));
  const policyKeyLength = u8();
  if (policyKeyLength !== 0 && policyKeyLength !== 4)
    throw badRequest('the policy key in the base64 query is not 4 bytes');
  const policyKey = policyKeyLength === 4 ? String(uint32le(take(4))) : undefined;
  const deviceType = ascii(take(u8()));

  const params: CommandParameters = {};
  let user: string | undefined;
  while (pos < bytes.length) {
    const tag = u8();
    const value = take(u8());
    const str = (): string => new TextDecoder().decode(value);
    switch (tag) {
      case 0:
        params.attachmentName = str();
        break;
      case 1:
        params.collectionId = str();
        break;
      case 3:
        params.itemId = str();
        break;
      case 4:
        params.longId = str();
        break;
      case 6:
        params.occurrence = str();
        break;
      case 7:
        params.saveInSent = Boolean(value[0]! & 0x01);
        params.acceptMultiPart = Boolean(value[0]! & 0x02);
        break;
      case 8:
        user = str();
        break;
      default:
        break; // 2 CollectionName and 5 ParentId belong to the legacy commands; others are unknown
    }
  }
  return { command, user, deviceId, deviceType, version, policyKey, locale, queryForm: 'base64', params };
}

/**
 * Device ids are usually printable; binary ones (a GUID from Windows clients) are kept as upper-case hex, the form the
 * same clients send in a plain query (`DeviceId=B7D9806C…`, MS-ASHTTP §2.2.1.1.1.2.3): one device is one device in
 * either query form (§2.2.1.1.1.1), with one state.
 */
function deviceIdText(bytes: Uint8Array): string {
  const printable = bytes.every((b) => b > 0x20 && b < 0x7f);
  return printable ? ascii(bytes) : Buffer.from(bytes).toString('hex').toUpperCase();
}

function uint32le(b: Uint8Array): number {
  return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
}

function ascii(bytes: Uint8Array): string {
  return String.fromCharCode(...bytes);
}

function negotiate(version: string | undefined): ProtocolVersion {
  if (version && isSupportedVersion(version)) return version;
  throw new HttpError(
    400,
    version ? `protocol version ${version} is not supported` : 'MS-ASProtocolVersion is missing',
    {
      'MS-ASProtocolVersions': SUPPORTED_VERSIONS.join(','),
    },
  );
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function badRequest(message: string): HttpError {
  return new HttpError(400, message);
}
