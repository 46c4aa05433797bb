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
import type { CaptureRule, DeviceScope, StateStore } from '../state/types.ts';
import { AccessRuleError } from '../devices/access-rules.ts';
import { WipeError } from '../devices/wipe.ts';
import { exportCapture, MAX_CAPTURE_MINUTES, startCapture, stopCapture } from './capture.ts';
import { commandSummary } from './stats.ts';
import { liveSnapshot } from './activity.ts';
import {
  addAccessRule,
  AdminInputError,
  AdminNotFound,
  cancelDeviceWipe,
  currentAccessRules,
  deviceDetails,
  existingDevice,
  listDevices,
  optionalNumber,
  removeAccessRule,
  removeDevice,
  replaceAccessRules,
  resyncDevice,
  setDeviceAccess,
  summarize,
  wipeDevice,
  withoutUndefined,
} from './operations.ts';

export type { BrokenItemSummary, DeviceSummary, FolderSummary } from './operations.ts';
export { removeDevice, summarize } from './operations.ts';

const DAY_MS = 86_400_000;
const MAX_STATS_MINUTES = 7 * 24 * 60;

/** Bad input: HTTP 400 with the message. */
class BadRequest extends AdminInputError {}

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
    if (err instanceof AdminInputError || err instanceof AccessRuleError) return c.json({ error: err.message }, 400);
    if (err instanceof AdminNotFound) return c.json({ error: err.message }, 404);
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
    const { scope, device } = await existingDevice(state, tenantOf(c), c.req.param('user'), c.req.param('deviceId'));
    return c.json(await deviceDetails(state, scope, device));
  });

  api.post('/devices/:user/:deviceId/wipe', async (c) => {
    const body = await jsonBody(c);
    const scope = scopeOf(c);
    return c.json({ device: summarize(scope.user, await wipeDevice(state, scope, body.kind)) });
  });

  api.delete('/devices/:user/:deviceId/wipe', async (c) => {
    const scope = scopeOf(c);
    return c.json({ device: summarize(scope.user, await cancelDeviceWipe(state, scope)) });
  });

  api.post('/devices/:user/:deviceId/resync', async (c) => {
    const body = await jsonBody(c);
    return c.json(await resyncDevice(state, scopeOf(c), body.folder));
  });

  api.post('/devices/:user/:deviceId/access', async (c) => {
    const body = await jsonBody(c);
    const scope = scopeOf(c);
    return c.json({ device: summarize(scope.user, await setDeviceAccess(state, scope, body.access)) });
  });

  api.delete('/devices/:user/:deviceId', async (c) => {
    const { scope, device } = await existingDevice(state, tenantOf(c), c.req.param('user'), c.req.param('deviceId'));
    await removeDevice(state, scope);
    return c.json({ removed: summarize(scope.user, device) });
  });

  api.get('/rules', async (c) => c.json(await currentAccessRules(state, tenantOf(c))));

  api.put('/rules', async (c) => c.json(await replaceAccessRules(state, tenantOf(c), await jsonBody(c))));

  api.post('/rules', async (c) => c.json(await addAccessRule(state, tenantOf(c), await jsonBody(c)), 201));

  api.delete('/rules/:id', async (c) => c.json(await removeAccessRule(state, tenantOf(c), c.req.param('id'))));

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

/** Whether the Authorization header carries the token (tokenMatches). */
export async function bearerMatches(header: string | undefined, token: string): Promise<boolean> {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return (await tokenMatches(match?.[1] ?? '', token)) && match !== null;
}

/**
 * Whether `given` is the token. Both sides are hashed first, so the comparison takes the same time whatever the
 * lengths, and it runs over every byte.
 */
export async function tokenMatches(given: string, token: string): Promise<boolean> {
  const a = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(given)));
  const b = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token)));
  let difference = 0;
  for (let i = 0; i < b.length; i++) difference |= a[i]! ^ b[i]!;
  return difference === 0;
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
