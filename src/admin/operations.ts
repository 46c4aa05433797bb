/**
 * What an admin can do to a tenant's devices and access rules, for the admin API (api.ts) and the web console
 * (console/): both call these, so that both check input the same way and act the same way. Nothing here speaks HTTP;
 * bad input is an AdminInputError (the API answers 400, the console shows the message), an unknown device or folder
 * an AdminNotFound (404), a wipe that cannot be done a WipeError (devices/wipe.ts, 409).
 */
import { deviceScope } from '../devices/seen.ts';
import { firstSyncKey } from '../protocol/synckey.ts';
import { releaseDevice } from '../push/wait.ts';
import { UidSet } from '../state/uidset.ts';
import type { AccessRules, DeviceRecord, DeviceScope, StateStore, WipeKind } from '../state/types.ts';
import { loadAccessRules, parseAccessRule, parseAccessRules, saveAccessRules } from '../devices/access-rules.ts';
import { cancelWipe, requestWipe } from '../devices/wipe.ts';

const DAY_MS = 86_400_000;
/** Devices read at once when listing a whole tenant (one state read each). */
const LIST_CONCURRENCY = 8;

/** Input an admin sent that cannot be acted on. */
export class AdminInputError extends Error {
  override readonly name = 'AdminInputError';
}

/** The device, folder or rule an admin named does not exist. */
export class AdminNotFound extends Error {
  override readonly name = 'AdminNotFound';
}

/** A device as the API lists it. */
export interface DeviceSummary {
  user: string;
  deviceId: string;
  deviceType: string;
  model?: string;
  os?: string;
  userAgent?: string;
  protocolVersion?: string;
  provisioning: DeviceRecord['provisioning'];
  wipe: DeviceRecord['wipe'];
  access: string;
  accessReason?: string;
  firstSeen: string;
  lastSeen: string;
  idleDays: number;
}

/** One folder of a device, with what the device has of it. */
export interface FolderSummary {
  collectionId: string;
  name?: string;
  type?: number;
  class?: string;
  /** Whether the device has synced it (else it only knows the folder from FolderSync). */
  synced: boolean;
  syncKey?: string;
  filterType?: number;
  /** Items the device has, and changes still to send. */
  items?: number;
  pending?: number;
  brokenItems: number;
}

export interface BrokenItemSummary {
  collectionId: string;
  serverId: string;
  subject?: string;
  reason: string;
  at: string;
}

export type DeviceDetails = Awaited<ReturnType<typeof deviceDetails>>;

/** The device an admin named, or AdminNotFound. */
export async function existingDevice(
  state: StateStore,
  tenant: string,
  user: string,
  deviceId: string,
): Promise<{ scope: DeviceScope; device: DeviceRecord }> {
  const scope = deviceScope(tenant, user, deviceId);
  const device = await state.getDevice(scope);
  if (!device) throw new AdminNotFound(`no device ${scope.deviceId} for ${scope.user}`);
  return { scope, device };
}

/** The devices of a tenant (or of one user), with their records. */
export async function listDevices(
  state: StateStore,
  tenant: string,
  user: string | undefined,
): Promise<{ user: string; record: DeviceRecord }[]> {
  if (user !== undefined && user !== '') {
    const scope = deviceScope(tenant, user, '');
    return (await state.listDevices(scope)).map((record) => ({ user: scope.user, record }));
  }
  return readDevices(state, await state.listTenantDevices(tenant));
}

async function readDevices(state: StateStore, index: DeviceScope[]): Promise<{ user: string; record: DeviceRecord }[]> {
  const found: { user: string; record: DeviceRecord }[] = [];
  for (let i = 0; i < index.length; i += LIST_CONCURRENCY) {
    const records = await Promise.all(index.slice(i, i + LIST_CONCURRENCY).map((d) => state.getDevice(d)));
    records.forEach((record, j) => {
      if (record) found.push({ user: index[i + j]!.user, record });
    });
  }
  return found;
}

/** The columns a device list sorts by. */
export const DEVICE_SORTS = [
  'user',
  'deviceId',
  'deviceType',
  'protocolVersion',
  'lastSeen',
  'access',
  'wipe',
] as const;
export type DeviceSort = (typeof DEVICE_SORTS)[number];

export interface DevicePageQuery {
  /** Part of the user or device id, any case. */
  search?: string;
  sort: DeviceSort;
  descending: boolean;
  offset: number;
  limit: number;
}

/**
 * One page of a tenant's devices, for tenants with many thousands. The search and the sort by user or device id work
 * on the tenant's device index (ids only, one read), and only the page's devices are read; sorting by another column
 * reads the devices that match the search, since the store keeps no index by those fields.
 */
export async function devicePage(
  state: StateStore,
  tenant: string,
  query: DevicePageQuery,
  now = Date.now(),
): Promise<{ total: number; devices: DeviceSummary[] }> {
  const needle = query.search?.trim().toLowerCase() ?? '';
  const index = (await state.listTenantDevices(tenant)).filter(
    (d) => needle === '' || d.user.toLowerCase().includes(needle) || d.deviceId.toLowerCase().includes(needle),
  );
  const direction = query.descending ? -1 : 1;
  const byText = (a: string, b: string): number => a.localeCompare(b) * direction;
  if (query.sort === 'user' || query.sort === 'deviceId') {
    const key =
      query.sort === 'user' ? (d: DeviceScope) => [d.user, d.deviceId] : (d: DeviceScope) => [d.deviceId, d.user];
    index.sort((a, b) => byText(key(a)[0]!, key(b)[0]!) || byText(key(a)[1]!, key(b)[1]!));
    const page = await readDevices(state, index.slice(query.offset, query.offset + query.limit));
    return { total: index.length, devices: page.map((d) => summarize(d.user, d.record, now)) };
  }
  const all = (await readDevices(state, index)).map((d) => summarize(d.user, d.record, now));
  const field = query.sort;
  all.sort((a, b) => byText(String(a[field] ?? ''), String(b[field] ?? '')) || a.user.localeCompare(b.user));
  return { total: all.length, devices: all.slice(query.offset, query.offset + query.limit) };
}

export function summarize(user: string, d: DeviceRecord, now = Date.now()): DeviceSummary {
  return withoutUndefined({
    user,
    deviceId: d.deviceId,
    deviceType: d.deviceType,
    model: d.model,
    os: d.os,
    userAgent: d.userAgent,
    protocolVersion: d.protocolVersion,
    provisioning: d.provisioning,
    wipe: d.wipe,
    access: d.accessState ?? 'allowed',
    accessReason: d.accessReason,
    firstSeen: new Date(d.firstSeen).toISOString(),
    lastSeen: new Date(d.lastSeen).toISOString(),
    idleDays: Math.floor((now - d.lastSeen) / DAY_MS),
  });
}

/** A device with its folders (their sync state and changes still to send) and its broken items. */
export async function deviceDetails(state: StateStore, scope: DeviceScope, d: DeviceRecord) {
  const hierarchy = (await state.getHierarchy(scope))?.state;
  const synced = new Set(await state.listCollections(scope));
  const ids = [...new Set([...(hierarchy?.folders.map((f) => f.serverId) ?? []), ...synced])];
  const folders: FolderSummary[] = [];
  const brokenItems: BrokenItemSummary[] = [];
  for (const id of ids) {
    const folder = hierarchy?.folders.find((f) => f.serverId === id);
    const collection = synced.has(id) ? await state.getCollection(scope, id) : undefined;
    const summary: FolderSummary = withoutUndefined({
      collectionId: id,
      name: folder?.displayName,
      type: folder?.type,
      class: collection?.state.class,
      synced: collection !== undefined,
      syncKey: collection?.syncKey,
      filterType: collection?.state.options.filterType,
      brokenItems: collection?.state.brokenItems?.length ?? 0,
    });
    const wm = collection?.state.watermark;
    if (wm?.kind === 'imap') {
      summary.items = UidSet.parse(wm.uids).size;
      summary.pending = UidSet.parse(wm.pendingAdds ?? '').size + collection!.state.pending.length;
    } else if (wm?.kind === 'dav') {
      summary.items = Object.keys(wm.etags).length;
      summary.pending = collection!.state.pending.length;
    }
    folders.push(summary);
    for (const b of collection?.state.brokenItems ?? []) {
      brokenItems.push(
        withoutUndefined({
          collectionId: id,
          serverId: b.serverId,
          subject: b.subject,
          reason: b.reason,
          at: new Date(b.at).toISOString(),
        }),
      );
    }
  }
  return {
    device: withoutUndefined({
      ...summarize(scope.user, d),
      friendlyName: d.friendlyName,
      osLanguage: d.osLanguage,
      mobileOperator: d.mobileOperator,
      accessOverride: d.accessOverride,
      wipeKind: d.wipe !== 'none' ? (d.wipeKind ?? 'full') : undefined,
      wipeRequestedAt: d.wipeRequestedAt !== undefined ? new Date(d.wipeRequestedAt).toISOString() : undefined,
      wipeAcknowledgedAt: d.wipeAcknowledgedAt !== undefined ? new Date(d.wipeAcknowledgedAt).toISOString() : undefined,
      wipeAckStatus: d.wipeAckStatus,
    }),
    folders,
    brokenItems,
  };
}

/** Folders the device is behind on: synced with changes still to send. */
export function foldersBehind(folders: FolderSummary[]): number {
  return folders.filter((f) => (f.pending ?? 0) > 0).length;
}

/** Asks for a wipe; `kind` as the admin sent it (absent: full). */
export async function wipeDevice(state: StateStore, scope: DeviceScope, kind: unknown): Promise<DeviceRecord> {
  const wipeKind = kind ?? 'full';
  if (wipeKind !== 'full' && wipeKind !== 'account') throw new AdminInputError('kind must be full or account');
  await existingDevice(state, scope.tenant, scope.user, scope.deviceId);
  return requestWipe(state, scope, wipeKind as WipeKind);
}

export async function cancelDeviceWipe(state: StateStore, scope: DeviceScope): Promise<DeviceRecord> {
  await existingDevice(state, scope.tenant, scope.user, scope.deviceId);
  return cancelWipe(state, scope);
}

/**
 * Makes the device sync a folder (`folder`: its collection id) or everything from scratch: its sync keys no longer
 * match, so it starts over (MS-ASCMD Sync Status 3, FolderSync Status 9).
 */
export async function resyncDevice(
  state: StateStore,
  scope: DeviceScope,
  folder: unknown,
): Promise<{ resynced: string[]; hierarchy?: boolean }> {
  await existingDevice(state, scope.tenant, scope.user, scope.deviceId);
  const collections = await state.listCollections(scope);
  if (folder !== undefined && folder !== '') {
    const id = String(folder);
    if (!collections.includes(id)) throw new AdminNotFound(`device ${scope.deviceId} has not synced folder ${id}`);
    await state.deleteCollection(scope, id);
    return { resynced: [id] };
  }
  for (const id of collections) await state.deleteCollection(scope, id);
  const hierarchy = await state.getHierarchy(scope);
  if (hierarchy) await state.commitHierarchy(scope, 'any', { syncKey: firstSyncKey(), state: hierarchy.state });
  return { resynced: collections, hierarchy: hierarchy !== undefined };
}

/** An admin's access decision for one device: allow (also releases a quarantine), block, or none (the rules decide). */
export async function setDeviceAccess(state: StateStore, scope: DeviceScope, access: unknown): Promise<DeviceRecord> {
  if (access !== 'allow' && access !== 'block' && access !== 'none')
    throw new AdminInputError('access must be allow, block or none');
  const { device } = await existingDevice(state, scope.tenant, scope.user, scope.deviceId);
  return state.updateDevice(scope, {
    deviceType: device.deviceType,
    accessOverride: access,
    lastSeen: device.lastSeen,
  });
}

/**
 * Removes a device as Exchange's Remove-MobileDevice does; its waiting Ping ends, and its push lease goes when no other
 * device waits.
 */
export async function removeDevice(state: StateStore, scope: DeviceScope): Promise<void> {
  await releaseDevice(state, scope);
  await state.deleteDevice(scope);
}

/** The tenant's access rules as stored (not the request path's cached copy). */
export async function currentAccessRules(state: StateStore, tenant: string): Promise<AccessRules> {
  return (await state.getAccessRules(tenant)) ?? (await loadAccessRules(state, tenant));
}

/** Replaces the rules with what the admin sent, checked whole. */
export async function replaceAccessRules(state: StateStore, tenant: string, input: unknown): Promise<AccessRules> {
  const rules = parseAccessRules(input);
  await saveAccessRules(state, tenant, rules);
  return rules;
}

/** Adds one rule, at the end or at `position` (0 first). */
export async function addAccessRule(
  state: StateStore,
  tenant: string,
  input: Record<string, unknown>,
): Promise<AccessRules> {
  const { position, ...fields } = input;
  const current = await currentAccessRules(state, tenant);
  const rule = parseAccessRule(fields);
  const at = optionalNumber(position, 'position') ?? current.rules.length;
  const rules = [...current.rules];
  rules.splice(Math.max(0, Math.min(rules.length, at)), 0, rule);
  return replaceAccessRules(state, tenant, { defaultAccess: current.defaultAccess, rules });
}

/** Moves a rule `by` places (negative: earlier, so it is tried before the ones it passes). */
export async function moveAccessRule(state: StateStore, tenant: string, id: string, by: number): Promise<AccessRules> {
  const current = await currentAccessRules(state, tenant);
  const from = current.rules.findIndex((r) => r.id === id);
  if (from < 0) throw new AdminNotFound(`no rule ${id}`);
  const rules = [...current.rules];
  const [rule] = rules.splice(from, 1);
  rules.splice(Math.max(0, Math.min(rules.length, from + by)), 0, rule!);
  return replaceAccessRules(state, tenant, { defaultAccess: current.defaultAccess, rules });
}

export async function removeAccessRule(state: StateStore, tenant: string, id: string): Promise<AccessRules> {
  const current = await currentAccessRules(state, tenant);
  if (!current.rules.some((r) => r.id === id)) throw new AdminNotFound(`no rule ${id}`);
  const next = { ...current, rules: current.rules.filter((r) => r.id !== id), updatedAt: Date.now() };
  await saveAccessRules(state, tenant, next);
  return next;
}

/** What a device no rule matches gets. */
export async function setDefaultAccess(state: StateStore, tenant: string, action: unknown): Promise<AccessRules> {
  const current = await currentAccessRules(state, tenant);
  return replaceAccessRules(state, tenant, { defaultAccess: action, rules: current.rules });
}

/** A number an admin sent (JSON or a query or form field); empty is absent. */
export function optionalNumber(value: unknown, name: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isFinite(n)) throw new AdminInputError(`${name} must be a number`);
  return n;
}

export function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
