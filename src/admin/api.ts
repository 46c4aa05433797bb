/**
 * The admin HTTP API under /admin (JSON in and out), for ops tooling and the `activesync-edge admin` CLI.
 *
 * Access: `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time. Without ADMIN_TOKEN the API does not
 * exist (404, as any unknown path); a wrong or missing token gets 401. Device credentials never work here.
 * Every operation acts on one tenant: `?tenant=` or the server's TENANT.
 *
 *   GET    /admin/devices[?user=&idleDays=]             devices, optionally of one user or idle for more than N days
 *   GET    /admin/devices/:user/:deviceId               one device, its folders with their sync state, broken items
 *   POST   /admin/devices/:user/:deviceId/wipe          {"kind":"full"|"account"}
 *   DELETE /admin/devices/:user/:deviceId/wipe          cancel a wipe not yet acknowledged
 *   POST   /admin/devices/:user/:deviceId/resync        {"folder"?: collectionId}: the device resyncs it (or all)
 *   POST   /admin/devices/:user/:deviceId/access        {"access":"allow"|"block"|"none"}: allow releases a quarantine
 *   DELETE /admin/devices/:user/:deviceId               remove the device and its state, release its push lease
 *   POST   /admin/devices/remove-idle                   {"days": N, "dryRun"?: true}
 *   GET    /admin/rules | PUT /admin/rules              the tenant's access rules, whole
 *   POST   /admin/rules | DELETE /admin/rules/:id       add one rule (at the end, or at "position"), remove one
 *   GET    /admin/stats[?minutes=60]                    per-command requests, errors, latency
 *   GET    /admin/live                                  what goes on now (activity.ts): `activesync-edge top` polls it
 *   GET    /admin/captures                              the protocol captures that are on
 *   POST   /admin/captures                              {"user", "deviceId"?, "minutes", "maxBodyBytes"?}: start one
 *   DELETE /admin/captures/:user[/:deviceId]            stop the capture of the user (or of one device)
 *   GET    /admin/captures/:user/:deviceId              the device's captured requests as a session (capture.ts)
 *   DELETE /admin/captures/:user/:deviceId/records      discard them
 */
import { Hono, type Context } from 'hono';
import type { ServerConfig } from '../config.ts';
import type { LogSink } from '../log.ts';
import { deviceScope } from '../devices/seen.ts';
import { firstSyncKey } from '../protocol/synckey.ts';
import { releaseDevice } from '../push/wait.ts';
import { UidSet } from '../state/uidset.ts';
import type { CaptureRule, DeviceRecord, DeviceScope, StateStore, WipeKind } from '../state/types.ts';
import {
  AccessRuleError,
  loadAccessRules,
  parseAccessRule,
  parseAccessRules,
  saveAccessRules,
} from '../devices/access-rules.ts';
import { cancelWipe, requestWipe, WipeError } from '../devices/wipe.ts';
import { exportCapture, MAX_CAPTURE_MINUTES, startCapture, stopCapture } from './capture.ts';
import { commandSummary } from './stats.ts';
import { liveSnapshot } from './activity.ts';

const DAY_MS = 86_400_000;
/** Devices read at once when listing a whole tenant (one state read each). */
const LIST_CONCURRENCY = 8;
const MAX_STATS_MINUTES = 7 * 24 * 60;

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

/** Bad input: HTTP 400 with the message. */
class BadRequest extends Error {}

/** What the admin API works with: its token and default tenant, the state store, the log. */
export interface AdminDeps {
  config: Pick<ServerConfig, 'adminToken' | 'tenant' | 'capture'>;
  state: StateStore;
  log: LogSink;
}

export function adminApi(deps: AdminDeps): Hono {
  const api = new Hono();
  const token = deps.config.adminToken;
  const state = deps.state;

  api.use('*', async (c, next) => {
    if (token === undefined) return c.text('Not Found\n', 404);
    if (!(await bearerMatches(c.req.header('authorization'), token))) {
      return c.json({ error: 'a valid admin token is required' }, 401, {
        'WWW-Authenticate': 'Bearer realm="activesync-edge admin"',
      });
    }
    await next();
  });
  api.onError((err, c) => {
    if (err instanceof BadRequest || err instanceof AccessRuleError) return c.json({ error: err.message }, 400);
    if (err instanceof WipeError) return c.json({ error: err.message }, 409);
    deps.log({
      time: new Date().toISOString(),
      tenant: deps.config.tenant,
      cmd: 'admin',
      http: 500,
      error: `${err.name}: ${err.message}`,
    });
    return c.json({ error: 'internal error' }, 500);
  });

  const tenantOf = (c: Context): string => c.req.query('tenant') || deps.config.tenant;
  const scopeOf = (c: Context): DeviceScope => deviceScope(tenantOf(c), c.req.param('user')!, c.req.param('deviceId')!);
  const existing = async (c: Context): Promise<{ scope: DeviceScope; device: DeviceRecord } | Response> => {
    const scope = scopeOf(c);
    const device = await state.getDevice(scope);
    return device ? { scope, device } : c.json({ error: `no device ${scope.deviceId} for ${scope.user}` }, 404);
  };

  api.get('/devices', async (c) => {
    const tenant = tenantOf(c);
    const user = c.req.query('user');
    const idleDays = optionalNumber(c.req.query('idleDays'), 'idleDays');
    const now = Date.now();
    let devices = await listDevices(state, tenant, user);
    if (idleDays !== undefined) devices = devices.filter((d) => now - d.record.lastSeen > idleDays * DAY_MS);
    return c.json({ devices: devices.map((d) => summarize(d.user, d.record, now)) });
  });

  api.post('/devices/remove-idle', async (c) => {
    const body = await jsonBody(c);
    const days = optionalNumber(body.days, 'days');
    if (days === undefined || days < 0) throw new BadRequest('days must be a number ≥ 0');
    const now = Date.now();
    const idle = (await listDevices(state, tenantOf(c), undefined)).filter(
      (d) => now - d.record.lastSeen > days * DAY_MS,
    );
    if (body.dryRun !== true) {
      for (const d of idle) await removeDevice(state, deviceScope(tenantOf(c), d.user, d.record.deviceId));
    }
    return c.json({ removed: idle.map((d) => summarize(d.user, d.record, now)), dryRun: body.dryRun === true });
  });

  api.get('/devices/:user/:deviceId', async (c) => {
    const found = await existing(c);
    if (found instanceof Response) return found;
    return c.json(await deviceDetails(state, found.scope, found.device));
  });

  api.post('/devices/:user/:deviceId/wipe', async (c) => {
    const body = await jsonBody(c);
    const kind = body.kind ?? 'full';
    if (kind !== 'full' && kind !== 'account') throw new BadRequest('kind must be full or account');
    const found = await existing(c);
    if (found instanceof Response) return found;
    const device = await requestWipe(state, found.scope, kind as WipeKind);
    return c.json({ device: summarize(found.scope.user, device) });
  });

  api.delete('/devices/:user/:deviceId/wipe', async (c) => {
    const found = await existing(c);
    if (found instanceof Response) return found;
    const device = await cancelWipe(state, found.scope);
    return c.json({ device: summarize(found.scope.user, device) });
  });

  api.post('/devices/:user/:deviceId/resync', async (c) => {
    const body = await jsonBody(c);
    const found = await existing(c);
    if (found instanceof Response) return found;
    const collections = await state.listCollections(found.scope);
    if (body.folder !== undefined) {
      const folder = String(body.folder);
      if (!collections.includes(folder))
        return c.json({ error: `device ${found.scope.deviceId} has not synced folder ${folder}` }, 404);
      await state.deleteCollection(found.scope, folder);
      return c.json({ resynced: [folder] });
    }
    // Every folder, and the folder list: the device's keys no longer match, so it starts over (Status 3 and 9).
    for (const id of collections) await state.deleteCollection(found.scope, id);
    const hierarchy = await state.getHierarchy(found.scope);
    if (hierarchy) await state.commitHierarchy(found.scope, 'any', { syncKey: firstSyncKey(), state: hierarchy.state });
    return c.json({ resynced: collections, hierarchy: hierarchy !== undefined });
  });

  api.post('/devices/:user/:deviceId/access', async (c) => {
    const body = await jsonBody(c);
    const access = body.access;
    if (access !== 'allow' && access !== 'block' && access !== 'none')
      throw new BadRequest('access must be allow, block or none');
    const found = await existing(c);
    if (found instanceof Response) return found;
    const device = await state.updateDevice(found.scope, {
      deviceType: found.device.deviceType,
      accessOverride: access,
      lastSeen: found.device.lastSeen,
    });
    return c.json({ device: summarize(found.scope.user, device) });
  });

  api.delete('/devices/:user/:deviceId', async (c) => {
    const found = await existing(c);
    if (found instanceof Response) return found;
    await removeDevice(state, found.scope);
    return c.json({ removed: summarize(found.scope.user, found.device) });
  });

  api.get('/rules', async (c) =>
    c.json((await state.getAccessRules(tenantOf(c))) ?? (await loadAccessRules(state, tenantOf(c)))),
  );

  api.put('/rules', async (c) => {
    const rules = parseAccessRules(await jsonBody(c));
    await saveAccessRules(state, tenantOf(c), rules);
    return c.json(rules);
  });

  api.post('/rules', async (c) => {
    const body = await jsonBody(c);
    const { position, ...fields } = body;
    const tenant = tenantOf(c);
    const current = (await state.getAccessRules(tenant)) ?? (await loadAccessRules(state, tenant));
    const rule = parseAccessRule(fields);
    const at = position === undefined ? current.rules.length : optionalNumber(position, 'position')!;
    const rules = [...current.rules];
    rules.splice(Math.max(0, Math.min(rules.length, at)), 0, rule);
    const next = parseAccessRules({ defaultAccess: current.defaultAccess, rules });
    await saveAccessRules(state, tenant, next);
    return c.json(next, 201);
  });

  api.delete('/rules/:id', async (c) => {
    const tenant = tenantOf(c);
    const current = (await state.getAccessRules(tenant)) ?? (await loadAccessRules(state, tenant));
    const id = c.req.param('id');
    if (!current.rules.some((r) => r.id === id)) return c.json({ error: `no rule ${id}` }, 404);
    const next = { ...current, rules: current.rules.filter((r) => r.id !== id), updatedAt: Date.now() };
    await saveAccessRules(state, tenant, next);
    return c.json(next);
  });

  api.get('/stats', async (c) => {
    const minutes = optionalNumber(c.req.query('minutes'), 'minutes') ?? 60;
    if (minutes < 1 || minutes > MAX_STATS_MINUTES)
      throw new BadRequest(`minutes must be between 1 and ${MAX_STATS_MINUTES}`);
    return c.json({ minutes, commands: await commandSummary(state, tenantOf(c), Math.floor(minutes)) });
  });

  api.get('/live', async (c) => c.json(await liveSnapshot(state, tenantOf(c))));

  api.get('/captures', async (c) => {
    const rules = await state.listCaptureRules(tenantOf(c));
    return c.json({ captures: rules.map(captureSummary) });
  });

  api.post('/captures', async (c) => {
    const body = await jsonBody(c);
    if (typeof body.user !== 'string' || body.user.trim() === '') throw new BadRequest('user is required');
    if (body.deviceId !== undefined && (typeof body.deviceId !== 'string' || body.deviceId === ''))
      throw new BadRequest('deviceId must be a device id');
    const minutes = optionalNumber(body.minutes, 'minutes');
    if (minutes === undefined || minutes <= 0 || minutes > MAX_CAPTURE_MINUTES)
      throw new BadRequest(`minutes must be more than 0 and at most ${MAX_CAPTURE_MINUTES}`);
    const maxBodyBytes = optionalNumber(body.maxBodyBytes, 'maxBodyBytes');
    if (maxBodyBytes !== undefined && (maxBodyBytes < 0 || !Number.isInteger(maxBodyBytes)))
      throw new BadRequest('maxBodyBytes must be a whole number ≥ 0');
    const rule = await startCapture(
      state,
      tenantOf(c),
      {
        user: body.user.trim(),
        minutes,
        ...(body.deviceId !== undefined ? { deviceId: body.deviceId } : {}),
        ...(maxBodyBytes !== undefined ? { maxBodyBytes } : {}),
      },
      deps.config.capture,
    );
    return c.json({ capture: captureSummary(rule) }, 201);
  });

  api.delete('/captures/:user', async (c) => {
    await stopCapture(state, tenantOf(c), c.req.param('user'), undefined);
    return c.json({ stopped: { user: c.req.param('user').toLowerCase() } });
  });

  api.delete('/captures/:user/:deviceId', async (c) => {
    const scope = scopeOf(c);
    await stopCapture(state, scope.tenant, scope.user, scope.deviceId);
    return c.json({ stopped: { user: scope.user, deviceId: scope.deviceId } });
  });

  api.get('/captures/:user/:deviceId', async (c) => c.json(await exportCapture(state, scopeOf(c))));

  api.delete('/captures/:user/:deviceId/records', async (c) => {
    await state.deleteCaptureRecords(scopeOf(c));
    return c.json({ discarded: true });
  });

  api.all('*', (c) => c.json({ error: 'no such admin operation' }, 404));
  return api;
}

/**
 * Whether the Authorization header carries the token. Both sides are hashed first, so the comparison takes the same
 * time whatever the lengths, and it runs over every byte.
 */
export async function bearerMatches(header: string | undefined, token: string): Promise<boolean> {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  const given = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(match?.[1] ?? '')));
  const wanted = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token)));
  let difference = match ? 0 : 1;
  for (let i = 0; i < wanted.length; i++) difference |= given[i]! ^ wanted[i]!;
  return difference === 0;
}

/**
 * Removes a device as Exchange's Remove-MobileDevice does; its waiting Ping ends, and its push lease goes when no other
 * device waits.
 */
export async function removeDevice(state: StateStore, scope: DeviceScope): Promise<void> {
  await releaseDevice(state, scope);
  await state.deleteDevice(scope);
}

async function listDevices(
  state: StateStore,
  tenant: string,
  user: string | undefined,
): Promise<{ user: string; record: DeviceRecord }[]> {
  if (user !== undefined && user !== '') {
    const scope = deviceScope(tenant, user, '');
    return (await state.listDevices(scope)).map((record) => ({ user: scope.user, record }));
  }
  const index = await state.listTenantDevices(tenant);
  const found: { user: string; record: DeviceRecord }[] = [];
  for (let i = 0; i < index.length; i += LIST_CONCURRENCY) {
    const records = await Promise.all(index.slice(i, i + LIST_CONCURRENCY).map((d) => state.getDevice(d)));
    records.forEach((record, j) => {
      if (record) found.push({ user: index[i + j]!.user, record });
    });
  }
  return found;
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

async function deviceDetails(state: StateStore, scope: DeviceScope, d: DeviceRecord) {
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

function captureSummary(rule: CaptureRule) {
  return withoutUndefined({
    user: rule.user,
    deviceId: rule.deviceId,
    startedAt: new Date(rule.startedAt).toISOString(),
    until: new Date(rule.until).toISOString(),
    maxBodyBytes: rule.maxBodyBytes,
  });
}

/** The request body as a JSON object; an empty body is `{}`. */
async function jsonBody(c: Context): Promise<Record<string, unknown>> {
  const text = await c.req.text();
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new BadRequest('the body is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new BadRequest('the body must be a JSON object');
  return value as Record<string, unknown>;
}

function optionalNumber(value: unknown, name: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isFinite(n)) throw new BadRequest(`${name} must be a number`);
  return n;
}

function withoutUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
