/**
 * The Hono app every runtime serves. Routes only; the ActiveSync framing is in activesync.ts, Autodiscover
 * in autodiscover.ts, and each command in commands/<command>.ts.
 */
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { handleOptions, handlePost, type ActiveSyncDeps } from './activesync.ts';
import { handleAutodiscover } from './autodiscover.ts';
import { adminApi } from '../admin/api.ts';
import { adminConsole } from '../admin/console/console.ts';

export type AppDeps = ActiveSyncDeps;

const ACTIVESYNC_PATH = '/microsoft-server-activesync';
const AUTODISCOVER_PATH = '/autodiscover/autodiscover.xml';
/** An Autodiscover request is a few hundred bytes of XML. */
const AUTODISCOVER_MAX_BYTES = 64 * 1024;

/** Clients vary the case of the ActiveSync and Autodiscover paths (iOS: `/Autodiscover/Autodiscover.xml`). */
function routingPath(request: Request): string {
  const path = new URL(request.url).pathname.replace(/\/+$/, '') || '/';
  const lower = path.toLowerCase();
  return lower === ACTIVESYNC_PATH || lower.startsWith('/autodiscover/') ? lower : path;
}

export function createApp(deps: AppDeps): Hono {
  const app = new Hono({ getPath: routingPath });
  // Before the tenant is known: the largest of the tenants' limits (each tenant's own is checked in activesync.ts).
  const maxRequestBytes = Math.max(
    deps.config.maxRequestBytes,
    ...(deps.tenants?.directory.entries.map((t) => t.config.maxRequestBytes) ?? []),
  );

  app.options(ACTIVESYNC_PATH, (c) => handleOptions(c, deps));
  // No body-limit middleware here: it would read a body sent without Content-Length whole, up to the largest limit,
  // before the request is authenticated. activesync.ts reads the body itself, after the login and the user's caps,
  // to the limit of the tenant and the command.
  app.post(ACTIVESYNC_PATH, (c) => handlePost(c, deps));
  app.get(ACTIVESYNC_PATH, (c) => c.html(INFO_PAGE));
  app.all(ACTIVESYNC_PATH, () => new Response(null, { status: 405, headers: { Allow: 'GET,OPTIONS,POST' } }));

  app.post(
    AUTODISCOVER_PATH,
    bodyLimit({
      maxSize: Math.min(maxRequestBytes, AUTODISCOVER_MAX_BYTES),
      onError: () => new Response(null, { status: 413, headers: { 'Content-Length': '0' } }),
    }),
    (c) => handleAutodiscover(c, deps),
  );

  // The web console (src/admin/console/) and the admin API (src/admin/api.ts): off (404) unless ADMIN_TOKEN is set.
  // The console first: the API answers every other path under /admin.
  app.route('/admin/ui', adminConsole(deps));
  app.route('/admin', adminApi(deps));

  app.notFound(() => new Response('Not Found\n', { status: 404, headers: { 'Content-Type': 'text/plain' } }));
  app.onError((err) => {
    deps.log({
      time: new Date().toISOString(),
      tenant: deps.config.tenant,
      http: 500,
      error: `${err.name}: ${err.message}`,
    });
    return new Response(null, { status: 500 });
  });
  return app;
}

/** What a person who opens the URL in a browser sees: what this is, nothing about how it runs. */
const INFO_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Exchange ActiveSync</title></head>
<body><h1>Exchange ActiveSync</h1>
<p>This address is an Exchange ActiveSync service for mail, calendar, contacts and tasks.
Add it on your phone or tablet as an Exchange account with your email address and password.</p>
</body></html>
`;
