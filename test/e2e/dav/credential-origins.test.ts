/**
 * A user's login goes only to the tenant's DAV origins (issue 17, item 4): the origins of CALDAV_URL, CARDDAV_URL
 * and GAL_URL (and DAV_CREDENTIAL_ORIGINS). A directory entry in the real Radicale whose FBURL points at a listener
 * of this test's own, a DAV server whose principal link points there, and a redirect there: the listener receives
 * no Authorization header (in fact no request at all).
 *
 * The "DAV server" that links elsewhere is the real Radicale behind a small proxy of this test that rewrites the
 * current-user-principal href of its answers, or answers one path with a redirect: Radicale never links off-origin
 * by itself.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CredentialOriginError, DavItemBackend } from '../../../src/backends/dav/backend.ts';
import { FolderType } from '../../../src/backends/types.ts';
import { child, children, childText, el } from '../../../src/wbxml/tree.ts';
import { TestDevice, testServer } from '../../device/device.ts';
import { createUser, makeEvent, seedAddressBook, seedCalendar } from '../../services/seed.ts';
import type { TestUser } from '../../services/types.ts';

const services = inject('services');

/** What the outside listener received. */
const received: { method: string; url: string; headers: IncomingHttpHeaders }[] = [];
let outside: Server;
let outsideOrigin: string;
let proxy: Server;
let proxyOrigin: string;

async function listen(s: Server): Promise<string> {
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

/**
 * Forwards to Radicale. `/linked/…` is Radicale with every current-user-principal href moved to the outside origin;
 * `/redirect/…` answers 301 to the outside origin.
 */
function startProxy(): Server {
  // Radicale's plain port: this proxy is an http server of the test's own on loopback (the tenant below allows it).
  const radicale = new URL(services.davPlainUrl);
  return createServer((req, res) => {
    const path = req.url ?? '/';
    if (path.startsWith('/redirect/')) {
      res.writeHead(301, { Location: `${outsideOrigin}/elsewhere/` }).end();
      return;
    }
    const linked = path.startsWith('/linked/');
    const upstream = httpRequest(
      {
        host: radicale.hostname,
        port: radicale.port,
        method: req.method,
        path: linked ? path.slice('/linked'.length) : path,
        headers: { ...req.headers, host: radicale.host, 'accept-encoding': 'identity' },
      },
      (up) => {
        const chunks: Buffer[] = [];
        up.on('data', (c: Buffer) => chunks.push(c));
        up.on('end', () => {
          let body = Buffer.concat(chunks).toString('utf8');
          if (linked)
            body = body.replace(
              /(current-user-principal>\s*<(?:\w+:)?href>)([^<]*)/g,
              (_, open: string, href: string) => `${open}${outsideOrigin}${href}`,
            );
          const headers = { ...up.headers };
          delete headers['content-length'];
          delete headers['transfer-encoding'];
          res.writeHead(up.statusCode ?? 502, headers).end(body);
        });
      },
    );
    req.pipe(upstream);
  });
}

let user: TestUser;

beforeAll(async () => {
  outside = createServer((req, res) => {
    received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    // What a hostile server would want: a 401 challenge, so that a client sends its login.
    res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="x"' }).end();
  });
  outsideOrigin = await listen(outside);
  proxy = startProxy();
  proxyOrigin = await listen(proxy);
  user = createUser(services);
});

afterAll(() => {
  outside?.close();
  proxy?.close();
});

describe('a directory entry whose FBURL is on another origin', () => {
  it('is not read: ResolveRecipients answers 163 for it, and the listener receives nothing', async () => {
    const owner = createUser(services);
    const adaOwner = createUser(services);
    const pub = await seedCalendar(
      services,
      adaOwner,
      'public-calendar',
      [makeEvent({ summary: 'Busy', start: '2026-06-01T10:00:00', tz: 'UTC' })],
      { displayName: 'Public' },
    );
    const card = (uid: string, name: string, email: string, fburl: string): string =>
      [
        'BEGIN:VCARD',
        'VERSION:3.0',
        `UID:${uid}`,
        `N:${name};;;;`,
        `FN:${name}`,
        `EMAIL;TYPE=INTERNET:${email}`,
        `FBURL:${fburl}`,
        'END:VCARD',
        '',
      ].join('\r\n');
    const directory = await seedAddressBook(
      services,
      owner,
      'directory',
      [
        card('eve', 'Eve Outside', 'eve@example.test', `${outsideOrigin}/calendars/eve/`),
        card('ada', 'Ada Inside', 'ada@example.test', pub.collectionUrl),
      ],
      { displayName: 'Directory' },
    );
    const server = testServer(services, { GAL_URL: directory.collectionUrl });
    const device = new TestDevice(server, user);
    await device.folderSync();

    const body = await device.command(
      'ResolveRecipients',
      el('ResolveRecipients', 'ResolveRecipients', [
        el('ResolveRecipients', 'To', 'eve@example.test'),
        el('ResolveRecipients', 'To', 'ada@example.test'),
        el('ResolveRecipients', 'Options', [
          el('ResolveRecipients', 'Availability', [
            el('ResolveRecipients', 'StartTime', '2026-06-01T09:00:00.000Z'),
            el('ResolveRecipients', 'EndTime', '2026-06-01T11:00:00.000Z'),
          ]),
        ]),
      ]),
    );
    const [eve, adaFree] = children(body, 'Response').map((r) => child(child(r, 'Recipient'), 'Availability'));
    expect(childText(eve, 'Status')).toBe('163');
    // The tenant's own calendar server still answers under the user's login.
    expect(childText(adaFree, 'Status')).toBe('1');
    expect(childText(adaFree, 'MergedFreeBusy')).toBe('0022');
    expect(received).toEqual([]);
  });
});

describe('a DAV server that links or redirects to another origin', () => {
  it('gets no login there: a principal on another origin leaves the calendars out, the listener receives nothing', async () => {
    await seedCalendar(services, user, 'linked-calendar', [], { displayName: 'Linked' });
    // Through the proxy unchanged, the user's calendars are listed: the proxy itself is transparent.
    const direct = new DavItemBackend(`${proxyOrigin}/`, 'caldav', { login: user.email, password: user.password });
    expect((await direct.listFolders()).map((f) => f.displayName)).toContain('Linked');

    const linked = new DavItemBackend(`${proxyOrigin}/linked/`, 'caldav', {
      login: user.email,
      password: user.password,
    });
    await expect(linked.listFolders()).rejects.toBeInstanceOf(CredentialOriginError);

    // A device of a tenant whose CALDAV_URL is that server: FolderSync answers, without the calendar folders.
    const server = testServer(services, {
      CALDAV_URL: `${proxyOrigin}/linked/`,
      ALLOW_PLAINTEXT_BACKENDS: 'true',
    });
    const device = new TestDevice(server, createUser(services));
    await device.folderSync();
    expect([...device.folders.values()].some((f) => f.type === FolderType.Calendar)).toBe(false);
    expect(device.folders.size).toBeGreaterThan(0);
    expect(received).toEqual([]);
  });

  it('does not follow a redirect to another origin with the login', async () => {
    const redirected = new DavItemBackend(`${proxyOrigin}/redirect/`, 'carddav', {
      login: user.email,
      password: user.password,
    });
    await expect(redirected.listFolders()).rejects.toBeInstanceOf(CredentialOriginError);
    expect(received).toEqual([]);
  });

  it('a token goes nowhere else either', async () => {
    const redirected = new DavItemBackend(`${proxyOrigin}/redirect/`, 'caldav', {
      login: user.email,
      password: '',
      accessToken: 'secret-token',
    });
    await expect(redirected.listFolders()).rejects.toBeInstanceOf(CredentialOriginError);
    expect(received).toEqual([]);
  });
});
