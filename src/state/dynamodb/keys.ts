/**
 * The key schema of the DynamoDB state table. Every id is escaped (`keyPart`: '%', '#', control characters and
 * surrogates become `%XXXX`), so '#' separates fields unambiguously and every key of a tenant starts with `<tenant>#`
 * (an IAM `dynamodb:LeadingKeys` condition can fence a tenant in).
 *
 *   pk                                   sk                          item
 *   <tenant>#USER#<user>                 DEVICE#<deviceId>           device record: the DeviceRecord fields as attributes
 *   <tenant>#USER#<user>                 FEED#<folder>               feed entry: folder, marker, changedAt, expiresAt    ttl
 *   <tenant>#USER#<user>                 SETTINGS                    the user's settings (Settings Oof): data
 *   <tenant>#USER#<user>                 FLAG#<folder>#<uid>         a message's flag details: data
 *   <tenant>#USER#<user>                 CONVERSATION#<id>           conversation rule (MoveAlways): data, until         ttl
 *   <tenant>#DEVICE#<user>#<deviceId>    HIERARCHY                   hierarchy head (chunks.ts)
 *   <tenant>#DEVICE#<user>#<deviceId>    COLLECTION#<collectionId>   collection head, plus collectionId
 *   <tenant>#DEVICE#<user>#<deviceId>    CHUNK#<blobId>#<n>          n-th piece of a large state or replay: data     ttl (replay)
 *   <tenant>#DEVICE#<user>#<deviceId>    CACHE#PING, CACHE#SYNC      last Ping / full Sync request: data, expiresAt      ttl
 *   <tenant>#DEVICE#<user>#<deviceId>    MARKER#<name>               one-time action marker: value, expiresAt            ttl
 *   <tenant>#DEVICE#<user>#<deviceId>    CAPTURE#<at>#<id>           captured exchange: data, expiresAt                  ttl
 *   <tenant>#LEASES#<shard>              <user>                      watch lease: tenant, user, until, credential?       ttl
 *   <tenant>#DEVICES                     <user>#<deviceId>           tenant-wide device index: user, deviceId
 *   <tenant>#TENANT                      ACCESS_RULES                the tenant's device access rules: data
 *   <tenant>#STATS                       <minute>#<command>          per-command counters of one minute: minute,       ttl
 *                                                                    command, requests, errors, totalMs, maxMs
 *   <tenant>#AUTHFAIL                    <key>                       failed-login counter: count, resetAt                ttl
 *   <tenant>#KNOWNLOGIN                  <key>                       a user and address that signed in: until            ttl
 *   <tenant>#CAPTURES                    <user>#<deviceId or empty>  capture rule: data, until                           ttl
 *
 * Also the item shapes and attribute readers the store's modules share.
 */
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { leaseShard } from '../shard.ts';
import type { DeviceScope, UserScope } from '../types.ts';

/** An item as the low-level client reads and writes it. */
export type Item = Record<string, AttributeValue>;

/** Primary key of an item. */
export interface Key {
  pk: string;
  sk: string;
}

/** The name of the attribute DynamoDB's TTL is enabled on. */
export const TTL_ATTRIBUTE = 'ttl';

/**
 * An id as a key field: '%' and '#' (our escape and separator), control characters and surrogates (which UTF-8 could
 * not carry alone) become `%` and four hex digits. Injective, so different ids never share a key.
 */
export function keyPart(id: string): string {
  return id.replace(
    /[%#\u0000-\u001f\u007f\ud800-\udfff]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`,
  );
}

export function userPartition(u: UserScope): string {
  return `${keyPart(u.tenant)}#USER#${keyPart(u.user)}`;
}

export function devicePartition(d: DeviceScope): string {
  return `${keyPart(d.tenant)}#DEVICE#${keyPart(d.user)}#${keyPart(d.deviceId)}`;
}

export function leasePartition(tenant: string, shard: number): string {
  return `${keyPart(tenant)}#LEASES#${shard}`;
}

export function deviceKey(d: DeviceScope): Key {
  return { pk: userPartition(d), sk: `DEVICE#${keyPart(d.deviceId)}` };
}

export function collectionKey(d: DeviceScope, collectionId: string): Key {
  return { pk: devicePartition(d), sk: `COLLECTION#${keyPart(collectionId)}` };
}

export function markerKey(d: DeviceScope, name: string): Key {
  return { pk: devicePartition(d), sk: `MARKER#${keyPart(name)}` };
}

export function deviceIndexKey(d: DeviceScope): Key {
  return { pk: `${keyPart(d.tenant)}#DEVICES`, sk: `${keyPart(d.user)}#${keyPart(d.deviceId)}` };
}

/** Minutes zero-padded, so that sort keys order by time. */
export function statsKey(tenant: string, minute: number, command: string): Key {
  return { pk: `${keyPart(tenant)}#STATS`, sk: `${String(minute).padStart(10, '0')}#${keyPart(command)}` };
}

export function leaseKey(tenant: string, user: string): Key {
  return { pk: leasePartition(tenant, leaseShard(user)), sk: keyPart(user) };
}

export function authFailuresKey(tenant: string, key: string): Key {
  return { pk: `${keyPart(tenant)}#AUTHFAIL`, sk: keyPart(key) };
}

export function knownLoginKey(tenant: string, key: string): Key {
  return { pk: `${keyPart(tenant)}#KNOWNLOGIN`, sk: keyPart(key) };
}

/** A folder's flag details share the prefix `FLAG#<folder>#`; UIDs are not padded (the order does not matter). */
export function mailFlagPrefix(folder: string): string {
  return `FLAG#${keyPart(folder)}#`;
}

export function mailFlagKey(u: UserScope, folder: string, uid: string): Key {
  return { pk: userPartition(u), sk: `${mailFlagPrefix(folder)}${keyPart(uid)}` };
}

export const CONVERSATION_RULE_PREFIX = 'CONVERSATION#';

export function conversationRuleKey(u: UserScope, conversationId: string): Key {
  return { pk: userPartition(u), sk: `${CONVERSATION_RULE_PREFIX}${keyPart(conversationId)}` };
}

/** Epoch ms zero-padded, so that a device's records sort by time. */
export function captureRecordKey(d: DeviceScope, at: number, id: string): Key {
  return { pk: devicePartition(d), sk: `${CAPTURE_RECORD_PREFIX}${String(at).padStart(15, '0')}#${keyPart(id)}` };
}

export const CAPTURE_RECORD_PREFIX = 'CAPTURE#';

/** A rule for all of a user's devices has an empty device id, which no device has. */
export function captureRuleKey(tenant: string, user: string, deviceId: string | undefined): Key {
  return { pk: capturePartition(tenant), sk: `${keyPart(user)}#${keyPart(deviceId ?? '')}` };
}

export function capturePartition(tenant: string): string {
  return `${keyPart(tenant)}#CAPTURES`;
}

export function toKeyItem(key: Key): Item {
  return { pk: { S: key.pk }, sk: { S: key.sk } };
}

export function keyOf(item: Item): Key {
  return { pk: readString(item, 'pk'), sk: readString(item, 'sk') };
}

// Reading items.

export function readString(item: Item, name: string): string {
  const value = item[name]?.S;
  if (value === undefined)
    throw new Error(`DynamoDB item ${item.pk?.S}/${item.sk?.S}: string attribute ${name} missing`);
  return value;
}

export function readNumber(item: Item, name: string): number {
  const value = readOptionalNumber(item, name);
  if (value === undefined)
    throw new Error(`DynamoDB item ${item.pk?.S}/${item.sk?.S}: number attribute ${name} missing`);
  return value;
}

export function readOptionalNumber(item: Item, name: string): number | undefined {
  const value = item[name]?.N;
  return value === undefined ? undefined : Number(value);
}

/** A plain Uint8Array over the same memory (the SDK may hand out Buffers, which compare unlike Uint8Arrays). */
export function plainBytes(bytes: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(bytes) === Uint8Array.prototype
    ? bytes
    : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Whether something that expires at `expiresAt` (epoch ms) is still there at `now`. */
export function isLive(expiresAt: number, now = Date.now()): boolean {
  return expiresAt > now;
}

/** DynamoDB TTL wants epoch seconds; rounding up keeps the item at least until its exact expiry. */
export function ttlOf(expiresAtMs: number): number {
  return Math.ceil(expiresAtMs / 1000);
}
