/**
 * The web console under /admin/ui/ (issue 19): devices, one device with its actions, access rules, activity. Served by
 * the same Hono app on every runtime, server-rendered (pages.ts), no script. It calls the same operations as the admin
 * API (../operations.ts), so input is checked the same way.
 *
 * Access: the same ADMIN_TOKEN as the API, typed into the sign-in page (never in a URL); the session is a signed
 * cookie (session.ts). Every POST must come from the console's own pages: hono/csrf checks the browser's
 * Sec-Fetch-Site or Origin, and the form must carry the session's CSRF token. Without ADMIN_TOKEN the console does not
 * exist (404), like the API.
 */
import { Hono, type Context } from 'hono';
import { csrf } from 'hono/csrf';
import { HTTPException } from 'hono/http-exception';
import { AccessRuleError } from '../../devices/access-rules.ts';
import { deviceScope } from '../../devices/seen.ts';
import { WipeError } from '../../devices/wipe.ts';
import { liveSnapshot } from '../activity.ts';
import { type AdminDeps, tokenMatches } from '../api.ts';
import { exportCapture, ruleFor } from '../capture.ts';
import {
  AdminInputError,
  AdminNotFound,
  cancelDeviceWipe,
  currentAccessRules,
  DEVICE_SORTS,
  deviceDetails,
  devicePage,
  existingDevice,
  foldersBehind,
  moveAccessRule,
  optionalNumber,
  removeAccessRule,
  removeDevice,
  resyncDevice,
  setDefaultAccess,
  setDeviceAccess,
  wipeDevice,
  addAccessRule,
  type DevicePageQuery,
  type DeviceSort,
} from '../operations.ts';
import { commandSeries, commandSummary } from '../stats.ts';
import {
  activityPage,
  CONSOLE_CSS,
  confirmPage,
  DEVICE_ACTIONS,
  type DeviceAction,
  devicePage as renderDevicePage,
  devicePath,
  devicesPage,
  messagePage,
  type PageFrame,
  rulesPage,
  signInPage,
} from './pages.ts';
import {
  CONSOLE_PATH,
  type ConsoleSession,
  csrfTokenMatches,
  endSession,
  readSession,
  sessionKey,
  startSession,
} from './session.ts';

const PAGE_SIZE = 50;
/** Devices whose folders are read at once for the "folders behind" column. */
const DETAIL_CONCURRENCY = 8;
/** The captured requests a device page lists, latest first. */
const RECENT_REQUESTS = 20;

type ConsoleEnv = { Variables: { session: ConsoleSession } };

/** Headers of every console answer: no caching of admin pages, no framing, no script, forms only to ourselves. */
const SECURITY_HEADERS: Record<string, string> = {
  'Cache-Control': 'no-store',
  'Content-Security-Policy':
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  // Not no-referrer: with it, browsers send `Origin: null` on form posts, which the CSRF check refuses.
  'Referrer-Policy': 'same-origin',
};

export function adminConsole(deps: AdminDeps): Hono<ConsoleEnv> {
  const ui = new Hono<ConsoleEnv>();
  const token = deps.config.adminToken;
  const tenant = deps.config.tenant;
  const state = deps.state;
  const key = token !== undefined ? sessionKey(token) : undefined;
  const frame = (c: Context<ConsoleEnv>, title: string, active?: PageFrame['active']): PageFrame => ({
    title,
    tenant,
    csrf: c.get('session').csrfToken,
    ...(active ? { active } : {}),
  });

  ui.use('*', async (c, next) => {
    if (token === undefined || key === undefined) return c.text('Not Found\n', 404);
    await next();
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) c.res.headers.set(name, value);
  });
  // A form posted from another site (or a page of this host outside the console's origin): 403 before anything else.
  ui.use(
    '*',
    csrf({
      // The host, not the scheme: behind a TLS-terminating proxy the request URL says http.
      origin: (origin, c) => {
        try {
          return new URL(origin).host === (c.req.header('host') ?? new URL(c.req.url).host);
        } catch {
          return false;
        }
      },
    }),
  );

  ui.get('/console.css', (c) => c.body(CONSOLE_CSS, 200, { 'Content-Type': 'text/css; charset=utf-8' }));
  ui.get('/sign-in', (c) => c.html(signInPage(tenant)));
  ui.post('/sign-in', async (c) => {
    const form = await c.req.parseBody();
    if (typeof form.token !== 'string' || !(await tokenMatches(form.token, token!)))
      return c.html(signInPage(tenant, 'That is not the admin token.'), 401);
    await startSession(c, await key!);
    return c.redirect(`${CONSOLE_PATH}/devices`, 303);
  });

  // Everything else needs a session; a POST also the session's CSRF token.
  ui.use('*', async (c, next) => {
    const session = await readSession(c, await key!);
    if (!session) {
      if (c.req.method === 'GET' || c.req.method === 'HEAD') return c.redirect(`${CONSOLE_PATH}/sign-in`, 303);
      return c.text('Sign in first.\n', 401);
    }
    if (c.req.method === 'POST') {
      const form = await c.req.parseBody();
      if (!csrfTokenMatches(session, form.csrf)) return c.text('The form is stale or not from this console.\n', 403);
    }
    c.set('session', session);
    await next();
  });

  ui.onError((err, c) => {
    if (err instanceof HTTPException) return err.getResponse();
    const status =
      err instanceof AdminInputError || err instanceof AccessRuleError
        ? 400
        : err instanceof AdminNotFound
          ? 404
          : err instanceof WipeError
            ? 409
            : 500;
    if (status === 500) {
      deps.log({
        time: new Date().toISOString(),
        tenant,
        cmd: 'admin-console',
        http: 500,
        error: `${err.name}: ${err.message}`,
      });
    }
    const session = c.get('session') as ConsoleSession | undefined;
    const page: PageFrame = { title: 'Not done', tenant, ...(session ? { csrf: session.csrfToken } : {}) };
    const back = c.req.path.startsWith(`${CONSOLE_PATH}/rules`) ? `${CONSOLE_PATH}/rules` : `${CONSOLE_PATH}/devices`;
    return c.html(
      messagePage(page, status === 500 ? 'Internal error (see the server log).' : err.message, back),
      status,
    );
  });

  ui.get('/', (c) => c.redirect(`${CONSOLE_PATH}/devices`, 303));
  ui.post('/sign-out', (c) => {
    endSession(c);
    return c.redirect(`${CONSOLE_PATH}/sign-in`, 303);
  });

  ui.get('/devices', async (c) => {
    const query = devicesQuery(c);
    const page = await devicePage(state, tenant, query);
    const devices: ((typeof page.devices)[number] & { behind: number })[] = [];
    for (let i = 0; i < page.devices.length; i += DETAIL_CONCURRENCY) {
      devices.push(
        ...(await Promise.all(
          page.devices.slice(i, i + DETAIL_CONCURRENCY).map(async (d) => {
            const found = await state.getDevice(deviceScope(tenant, d.user, d.deviceId));
            const details = found
              ? await deviceDetails(state, deviceScope(tenant, d.user, d.deviceId), found)
              : undefined;
            return { ...d, behind: details ? foldersBehind(details.folders) : 0 };
          }),
        )),
      );
    }
    return c.html(devicesPage(frame(c, 'Devices', 'devices'), query, { total: page.total, devices }));
  });

  ui.get('/devices/:user/:deviceId', async (c) => {
    const { scope, device } = await existingDevice(state, tenant, c.req.param('user'), c.req.param('deviceId'));
    const [details, rules, session] = await Promise.all([
      deviceDetails(state, scope, device),
      state.listCaptureRules(tenant),
      exportCapture(state, scope),
    ]);
    const done = c.req.query('done');
    const capture = {
      on: ruleFor(rules, scope) !== undefined,
      requests: session.requests
        .slice(-RECENT_REQUESTS)
        .reverse()
        .map((r) => ({ ...r, time: Date.parse(r.time) })),
    };
    return c.html(
      renderDevicePage(
        frame(c, `Device ${scope.deviceId}`, 'devices'),
        details,
        capture,
        done && done in DEVICE_ACTIONS ? `Done: ${DEVICE_ACTIONS[done as DeviceAction].label}.` : undefined,
      ),
    );
  });

  ui.get('/devices/:user/:deviceId/confirm', async (c) => {
    const { scope } = await existingDevice(state, tenant, c.req.param('user'), c.req.param('deviceId'));
    const action = deviceAction(c.req.query('action'));
    const folder = action === 'resync-folder' ? (c.req.query('folder') ?? '') : undefined;
    return c.html(confirmPage(frame(c, 'Confirm', 'devices'), scope, action, folder));
  });

  ui.post('/devices/:user/:deviceId/actions', async (c) => {
    const form = await c.req.parseBody();
    const scope = deviceScope(tenant, c.req.param('user'), c.req.param('deviceId'));
    const action = deviceAction(form.action);
    switch (action) {
      case 'wipe':
        await wipeDevice(state, scope, 'full');
        break;
      case 'wipe-account':
        await wipeDevice(state, scope, 'account');
        break;
      case 'cancel-wipe':
        await cancelDeviceWipe(state, scope);
        break;
      case 'resync':
        await resyncDevice(state, scope, undefined);
        break;
      case 'resync-folder':
        if (typeof form.folder !== 'string' || form.folder === '') throw new AdminInputError('which folder?');
        await resyncDevice(state, scope, form.folder);
        break;
      case 'allow':
      case 'block':
        await setDeviceAccess(state, scope, action);
        break;
      case 'reset':
        await setDeviceAccess(state, scope, 'none');
        break;
      case 'remove':
        await existingDevice(state, tenant, scope.user, scope.deviceId);
        await removeDevice(state, scope);
        return c.redirect(`${CONSOLE_PATH}/devices`, 303);
    }
    return c.redirect(`${devicePath(scope.user, scope.deviceId)}?done=${action}`, 303);
  });

  ui.get('/rules', async (c) =>
    c.html(rulesPage(frame(c, 'Access rules', 'rules'), await currentAccessRules(state, tenant))),
  );

  // A rule the API would refuse is refused here with the same message, on the rules page.
  const rulesChange = async (c: Context<ConsoleEnv>, change: () => Promise<unknown>) => {
    try {
      await change();
    } catch (err) {
      if (!(err instanceof AccessRuleError || err instanceof AdminInputError)) throw err;
      return c.html(
        rulesPage(frame(c, 'Access rules', 'rules'), await currentAccessRules(state, tenant), err.message),
        400,
      );
    }
    return c.redirect(`${CONSOLE_PATH}/rules`, 303);
  };

  ui.post('/rules/add', async (c) => {
    const form = await c.req.parseBody();
    const fields: Record<string, unknown> = { action: form.action };
    for (const name of ['user', 'deviceType', 'model', 'userAgent']) {
      const value = form[name];
      if (typeof value === 'string' && value.trim() !== '') fields[name] = value;
    }
    return rulesChange(c, async () => {
      const position = optionalNumber(form.position, 'position');
      await addAccessRule(state, tenant, { ...fields, ...(position !== undefined ? { position: position - 1 } : {}) });
    });
  });

  ui.post('/rules/default', async (c) => {
    const form = await c.req.parseBody();
    return rulesChange(c, () => setDefaultAccess(state, tenant, form.defaultAccess));
  });

  ui.post('/rules/:id/move', async (c) => {
    const form = await c.req.parseBody();
    return rulesChange(c, async () =>
      moveAccessRule(state, tenant, c.req.param('id'), optionalNumber(form.by, 'by') ?? 0),
    );
  });

  ui.post('/rules/:id/remove', async (c) => rulesChange(c, () => removeAccessRule(state, tenant, c.req.param('id'))));

  ui.get('/activity', async (c) => {
    const now = Date.now();
    const [hour, hourSummary, day, daySummary, live] = await Promise.all([
      commandSeries(state, tenant, 60, 1, now),
      commandSummary(state, tenant, 60, now),
      commandSeries(state, tenant, 24 * 60, 15, now),
      commandSummary(state, tenant, 24 * 60, now),
      liveSnapshot(state, tenant, undefined, now),
    ]);
    const clock = (start: number) => new Date(start).toISOString().slice(11, 16);
    return c.html(
      activityPage(
        frame(c, 'Activity', 'activity'),
        [
          { title: 'The last hour (per minute, UTC)', bucketLabel: clock, series: hour, summary: hourSummary },
          { title: 'The last day (per 15 minutes, UTC)', bucketLabel: clock, series: day, summary: daySummary },
        ],
        live,
      ),
    );
  });

  ui.all('*', (c) => c.html(messagePage(frame(c, 'Not found'), 'No such page.', `${CONSOLE_PATH}/devices`), 404));
  return ui;
}

function devicesQuery(c: Context): DevicePageQuery {
  const sort = c.req.query('sort');
  const offset = Math.floor(optionalNumber(c.req.query('offset'), 'offset') ?? 0);
  const search = c.req.query('q')?.trim();
  return {
    ...(search ? { search } : {}),
    sort: DEVICE_SORTS.includes(sort as DeviceSort) ? (sort as DeviceSort) : 'lastSeen',
    descending: c.req.query('dir') === 'desc' || (sort === undefined && c.req.query('dir') === undefined),
    offset: Math.max(0, offset),
    limit: PAGE_SIZE,
  };
}

function deviceAction(value: unknown): DeviceAction {
  if (typeof value !== 'string' || !(value in DEVICE_ACTIONS)) throw new AdminInputError('no such action');
  return value as DeviceAction;
}
