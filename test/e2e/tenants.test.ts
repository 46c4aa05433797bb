/**
 * Multi-tenancy and authentication modes end to end (issue 9 items 4–5), through the real app with a tenants
 * document, as `TENANTS` / `TENANTS_FILE` give it:
 *
 * - acme:    the shared test Dovecot (mail domain example.test, host acme.sync.test), Basic;
 * - initech: the same Dovecot account as acme, another tenant (host initech.sync.test): same backend, same login;
 * - globex:  a second Dovecot started here with a user of the same name (other password, other mail), AUTH_MODE both;
 * - hooli:   that second Dovecot, AUTH_MODE bearer; SMTP is an XOAUTH2 submission server started here; CalDAV,
 *            CardDAV and the GAL on a second Radicale started here, which takes Bearer tokens.
 *
 * The second Dovecot checks Bearer tokens itself (its `oauth2` passdb) by asking the introspection endpoint of a
 * stand-in for the identity provider that issued the tokens (test/services/identity-provider.ts), which also publishes
 * the provider's signing keys (JWKS), against which the app verifies each token first.
 * The second Radicale asks the same endpoint whom a Bearer token was issued to. The same user name and the same
 * DeviceId are used in every tenant; nothing of one tenant reaches another.
 */
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { ImapFlow } from 'imapflow';
import { generateKeyPair, type CryptoKey } from 'jose';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildApp } from '../../src/app/build.ts';
import { decodeWbxml } from '../../src/wbxml/decoder.ts';
import { pooledImapSessions } from '../../src/backends/imap/sessions.ts';
import { nodemailerSubmitter } from '../../src/backends/smtp/nodemailer.ts';
import { FolderType } from '../../src/backends/types.ts';
import type { LogEntry } from '../../src/log.ts';
import { openSqliteStateStore } from '../../src/state/sqlite-node.ts';
import { parseTenants } from '../../src/tenants/settings.ts';
import { startIdleWatcher, type IdleWatcher } from '../../src/push/idle-watcher.ts';
import { child, children, childText, el } from '../../src/wbxml/tree.ts';
import { itemText, subjects, TestDevice, type TestServer } from '../device/device.ts';
import { makeUser } from '../services/accounts.ts';
import { isRoot } from '../services/apt.ts';
import { startDovecot, type DovecotService } from '../services/dovecot.ts';
import { startIdentityProvider, type IdentityProvider } from '../services/identity-provider.ts';
import { startRadicale, type RadicaleService } from '../services/radicale.ts';
import {
  createUser,
  davRequest,
  makeEvent,
  makeMessage,
  seedAddressBook,
  seedCalendar,
  seedMailbox,
} from '../services/seed.ts';
import { TEST_CA } from '../services/smtp-sink.ts';
import type { TestServices, TestUser } from '../services/types.ts';
import { compose, composeStatus } from './mail/compose-helpers.ts';
import { acceptMeeting, meetingInvitation } from './session-steps.ts';

const services = inject('services');
const DEVICE_ID = 'SAMEDEVICE0001';

/** The identity provider: its tokens, its introspection endpoint (idp.introspected: what reached the mail server). */
let idp: IdentityProvider;

/**
 * A JWT with these claims signed by the identity provider's key (or `key`): the app verifies it against the published
 * keys and takes the tenant's configured claim, Dovecot has the introspection endpoint vouch for it.
 */
function jwt(claims: Record<string, unknown>, key?: CryptoKey): Promise<string> {
  return idp.jwt(claims, key ? { key } : {});
}

let acmeUser: TestUser;
let globexUser: TestUser;
let runDir: string;
let dovecot: DovecotService;
let smtp: SMTPServer;
let smtpPort: number;
/** What the XOAUTH2 submission server took: user, token, envelope. */
const submitted: { user: string; token: string; to: string[] }[] = [];
let server: TestServer;
let watchers: IdleWatcher[] = [];
/** hooli's CalDAV, CardDAV and GAL: a Radicale of its own that takes Bearer tokens. */
let hooliDav: RadicaleService;
/** The test services with hooli's Radicale as the DAV server (for seeding it with Basic logins). */
let hooliDavServices: TestServices;
/** A colleague of globexUser in hooli's directory, with a public calendar for free/busy. */
let colleague: TestUser;

async function appendTo(port: number, user: TestUser, subjectsToAdd: string[]): Promise<void> {
  await appendSources(
    port,
    user,
    subjectsToAdd.map((subject) => makeMessage({ subject, to: user.email })),
  );
}

async function appendSources(port: number, user: TestUser, sources: (string | Buffer)[]): Promise<void> {
  const client = new ImapFlow({
    host: '127.0.0.1',
    port,
    secure: false,
    auth: { user: user.email, pass: user.password },
    logger: false,
  });
  client.on('error', () => undefined);
  await client.connect();
  for (const source of sources) await client.append('INBOX', source);
  await client.logout();
}

beforeAll(async () => {
  acmeUser = createUser(services);
  // The same name (so the same login, `<name>@example.test`) on another mail server, with its own password.
  globexUser = makeUser(acmeUser.name, `${acmeUser.name}-globex-pw`);

  idp = await startIdentityProvider();
  runDir = mkdtempSync('/tmp/ase-t-');
  chmodSync(runDir, 0o755);
  dovecot = await startDovecot(runDir, [globexUser], isRoot(), {
    // XOAUTH2 (as the issue asks; OAUTHBEARER would do as well) checked by the oauth2 passdb, after the password files.
    extraConfig: idp.dovecotXoauth2(runDir),
  });

  colleague = makeUser(`${acmeUser.name}-colleague`);
  mkdirSync(`${runDir}/hooli-dav`);
  hooliDav = await startRadicale(`${runDir}/hooli-dav`, [globexUser, colleague], {
    bearerIntrospectionUrl: idp.introspectionUrl,
  });
  hooliDavServices = { ...services, caldavUrl: hooliDav.url, carddavUrl: hooliDav.url };
  const colleagueCalendar = await seedCalendar(hooliDavServices, colleague, 'public-calendar', [
    makeEvent({ summary: 'Busy', start: '2026-06-01T10:00:00', tz: 'UTC' }),
  ]);
  const hooliDirectory = await seedAddressBook(hooliDavServices, colleague, 'directory', [
    [
      'BEGIN:VCARD',
      'VERSION:3.0',
      'UID:colleague',
      'N:Colleague;Hooli;;;',
      'FN:Hooli Colleague',
      `EMAIL;TYPE=INTERNET:${colleague.email}`,
      `FBURL:${colleagueCalendar.collectionUrl}`,
      'END:VCARD',
      '',
    ].join('\r\n'),
  ]);
  await seedCalendar(hooliDavServices, globexUser, 'calendar', [], { displayName: 'Calendar' });

  const tls = new URL('../fixtures/tls/', import.meta.url);
  smtp = new SMTPServer({
    logger: false,
    key: readFileSync(new URL('localhost.key', tls)),
    cert: readFileSync(new URL('localhost.pem', tls)),
    authMethods: ['XOAUTH2'],
    onAuth(auth, _session, callback) {
      // The token issuer's check, as a submission server behind the same identity provider makes it.
      if (auth.method === 'XOAUTH2' && auth.accessToken && idp.issued.get(auth.accessToken) === auth.username) {
        callback(null, { user: `${auth.username}\u0000${auth.accessToken}` });
      } else callback(null, { data: { status: '401', schemes: 'bearer' } });
    },
    onData(stream, session, callback) {
      stream.resume();
      stream.on('end', () => {
        const [user = '', token = ''] = String(session.user).split('\u0000');
        submitted.push({ user, token, to: session.envelope.rcptTo.map((r) => r.address) });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
  smtpPort = (smtp.server.address() as AddressInfo).port;

  const sharedImap = { IMAP_HOST: services.imap.host, IMAP_PORT: services.imap.port, IMAP_SECURE: false };
  const globexImap = { IMAP_HOST: '127.0.0.1', IMAP_PORT: dovecot.imapPort, IMAP_SECURE: false };
  const directory = parseTenants(
    JSON.stringify({
      defaults: { PING_MIN_HEARTBEAT: 1, PING_MAX_HEARTBEAT: 10, PING_POLL_SECONDS: 0.2 },
      tenants: [
        { name: 'acme', hostnames: ['acme.sync.test'], mailDomains: [services.domain], settings: sharedImap },
        { name: 'initech', hostnames: ['initech.sync.test'], settings: { ...sharedImap, MAX_REQUEST_BYTES: 2048 } },
        {
          name: 'globex',
          hostnames: ['globex.sync.test'],
          mailDomains: ['globex.test'],
          settings: { ...globexImap, AUTH_MODE: 'both', ...idp.bearerSettings('upn'), PROVISIONING: 'loose' },
        },
        {
          name: 'hooli',
          hostnames: ['hooli.sync.test'],
          settings: {
            ...globexImap,
            AUTH_MODE: 'bearer',
            ...idp.bearerSettings('email'),
            CALDAV_URL: hooliDav.url,
            CARDDAV_URL: hooliDav.url,
            GAL_URL: hooliDirectory.collectionUrl,
            SMTP_HOST: 'localhost',
            SMTP_PORT: smtpPort,
            SMTP_SECURE: false,
            SMTP_AUTH: 'required',
            // A token is no login for the push watcher: it logs in as the master user on the user's behalf.
            IMAP_MASTER_USER: services.master.user,
            IMAP_MASTER_PASSWORD: { env: 'HOOLI_MASTER_PASSWORD' },
          },
        },
      ],
    }),
    { HOOLI_MASTER_PASSWORD: services.master.password },
  );
  const state = openSqliteStateStore(':memory:').store;
  // As the Node runtime does: one IDLE watcher per tenant, with the tenant's IMAP server and logins.
  watchers = directory.entries.map(({ config }) =>
    startIdleWatcher({ state, tenant: config.tenant, imap: config.imap, push: config.push }),
  );
  const logs: LogEntry[] = [];
  const { app } = buildApp({
    settings: directory,
    imapSessions: (imap) => pooledImapSessions(imap),
    // The test CA signs the submission server's certificate (a runtime with a private CA would pass it likewise).
    submitter: (smtp) => nodemailerSubmitter(smtp, { ca: TEST_CA }),
    state,
    log: (e) => logs.push(e),
  });
  server = { fetch: async (url, init) => app.request(url, init), state, logs };
}, 60_000);

afterAll(async () => {
  await Promise.all(watchers.map((w) => w.stop()));
  await dovecot?.stop();
  await hooliDav?.stop();
  idp?.close();
  await new Promise<void>((resolve) => (smtp ? smtp.close(() => resolve()) : resolve()));
  if (runDir) rmSync(runDir, { recursive: true, force: true });
});

function deviceOn(host: string, user: TestUser): TestDevice {
  const device = new TestDevice(server, user, DEVICE_ID);
  device.origin = `https://${host}`;
  return device;
}

const scope = (tenant: string) => ({ tenant, user: acmeUser.email, deviceId: DEVICE_ID });

async function inboxOf(device: TestDevice): Promise<string> {
  await device.folderSync();
  const inbox = device.folderByType(FolderType.Inbox).serverId;
  await device.syncUntilDone(inbox);
  return inbox;
}

/** The users hooli's Radicale let in with a Bearer token (its log: "Successful login: 'bearer-token' -> '<user>'"). */
function radicaleLogins(): string[] {
  const log = readFileSync(`${runDir}/hooli-dav/radicale/radicale.log`, 'utf8');
  return [...log.matchAll(/Successful login: 'bearer-token' -> '([^']+)'/g)].map((m) => m[1]!);
}

function pingBody(heartbeat: number, folder: string) {
  return el('Ping', 'Ping', [
    el('Ping', 'HeartbeatInterval', String(heartbeat)),
    el('Ping', 'Folders', [el('Ping', 'Folder', [el('Ping', 'Id', folder), el('Ping', 'Class', 'Email')])]),
  ]);
}

describe('two tenants with their own mail servers, the same user name and DeviceId', () => {
  let acme: TestDevice;
  let globex: TestDevice;
  let acmeInbox: string;
  let globexInbox: string;

  beforeAll(async () => {
    await seedMailbox(services, acmeUser, 'INBOX', [
      { message: { subject: 'acme one', to: acmeUser.email } },
      { message: { subject: 'acme two', to: acmeUser.email } },
    ]);
    await appendTo(dovecot.imapPort, globexUser, ['globex one']);
    acme = deviceOn('acme.sync.test', acmeUser);
    globex = deviceOn('globex.sync.test', globexUser);
    acmeInbox = await inboxOf(acme);
    globexInbox = await inboxOf(globex);
  });

  it('each device sees its own tenant’s mailbox, and each tenant keeps its own device record', async () => {
    expect(subjects(acme, acmeInbox)).toEqual(['acme one', 'acme two']);
    expect(subjects(globex, globexInbox)).toEqual(['globex one']);
    const [a, g] = await Promise.all([server.state.getDevice(scope('acme')), server.state.getDevice(scope('globex'))]);
    expect(a?.provisioning).toBe('provisioned');
    expect(g?.provisioning).toBe('provisioned');
    expect(a?.policyKey).not.toBe(g?.policyKey);
    expect(server.logs.filter((l) => l.cmd === 'Sync').map((l) => l.tenant)).toEqual(
      expect.arrayContaining(['acme', 'globex']),
    );
  });

  it('keeps Settings per tenant: DeviceInformation set on one is not on the other', async () => {
    const body = await acme.command(
      'Settings',
      el('Settings', 'Settings', [
        el('Settings', 'DeviceInformation', [el('Settings', 'Set', [el('Settings', 'Model', 'Acme-only model')])]),
      ]),
    );
    expect(childText(child(body, 'DeviceInformation'), 'Status')).toBe('1');
    expect((await server.state.getDevice(scope('acme')))?.model).toBe('Acme-only model');
    expect((await server.state.getDevice(scope('globex')))?.model).not.toBe('Acme-only model');
  });

  it('refuses one tenant’s policy key and sync key on the other, for the same collection id', async () => {
    expect(globexInbox).toBe(acmeInbox);
    const stranger = deviceOn('globex.sync.test', globexUser);
    stranger.policyKey = acme.policyKey;
    const refused = await stranger.send(
      'FolderSync',
      el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', acme.hierarchyKey)]),
    );
    // 14.1: InvalidPolicyKey (144) in the response, not the other tenant's folders.
    expect(childText(refused.body, 'Status')).toBe('144');

    const intruder = deviceOn('globex.sync.test', globexUser);
    intruder.policyKey = globex.policyKey;
    intruder.collections.set(acmeInbox, { syncKey: acme.collections.get(acmeInbox)!.syncKey, items: new Map() });
    // Keys carry a random GUID: acme's is unknown to globex's state for this very device and collection.
    expect(acme.collections.get(acmeInbox)!.syncKey).not.toBe(globex.collections.get(globexInbox)!.syncKey);
    const round = await intruder.sync(acmeInbox);
    expect(round.status).toBe(3);
    expect(round.added).toEqual([]);
    expect(subjects(acme, acmeInbox)).toEqual(['acme one', 'acme two']);
  });

  it('a Ping answers for its own tenant’s mail server only', async () => {
    await appendTo(dovecot.imapPort, globexUser, ['globex two']);
    const pings = Promise.all([
      acme.send('Ping', pingBody(2, acmeInbox)),
      globex.send('Ping', pingBody(2, globexInbox)),
    ]);
    // While acme's Ping waits, its lease and wait marker are acme's alone: initech, on the very same mail account
    // with the same login and DeviceId, has none.
    const user = { tenant: 'acme', user: acmeUser.email };
    for (let i = 0; i < 100 && !(await server.state.getLease(user)); i++) await new Promise((r) => setTimeout(r, 10));
    expect(await server.state.getLease(user)).toBeDefined();
    expect((await server.state.readFeed(user)).map((e) => e.folder)).toContain(`device:${DEVICE_ID}`);
    expect(await server.state.getLease({ tenant: 'initech', user: acmeUser.email })).toBeUndefined();
    expect(await server.state.readFeed({ tenant: 'initech', user: acmeUser.email })).toEqual([]);
    const [onAcme, onGlobex] = await pings;
    expect(childText(onGlobex.body, 'Status')).toBe('2');
    expect(childText(onAcme.body, 'Status')).toBe('1');
    await globex.syncUntilDone(globexInbox);
    expect(subjects(globex, globexInbox)).toEqual(['globex one', 'globex two']);
  });
});

describe('two tenants on the same mail account, the same login and DeviceId', () => {
  it('shares the mailbox but no state: device, policy, hierarchy and sync keys, feed, leases', async () => {
    const acme = deviceOn('acme.sync.test', acmeUser);
    const acmeInbox = await inboxOf(acme);
    expect(subjects(acme, acmeInbox)).toEqual(['acme one', 'acme two']);
    const before = await server.state.getDevice(scope('initech'));
    expect(before).toBeUndefined();

    // The acme device's keys, presented to initech with the same credentials and DeviceId: not provisioned there.
    const initech = deviceOn('initech.sync.test', acmeUser);
    initech.policyKey = acme.policyKey;
    const refused = await initech.send(
      'FolderSync',
      el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', acme.hierarchyKey)]),
    );
    expect(['142', '144']).toContain(childText(refused.body, 'Status'));

    initech.policyKey = undefined;
    await initech.provision();
    expect(initech.policyKey).not.toBe(acme.policyKey);
    // acme's hierarchy key and sync key mean nothing to initech.
    const hierarchy = await initech.send(
      'FolderSync',
      el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', acme.hierarchyKey)]),
    );
    expect(childText(hierarchy.body, 'Status')).toBe('9');
    // With its own folder list (the same folders: the same mailbox), acme's sync key for the Inbox is unknown there.
    await initech.folderSync();
    expect(initech.folderByType(FolderType.Inbox).serverId).toBe(acmeInbox);
    initech.collections.set(acmeInbox, { syncKey: acme.collections.get(acmeInbox)!.syncKey, items: new Map() });
    expect((await initech.sync(acmeInbox)).status).toBe(3);
    // Its own sync from 0 works, on the same mailbox.
    initech.collections.delete(acmeInbox);
    await initech.syncUntilDone(acmeInbox);
    expect(subjects(initech, acmeInbox)).toEqual(['acme one', 'acme two']);
    // acme's device is untouched by all this.
    expect((await server.state.getDevice(scope('acme')))?.policyKey).toBe(acme.policyKey);
    expect((await acme.sync(acmeInbox)).status).toBe(1);
  });
});

describe('tenant resolution', () => {
  const basic = (login: string, password: string) => `Basic ${Buffer.from(`${login}:${password}`).toString('base64')}`;
  const options = (host: string, authorization?: string) =>
    server.fetch(`https://${host}/Microsoft-Server-ActiveSync`, {
      method: 'OPTIONS',
      headers: authorization ? { Authorization: authorization } : {},
    });

  it('falls back to the mail domain on a host no tenant owns', async () => {
    const res = await options('sync.example.net', basic(acmeUser.email, acmeUser.password));
    expect(res.status).toBe(200);
    expect(server.logs.at(-1)).toMatchObject({ cmd: 'OPTIONS', tenant: 'acme', http: 200 });
  });

  it('refuses with 401 (as a wrong password) when neither host nor mail domain names a tenant', async () => {
    const device = deviceOn('sync.example.net', { ...acmeUser, email: `${acmeUser.name}@initech.example` });
    device.autoProvision = false;
    const res = await device.send(
      'FolderSync',
      el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]),
    );
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Basic realm="ActiveSync"');
    expect(server.logs.at(-1)).toMatchObject({ http: 401, tenant: undefined });
    const autodiscover = await server.fetch('https://sync.example.net/autodiscover/autodiscover.xml', {
      method: 'POST',
      headers: {
        Authorization: basic(`${acmeUser.name}@initech.example`, acmeUser.password),
        'Content-Type': 'text/xml',
      },
      body: '',
    });
    expect(autodiscover.status).toBe(401);
    // OPTIONS without credentials is the Basic challenge, on any host.
    const anonymous = await options('sync.example.net');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toBe('Basic realm="ActiveSync"');
  });

  it('holds each request to its own tenant’s MAX_REQUEST_BYTES', async () => {
    const body = new Uint8Array(4096);
    const post = (host: string) =>
      server.fetch(
        `https://${host}/Microsoft-Server-ActiveSync?Cmd=Sync&User=${acmeUser.name}&DeviceId=${DEVICE_ID}&DeviceType=iPhone`,
        {
          method: 'POST',
          headers: {
            Authorization: basic(acmeUser.email, acmeUser.password),
            'MS-ASProtocolVersion': '14.1',
            'Content-Type': 'application/vnd.ms-sync.wbxml',
          },
          body,
        },
      );
    expect((await post('initech.sync.test')).status).toBe(413);
    // The same bytes to acme (4 MiB for WBXML) pass the size check; the device has no policy key, so the answer is
    // Status 142, before the body (not WBXML) is decoded.
    const acme = await post('acme.sync.test');
    expect(acme.status).toBe(200);
    expect(decodeWbxml(new Uint8Array(await acme.arrayBuffer())).children[0]?.text).toBe('142');
  });

  it('answers Autodiscover with the resolved tenant', async () => {
    const res = await server.fetch('https://globex.sync.test/autodiscover/autodiscover.xml', {
      method: 'POST',
      headers: { Authorization: basic(globexUser.email, globexUser.password), 'Content-Type': 'text/xml' },
      body: '',
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('<Url>https://globex.sync.test/Microsoft-Server-ActiveSync</Url>');
    expect(server.logs.at(-1)).toMatchObject({ cmd: 'Autodiscover', tenant: 'globex', status: 1 });
  });
});

describe('Bearer tokens (XOAUTH2 to IMAP and SMTP)', () => {
  it('syncs with a JWT whose email claim names the user, checked by Dovecot through XOAUTH2', async () => {
    const token = await jwt({ email: globexUser.email, sub: 'x' });
    idp.issued.set(token, globexUser.email);
    const device = deviceOn('hooli.sync.test', globexUser);
    device.authorization = `Bearer ${token}`;
    const inbox = await inboxOf(device);
    expect(subjects(device, inbox)).toEqual(['globex one', 'globex two']);
    expect(server.logs.filter((l) => l.cmd === 'Sync').at(-1)).toMatchObject({
      tenant: 'hooli',
      user: globexUser.email,
      http: 200,
    });
    // The token is never logged.
    expect(JSON.stringify(server.logs)).not.toContain(token);
  });

  it('refuses an opaque token and one whose configured claim is missing: tokens are verified here first', async () => {
    const opaque = `opaque-${Math.random().toString(36).slice(2)}`;
    // The mail server would take both; the app does not ask it.
    idp.issued.set(opaque, globexUser.email);
    const noClaim = await jwt({ upn: globexUser.email });
    idp.issued.set(noClaim, globexUser.email);
    const before = idp.introspected;
    for (const token of [opaque, noClaim]) {
      const device = deviceOn('hooli.sync.test', globexUser);
      device.autoProvision = false;
      device.authorization = `Bearer ${token}`;
      expect((await device.send('Provision')).status).toBe(401);
    }
    expect(idp.introspected).toBe(before);
  });

  it('sends mail over SMTP with AUTH XOAUTH2 and the device’s token', async () => {
    const token = await jwt({ email: globexUser.email });
    idp.issued.set(token, globexUser.email);
    const device = deviceOn('hooli.sync.test', globexUser);
    device.authorization = `Bearer ${token}`;
    const mime = `From: ${globexUser.email}\r\nTo: someone@example.org\r\nSubject: via xoauth2\r\n\r\nHello.\r\n`;
    const res = await compose(device, 'SendMail', mime, { saveInSent: false });
    expect(composeStatus(res)).toBeUndefined();
    expect(submitted.at(-1)).toEqual({ user: globexUser.email, token, to: ['someone@example.org'] });
  });

  it('AUTH_MODE: a bearer tenant refuses Basic with a Bearer challenge; "both" takes either', async () => {
    const basicOnBearer = deviceOn('hooli.sync.test', globexUser);
    basicOnBearer.autoProvision = false;
    const res = await basicOnBearer.send(
      'FolderSync',
      el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]),
    );
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="ActiveSync"');

    const token = await jwt({ upn: globexUser.email });
    idp.issued.set(token, globexUser.email);
    const bearerOnBoth = deviceOn('globex.sync.test', globexUser);
    bearerOnBoth.authorization = `Bearer ${token}`;
    const inbox = await inboxOf(bearerOnBoth);
    expect(subjects(bearerOnBoth, inbox)).toEqual(['globex one', 'globex two']);

    // Basic-only acme: a token is not a password.
    const bearerOnBasic = deviceOn('acme.sync.test', acmeUser);
    bearerOnBasic.autoProvision = false;
    bearerOnBasic.authorization = `Bearer ${token}`;
    expect((await bearerOnBasic.send('Provision')).status).toBe(401);
  });

  it('pushes to a Bearer device: the tenant’s watcher logs in as its master user', async () => {
    const token = await jwt({ email: globexUser.email });
    idp.issued.set(token, globexUser.email);
    const device = deviceOn('hooli.sync.test', globexUser);
    device.authorization = `Bearer ${token}`;
    const inbox = await inboxOf(device);
    const ping = device.send('Ping', pingBody(8, inbox));
    const user = { tenant: 'hooli', user: globexUser.email };
    for (let i = 0; i < 200 && !(await server.state.getLease(user)); i++) await new Promise((r) => setTimeout(r, 10));
    expect((await server.state.getLease(user))?.credential).toBeUndefined();
    // After the Ping's own check: only the watcher (IDLE as syncmaster for this user) can see this message.
    await appendTo(dovecot.imapPort, globexUser, ['pushed']);
    const res = await ping;
    expect(childText(res.body, 'Status')).toBe('2');
    await device.syncUntilDone(inbox);
    expect(subjects(device, inbox)).toContain('pushed');
  });

  it('refuses a token the identity provider did not sign, with 401, without asking the mail server', async () => {
    const forged = await jwt({ email: globexUser.email }, (await generateKeyPair('RS256')).privateKey);
    idp.issued.set(forged, globexUser.email);
    const before = idp.introspected;
    const device = deviceOn('hooli.sync.test', globexUser);
    device.autoProvision = false;
    device.authorization = `Bearer ${forged}`;
    const res = await device.send('Provision');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="ActiveSync"');
    expect(idp.introspected).toBe(before);
  });

  it('keeps the mail server’s own check: a signed token it does not vouch for is refused', async () => {
    const device = deviceOn('hooli.sync.test', globexUser);
    device.autoProvision = false;
    device.authorization = `Bearer ${await jwt({ email: globexUser.email, revoked: true })}`;
    expect((await device.send('Provision')).status).toBe(401);
  });
  // Issue 17 item 16: one credentials object, token included, wherever the user's login is used.
  it('GAL Search and ResolveRecipients with free/busy reach hooli’s Radicale with the device’s token', async () => {
    const token = await jwt({ email: globexUser.email });
    idp.issued.set(token, globexUser.email);
    const device = deviceOn('hooli.sync.test', globexUser);
    device.authorization = `Bearer ${token}`;
    await device.folderSync();
    const search = await device.command(
      'Search',
      el('Search', 'Search', [
        el('Search', 'Store', [el('Search', 'Name', 'GAL'), el('Search', 'Query', 'colleague')]),
      ]),
    );
    const store = child(child(search, 'Response'), 'Store');
    expect(childText(store, 'Status')).toBe('1');
    const found = children(store, 'Result').map((r) => childText(child(r, 'Properties'), 'EmailAddress', 'Gal'));
    expect(found).toEqual([colleague.email]);

    const resolved = await device.command(
      'ResolveRecipients',
      el('ResolveRecipients', 'ResolveRecipients', [
        el('ResolveRecipients', 'To', colleague.email),
        el('ResolveRecipients', 'Options', [
          el('ResolveRecipients', 'Availability', [
            el('ResolveRecipients', 'StartTime', '2026-06-01T09:00:00.000Z'),
            el('ResolveRecipients', 'EndTime', '2026-06-01T12:00:00.000Z'),
          ]),
        ]),
      ]),
    );
    const recipient = child(child(resolved, 'Response'), 'Recipient');
    expect(childText(recipient, 'DisplayName')).toBe('Hooli Colleague');
    const availability = child(recipient, 'Availability');
    expect(childText(availability, 'Status')).toBe('1');
    // 09:00–12:00 in half hours: the colleague's public calendar is busy 10:00–11:00.
    expect(childText(availability, 'MergedFreeBusy')).toBe('002200');
    expect(radicaleLogins()).toContain(globexUser.email);
    expect(JSON.stringify(server.logs)).not.toContain(token);
  });

  it('MeetingResponse with a token: the calendar copy in hooli’s Radicale, the REPLY over XOAUTH2', async () => {
    const token = await jwt({ email: globexUser.email });
    idp.issued.set(token, globexUser.email);
    const organizer = 'organizer@partner.test';
    const uid = `meet-${randomUUID()}`;
    await appendSources(dovecot.imapPort, globexUser, [
      meetingInvitation(organizer, globexUser.email, uid, 'Hooli planning'),
    ]);
    const device = new TestDevice(server, globexUser, 'HOOLIMEETING01', '16.1');
    device.origin = 'https://hooli.sync.test';
    device.authorization = `Bearer ${token}`;
    const inbox = await inboxOf(device);
    const [requestId] = [...device.items(inbox)].find(([, d]) => itemText(d, 'Subject', 'Email') === 'Hooli planning')!;
    const answer = await acceptMeeting(device, inbox, requestId, 'Yes');
    expect(childText(child(answer, 'Result'), 'Status')).toBe('1');
    // The REPLY went out through the XOAUTH2 submission server with the device's token.
    expect(submitted.at(-1)).toEqual({ user: globexUser.email, token, to: [organizer] });
    // The accepted copy is in the user's calendar on hooli's Radicale, written there with the token.
    const calendarUrl = new URL(`${encodeURIComponent(globexUser.email)}/calendar/`, hooliDav.url).href;
    const listing = await davRequest(hooliDavServices, globexUser, 'PROPFIND', calendarUrl, {
      depth: '1',
      body: '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getetag/></prop></propfind>',
    });
    const hrefs = [...(await listing.text()).matchAll(/<(?:\w+:)?href>([^<]+\.ics)<\/(?:\w+:)?href>/g)];
    expect(hrefs).toHaveLength(1);
    const copy = (await (await davRequest(hooliDavServices, globexUser, 'GET', hrefs[0]![1]!)).text()).replace(
      /\r?\n[ \t]/g,
      '',
    );
    expect(copy).toContain(`UID:${uid}`);
    expect(copy).toMatch(new RegExp(`^ATTENDEE[^\\n]*PARTSTAT=ACCEPTED[^\\n]*:mailto:${globexUser.email}`, 'mi'));
    expect(radicaleLogins()).toContain(globexUser.email);
  });
});
