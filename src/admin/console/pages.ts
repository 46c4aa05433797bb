/**
 * The console's pages as HTML (hono/html: every value put into a page is escaped, so a user name or device id a device
 * made up cannot become markup). No script: links, forms and server-rendered SVG only.
 */
import { html } from 'hono/html';
import type { LiveSnapshot } from '../activity.ts';
import type { DeviceDetails, DevicePageQuery, DeviceSort, DeviceSummary } from '../operations.ts';
import type { CommandSummary, SeriesBucket } from '../stats.ts';
import type { AccessRules, CapturedExchange } from '../../state/types.ts';
import { chart, type ChartSeries, type Html } from './charts.ts';
import { CONSOLE_PATH } from './session.ts';

export type { Html } from './charts.ts';

/** A device's page, relative to the console. */
export function devicePath(user: string, deviceId: string): string {
  return `${CONSOLE_PATH}/devices/${encodeURIComponent(user)}/${encodeURIComponent(deviceId)}`;
}

export interface PageFrame {
  title: string;
  /** The signed-in session's CSRF token (for the sign-out form); absent on the sign-in page. */
  csrf?: string;
  tenant: string;
  active?: 'devices' | 'rules' | 'activity';
}

export function layout(frame: PageFrame, body: Html): Html {
  const tab = (name: PageFrame['active'] & string, label: string) =>
    html`<a href="${CONSOLE_PATH}/${name}"${frame.active === name ? html` aria-current="page"` : ''}>${label}</a>`;
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${frame.title} · activesync-edge</title><link rel="stylesheet" href="${CONSOLE_PATH}/console.css"></head>
<body>
<header><strong>activesync-edge</strong> <span class="tenant">tenant ${frame.tenant}</span>
${
  frame.csrf !== undefined
    ? html`<nav>${tab('devices', 'Devices')} ${tab('rules', 'Access rules')} ${tab('activity', 'Activity')}</nav>
<form method="post" action="${CONSOLE_PATH}/sign-out" class="sign-out"><input type="hidden" name="csrf" value="${frame.csrf}"><button>Sign out</button></form>`
    : ''
}
</header>
<main><h1>${frame.title}</h1>
${body}
</main></body></html>`;
}

export function signInPage(tenant: string, error?: string): Html {
  return layout(
    { title: 'Sign in', tenant },
    html`${error ? html`<p class="error" role="alert">${error}</p>` : ''}
<form method="post" action="${CONSOLE_PATH}/sign-in" class="sign-in">
<label>Admin token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
<button>Sign in</button>
</form>
<p class="hint">The server's ADMIN_TOKEN, the same as for the admin API and CLI. The session lasts 8 hours.</p>`,
  );
}

export function messagePage(frame: PageFrame, message: string, back: string): Html {
  return layout(frame, html`<p class="error" role="alert">${message}</p><p><a href="${back}">Back</a></p>`);
}

const SORT_LABELS: [DeviceSort | undefined, string][] = [
  ['user', 'User'],
  ['deviceId', 'Device'],
  ['deviceType', 'Type / model'],
  ['protocolVersion', 'AS version'],
  ['lastSeen', 'Last seen'],
  [undefined, 'Policy'],
  ['access', 'Access'],
  ['wipe', 'Wipe'],
  [undefined, 'Folders behind'],
];

export function devicesPage(
  frame: PageFrame,
  query: DevicePageQuery,
  page: { total: number; devices: (DeviceSummary & { behind: number })[] },
): Html {
  const link = (change: Partial<DevicePageQuery>): string => {
    const q = { ...query, ...change };
    const params = new URLSearchParams();
    if (q.search) params.set('q', q.search);
    params.set('sort', q.sort);
    if (q.descending) params.set('dir', 'desc');
    if (q.offset > 0) params.set('offset', String(q.offset));
    return `${CONSOLE_PATH}/devices?${params}`;
  };
  const header = ([sort, label]: [DeviceSort | undefined, string]) => {
    if (!sort) return html`<th scope="col">${label}</th>`;
    const current = query.sort === sort;
    const descending = current && !query.descending;
    const mark = current ? (query.descending ? ' ▼' : ' ▲') : '';
    return html`<th scope="col"${current ? html` aria-sort="${query.descending ? 'descending' : 'ascending'}"` : ''}><a href="${link({ sort, descending, offset: 0 })}">${label}${mark}</a></th>`;
  };
  const first = page.total === 0 ? 0 : query.offset + 1;
  const last = Math.min(page.total, query.offset + query.limit);
  return layout(
    frame,
    html`<form method="get" action="${CONSOLE_PATH}/devices" class="search" role="search">
<label>User or device id <input type="search" name="q" value="${query.search ?? ''}"></label>
<input type="hidden" name="sort" value="${query.sort}">${query.descending ? html`<input type="hidden" name="dir" value="desc">` : ''}
<button>Search</button></form>
<p class="count">${first}–${last} of ${page.total} devices</p>
<table class="devices"><thead><tr>${SORT_LABELS.map(header)}</tr></thead><tbody>
${page.devices.map(
  (d) => html`<tr>
<td>${d.user}</td><td><a href="${devicePath(d.user, d.deviceId)}">${d.deviceId}</a></td>
<td>${d.deviceType}${d.model ? html`<br><small>${d.model}</small>` : ''}</td>
<td>${d.protocolVersion ?? ''}</td><td><time datetime="${d.lastSeen}">${shortTime(d.lastSeen)}</time></td>
<td>${d.provisioning}</td><td class="access-${d.access}">${d.access}</td><td class="wipe-${d.wipe}">${d.wipe}</td>
<td class="number">${d.behind}</td></tr>`,
)}
</tbody></table>
<nav class="pages">${
      query.offset > 0
        ? html`<a href="${link({ offset: Math.max(0, query.offset - query.limit) })}" rel="prev">Previous</a>`
        : ''
    } ${last < page.total ? html`<a href="${link({ offset: query.offset + query.limit })}" rel="next">Next</a>` : ''}</nav>`,
  );
}

/** An action on a device: what the confirmation page says, and what it does. */
export const DEVICE_ACTIONS = {
  wipe: { label: 'Wipe the device', says: 'erases the whole device (RemoteWipe) at its next request' },
  'wipe-account': {
    label: 'Wipe this account only',
    says: 'removes this account and its data from the device (AccountOnlyRemoteWipe, protocol 16.1) at its next request',
  },
  'cancel-wipe': { label: 'Cancel the wipe', says: 'takes back a wipe the device has not carried out yet' },
  resync: { label: 'Resync', says: 'makes the device sync its folder list and every folder again from scratch' },
  'resync-folder': { label: 'Resync folder', says: 'makes the device sync this folder again from scratch' },
  allow: { label: 'Allow', says: 'lets the device sync whatever the access rules say (releases a quarantine)' },
  block: { label: 'Block', says: 'refuses every request of the device whatever the access rules say' },
  reset: { label: 'Reset access', says: 'takes back an allow or block: the access rules decide again' },
  remove: {
    label: 'Remove',
    says: 'forgets the device and all its sync state; if it connects again it starts over as a new device',
  },
} as const;
export type DeviceAction = keyof typeof DEVICE_ACTIONS;

export function devicePage(
  frame: PageFrame,
  details: DeviceDetails,
  capture: { on: boolean; requests: CapturedExchange[] },
  done?: string,
): Html {
  const d = details.device;
  const path = devicePath(d.user, d.deviceId);
  const action = (name: DeviceAction, extra = '') =>
    html`<a class="action action-${name}" href="${path}/confirm?action=${name}${extra}">${DEVICE_ACTIONS[name].label}</a>`;
  const row = (label: string, value: unknown) =>
    value === undefined || value === '' ? '' : html`<tr><th scope="row">${label}</th><td>${String(value)}</td></tr>`;
  return layout(
    frame,
    html`${done ? html`<p class="done" role="status">${done}</p>` : ''}
<section><h2>The device</h2><table class="facts">
${row('User', d.user)}${row('Device id', d.deviceId)}${row('Type', d.deviceType)}${row('Model', d.model)}
${row('Name', d.friendlyName)}${row('OS', d.os)}${row('OS language', d.osLanguage)}${row('Operator', d.mobileOperator)}
${row('User agent', d.userAgent)}${row('ActiveSync version', d.protocolVersion)}${row('Policy', d.provisioning)}
${row('Access', d.accessReason ? `${d.access} (${d.accessReason})` : d.access)}${row("Admin's decision", d.accessOverride)}
${row('Wipe', d.wipeKind ? `${d.wipe} (${d.wipeKind})` : d.wipe)}${row('Wipe requested', d.wipeRequestedAt)}
${row('Wipe acknowledged', d.wipeAcknowledgedAt)}${row('First seen', d.firstSeen)}${row('Last seen', d.lastSeen)}
</table></section>
<section><h2>Actions</h2><p class="actions">
${d.wipe === 'requested' ? action('cancel-wipe') : html`${action('wipe')} ${action('wipe-account')}`}
${action('resync')} ${action('allow')} ${action('block')} ${action('reset')} ${action('remove')}</p></section>
<section><h2>Folders</h2><table class="folders"><thead><tr><th scope="col">Folder</th><th scope="col">Id</th><th scope="col">Class</th>
<th scope="col">Synced</th><th scope="col">Items</th><th scope="col">Pending</th><th scope="col">Broken</th><th scope="col">Sync key</th><th scope="col"></th></tr></thead><tbody>
${details.folders.map(
  (
    f,
  ) => html`<tr><td>${f.name ?? ''}</td><td>${f.collectionId}</td><td>${f.class ?? ''}</td><td>${f.synced ? 'yes' : 'no'}</td>
<td class="number">${f.items ?? ''}</td><td class="number">${f.pending ?? ''}</td><td class="number">${f.brokenItems}</td><td>${f.syncKey ?? ''}</td>
<td>${f.synced ? action('resync-folder', `&folder=${encodeURIComponent(f.collectionId)}`) : ''}</td></tr>`,
)}
</tbody></table></section>
<section><h2>Broken items</h2>${
      details.brokenItems.length === 0
        ? html`<p>None.</p>`
        : html`<table><thead><tr><th scope="col">Folder</th><th scope="col">Item</th><th scope="col">Subject</th><th scope="col">Why</th><th scope="col">Since</th></tr></thead><tbody>
${details.brokenItems.map((b) => html`<tr><td>${b.collectionId}</td><td>${b.serverId}</td><td>${b.subject ?? ''}</td><td>${b.reason}</td><td>${b.at}</td></tr>`)}
</tbody></table>`
    }</section>
<section><h2>Recent requests</h2>${
      capture.requests.length === 0
        ? html`<p>${capture.on ? 'Protocol capture is on; no request captured yet.' : 'Protocol capture is off for this device (start it with `activesync-edge admin capture start`).'}</p>`
        : html`<table><thead><tr><th scope="col">Time</th><th scope="col">Command</th><th scope="col">HTTP</th><th scope="col">Status</th><th scope="col">ms</th><th scope="col">Error</th></tr></thead><tbody>
${capture.requests.map(
  (r) => html`<tr><td>${new Date(r.time).toISOString()}</td><td>${r.command}</td><td>${r.response.status}</td>
<td>${r.commandStatus ?? ''}</td><td class="number">${r.ms}</td><td>${r.error ?? ''}</td></tr>`,
)}
</tbody></table>`
    }</section>`,
  );
}

export function confirmPage(
  frame: PageFrame,
  device: { user: string; deviceId: string },
  action: DeviceAction,
  folder: string | undefined,
): Html {
  const path = devicePath(device.user, device.deviceId);
  const what = DEVICE_ACTIONS[action];
  return layout(
    frame,
    html`<p class="confirm">${what.label} — device <strong>${device.deviceId}</strong> of <strong>${device.user}</strong>${
      folder !== undefined ? html`, folder <strong>${folder}</strong>` : ''
    }: this ${what.says}.</p>
<form method="post" action="${path}/actions">
<input type="hidden" name="csrf" value="${frame.csrf ?? ''}"><input type="hidden" name="action" value="${action}">
${folder !== undefined ? html`<input type="hidden" name="folder" value="${folder}">` : ''}
<button class="danger">Confirm: ${what.label}</button> <a href="${path}">Cancel</a>
</form>`,
  );
}

export function rulesPage(frame: PageFrame, rules: AccessRules, error?: string): Html {
  const post = (path: string, fields: Record<string, string>, label: string) =>
    html`<form method="post" action="${CONSOLE_PATH}/rules/${path}" class="inline"><input type="hidden" name="csrf" value="${frame.csrf ?? ''}">${Object.entries(
      fields,
    ).map(([k, v]) => html`<input type="hidden" name="${k}" value="${v}">`)}<button>${label}</button></form>`;
  const option = (value: string, selected: string) =>
    html`<option value="${value}"${value === selected ? html` selected` : ''}>${value}</option>`;
  return layout(
    frame,
    html`${error ? html`<p class="error" role="alert">${error}</p>` : ''}
<p>The first rule that matches a device decides; a device no rule matches gets the default. Patterns are regular
expressions matched against the whole value, any case; the user is a login, whole.</p>
<table class="rules"><thead><tr><th scope="col">#</th><th scope="col">Id</th><th scope="col">Action</th><th scope="col">User</th><th scope="col">Device type</th>
<th scope="col">Model</th><th scope="col">User agent</th><th scope="col"></th></tr></thead><tbody>
${rules.rules.map(
  (
    r,
    i,
  ) => html`<tr><td>${i + 1}</td><td>${r.id}</td><td>${r.action}</td><td>${r.user ?? ''}</td><td><code>${r.deviceType ?? ''}</code></td>
<td><code>${r.model ?? ''}</code></td><td><code>${r.userAgent ?? ''}</code></td>
<td>${i > 0 ? post(`${encodeURIComponent(r.id)}/move`, { by: '-1' }, 'Up') : ''} ${
    i < rules.rules.length - 1 ? post(`${encodeURIComponent(r.id)}/move`, { by: '1' }, 'Down') : ''
  } ${post(`${encodeURIComponent(r.id)}/remove`, {}, 'Remove')}</td></tr>`,
)}
</tbody></table>
<section><h2>Default</h2>
<form method="post" action="${CONSOLE_PATH}/rules/default"><input type="hidden" name="csrf" value="${frame.csrf ?? ''}">
<label>Devices no rule matches <select name="defaultAccess">${['allow', 'block', 'quarantine'].map((a) => option(a, rules.defaultAccess))}</select></label>
<button>Save default</button></form></section>
<section><h2>Add a rule</h2>
<form method="post" action="${CONSOLE_PATH}/rules/add" class="add-rule"><input type="hidden" name="csrf" value="${frame.csrf ?? ''}">
<label>Action <select name="action">${['allow', 'block', 'quarantine'].map((a) => option(a, 'block'))}</select></label>
<label>User <input name="user"></label>
<label>Device type <input name="deviceType" placeholder="e.g. iPhone|iPad"></label>
<label>Model <input name="model"></label>
<label>User agent <input name="userAgent"></label>
<label>Position <input name="position" type="number" min="1" placeholder="last"></label>
<button>Add rule</button></form></section>`,
  );
}

export interface ActivityPeriod {
  title: string;
  bucketLabel: (start: number) => string;
  series: SeriesBucket[];
  summary: CommandSummary[];
}

/** The commands charted on their own (the busiest); the rest add up as "other". */
const CHARTED_COMMANDS = 7;

export function activityPage(frame: PageFrame, periods: ActivityPeriod[], live: LiveSnapshot): Html {
  return layout(
    frame,
    html`<section><h2>Now</h2>
<p class="now">Pings held: <strong>${live.pings.held}</strong> · hanging Syncs: <strong>${live.pings.hangingSyncs}</strong> ·
accounts with a waiting device (all instances): <strong>${live.pings.leasedAccounts}</strong> · accounts watched here:
<strong>${live.watcher.watchedHere}</strong>${
      live.watcher.feedLagSeconds
        ? html` · feed lag ${live.watcher.feedLagSeconds.last} s (most ${live.watcher.feedLagSeconds.max} s)`
        : ''
    }</p>
${
  live.pings.waiting.length === 0
    ? html`<p>No Ping or hanging Sync held on this instance.</p>`
    : html`<table class="waiting"><thead><tr><th scope="col">Kind</th><th scope="col">User</th><th scope="col">Device</th><th scope="col">Waiting</th></tr></thead><tbody>
${live.pings.waiting.map(
  (w) =>
    html`<tr><td>${w.kind}</td><td>${w.user}</td><td><a href="${devicePath(w.user, w.deviceId)}">${w.deviceId}</a></td><td>${w.seconds} s</td></tr>`,
)}</tbody></table>`
}
<p class="hint">Held requests and the watcher are this instance's (on Workers and Lambda, the one that answered); the counts below are every instance's.</p>
</section>
${periods.map((p) => periodSection(p))}`,
  );
}

function periodSection(p: ActivityPeriod): Html {
  const names = p.summary.map((s) => s.command);
  const charted = names.slice(0, CHARTED_COMMANDS);
  const rest = names.slice(CHARTED_COMMANDS);
  const labels = p.series.map((b) => p.bucketLabel(b.start));
  const values = (pick: (c: { requests: number; errors: number; totalMs: number }) => number): ChartSeries[] => [
    ...charted.map((name) => ({ name, values: p.series.map((b) => (b.commands[name] ? pick(b.commands[name]) : 0)) })),
    ...(rest.length
      ? [
          {
            name: 'other',
            values: p.series.map((b) =>
              rest.reduce((n, name) => n + (b.commands[name] ? pick(b.commands[name]) : 0), 0),
            ),
          },
        ]
      : []),
  ];
  const latency: ChartSeries[] = charted.map((name) => ({
    name,
    values: p.series.map((b) => {
      const c = b.commands[name];
      return c?.requests ? Math.round(c.totalMs / c.requests) : 0;
    }),
  }));
  return html`<section><h2>${p.title}</h2>
${chart({ title: 'Requests per command', labels, series: values((c) => c.requests), unit: 'requests', kind: 'stacked', empty: 'No requests in this period.' })}
${chart({ title: 'Errors per command', labels, series: values((c) => c.errors).filter((s) => s.values.some((v) => v > 0)), unit: 'errors', kind: 'stacked', empty: 'No errors in this period.' })}
${chart({ title: 'Average latency per command', labels, series: latency, unit: 'ms', kind: 'lines', empty: 'No requests in this period.' })}
<table class="commands"><thead><tr><th scope="col">Command</th><th scope="col">Requests</th><th scope="col">Errors</th><th scope="col">Average ms</th><th scope="col">Most ms</th></tr></thead><tbody>
${p.summary.map((s) => html`<tr><td>${s.command}</td><td class="number">${s.requests}</td><td class="number">${s.errors}</td><td class="number">${s.avgMs}</td><td class="number">${s.maxMs}</td></tr>`)}
</tbody></table></section>`;
}

function shortTime(iso: string): string {
  return iso.replace('T', ' ').slice(0, 16);
}

export const CONSOLE_CSS = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1b1b1b; background: #fafafa; }
header { display: flex; gap: 1.5em; align-items: center; padding: .6em 1em; background: #123; color: #fff; }
header a { color: #cde; margin-right: 1em; text-decoration: none; } header a[aria-current] { color: #fff; font-weight: bold; }
header .sign-out { margin-left: auto; } .tenant { color: #9ab; }
main { padding: 0 1em 2em; } h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.5em; }
table { border-collapse: collapse; background: #fff; } th, td { padding: .25em .6em; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
th a { color: inherit; } td.number { text-align: right; } .facts th { font-weight: normal; color: #555; }
.access-blocked, .access-quarantined, .wipe-requested, .wipe-acknowledged { color: #b00; font-weight: bold; }
.error { color: #b00; font-weight: bold; } .done { color: #060; font-weight: bold; } .hint, .count { color: #555; }
.actions a.action { display: inline-block; margin: 0 .4em .4em 0; padding: .2em .6em; border: 1px solid #789; border-radius: 3px; text-decoration: none; }
.action-wipe, .action-wipe-account, .action-remove, button.danger { color: #b00; }
form.inline { display: inline; } .add-rule label, .search label { margin-right: .8em; }
.chart { margin: 1em 0; } .chart figcaption { font-weight: bold; } .legend { list-style: none; padding: 0; display: flex; gap: 1em; flex-wrap: wrap; }
.pages a { margin-right: 1em; }
`;
