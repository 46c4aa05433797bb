/**
 * The ActiveSync HTTP layer end to end: the Hono app, passwords checked against the real Dovecot, commands from a
 * registry built for the test (the shipped commands arrive with later issues).
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { buildApp } from '../../src/app/build.ts';
import { freshImapSessions } from '../../src/backends/imap/sessions.ts';
import { CommandRegistry } from '../../src/commands/registry.ts';
import { loadConfig, type ServerConfig } from '../../src/config.ts';
import type { LogEntry } from '../../src/log.ts';
import { openSqliteStateStore } from '../../src/state/sqlite-node.ts';
import type { StateStore } from '../../src/state/types.ts';
import { decodeWbxml } from '../../src/wbxml/decoder.ts';
import { encodeWbxml } from '../../src/wbxml/encoder.ts';
import { el, childText } from '../../src/wbxml/tree.ts';
import { freePort } from '../services/process.ts';
import { createUser } from '../services/seed.ts';
import type { TestUser } from '../services/types.ts';

const services = inject('services');
const BASE = 'https://eas.example.test/Microsoft-Server-ActiveSync';
const WBXML = 'application/vnd.ms-sync.wbxml';

function basic(login: string, password: string): string {
  return `Basic ${Buffer.from(`${login}:${password}`).toString('base64')}`;
}

function query(cmd: string, extra = ''): string {
  return `${BASE}?Cmd=${cmd}&User=x&DeviceId=HTTPTEST01&DeviceType=iPhone${extra}`;
}

function configFor(imapPort: number, overrides: Record<string, string> = {}): ServerConfig {
  return loadConfig({
    IMAP_HOST: services.imap.host,
    IMAP_PORT: String(imapPort),
    IMAP_SECURE: 'false',
    MAX_REQUEST_BYTES: '65536',
    TENANT: 'http-test',
    // The HTTP layer alone: its test commands run without provisioning (test/e2e/provision.test.ts covers that).
    PROVISIONING: 'loose',
    ...overrides,
  });
}

/** Commands for this test only: Ping echoes its body, FolderSync and Settings fail in the handler. */
function testRegistry(): CommandRegistry {
  const registry = new CommandRegistry();
  registry.register({
    name: 'Ping',
    responseRoot: { ns: 'Ping', tag: 'Ping' },
    serverErrorStatus: 5,
    async handle({ body, request, user }) {
      const heartbeat = body ? childText(body, 'HeartbeatInterval') : undefined;
      return {
        kind: 'wbxml',
        body: el('Ping', 'Ping', [
          el('Ping', 'Status', '1'),
          el('Ping', 'HeartbeatInterval', heartbeat ?? 'none'),
          el('Ping', 'Folder', `${user.login}/${request.deviceId}/${request.version}`),
        ]),
      };
    },
  });
  registry.register({
    name: 'FolderSync',
    responseRoot: { ns: 'FolderHierarchy', tag: 'FolderSync' },
    serverErrorStatus: 6,
    async handle() {
      throw new Error('backend exploded at /secret/path');
    },
  });
  registry.register({
    name: 'Settings',
    async handle() {
      throw new TypeError('no server-error status for this one');
    },
  });
  return registry;
}

interface Harness {
  fetch: (url: string, init?: RequestInit) => Promise<Response>;
  logs: LogEntry[];
  state: StateStore;
}

function harness(imapPort = services.imap.port): Harness {
  const logs: LogEntry[] = [];
  const state = openSqliteStateStore(':memory:').store;
  const { app } = buildApp({
    settings: configFor(imapPort),
    imapSessions: (imap) => freshImapSessions(imap),
    commands: testRegistry(),
    state,
    log: (e) => logs.push(e),
  });
  return { fetch: async (url, init) => app.request(url, init), logs, state };
}

let user: TestUser;
let h: Harness;
let auth: string;

beforeAll(() => {
  user = createUser(services);
  h = harness();
  auth = basic(user.email, user.password);
});

function post(url: string, body: Uint8Array | string | null, headers: Record<string, string> = {}): Promise<Response> {
  return h.fetch(url, {
    method: 'POST',
    body: body as BodyInit | null,
    headers: { Authorization: auth, 'Content-Type': WBXML, 'MS-ASProtocolVersion': '14.1', ...headers },
  });
}

const pingBody = encodeWbxml(el('Ping', 'Ping', [el('Ping', 'HeartbeatInterval', '480')]));

describe('OPTIONS', () => {
  // Changed by issue 16: without credentials OPTIONS is 401 with the Basic challenge, as Exchange answers and
  // Microsoft's Remote Connectivity Analyzer expects (it was 200).
  it('answers without credentials 401 with the Basic challenge, as Exchange does', async () => {
    const res = await h.fetch(BASE, { method: 'OPTIONS' });
    expect(res.status).toBe(401);
    expect(res.headers.get('WWW-Authenticate')).toMatch(/^Basic realm="/);
    expect(res.headers.get('MS-ASProtocolVersions')).toBeNull();
    expect(h.logs.at(-1)).toMatchObject({ cmd: 'OPTIONS', http: 401 });
  });

  it('answers with credentials the versions, the registered commands and the Allow/Public headers', async () => {
    const res = await h.fetch(BASE, { method: 'OPTIONS', headers: { Authorization: auth } });
    expect(res.status).toBe(200);
    expect(res.headers.get('MS-ASProtocolVersions')).toBe('12.0,12.1,14.0,14.1,16.0,16.1');
    expect(res.headers.get('MS-ASProtocolCommands')).toBe('Ping,FolderSync,Settings');
    expect(res.headers.get('MS-Server-ActiveSync')).toBe('16.1');
    expect(res.headers.get('Allow')).toContain('OPTIONS');
    expect(res.headers.get('Public')).toContain('POST');
  });

  it('checks credentials that are sent, against the IMAP server', async () => {
    const res = await h.fetch(BASE, { method: 'OPTIONS', headers: { Authorization: auth } });
    expect(res.status).toBe(200);
  });

  it('is routed whatever the case of the path', async () => {
    const res = await h.fetch('https://eas.example.test/microsoft-server-activesync', {
      method: 'OPTIONS',
      headers: { Authorization: auth },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('MS-ASProtocolVersions')).toContain('16.1');
  });
});

describe('POST', () => {
  it('runs a registered command for a user whose password Dovecot accepts', async () => {
    const res = await post(query('Ping'), pingBody);
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toBe(WBXML);
    const reply = decodeWbxml(new Uint8Array(await res.arrayBuffer()));
    expect(childText(reply, 'HeartbeatInterval')).toBe('480');
    expect(childText(reply, 'Folder')).toBe(`${user.email}/HTTPTEST01/14.1`);
  });

  it('records the device that sent the request, with what the request line says about it', async () => {
    await post(query('Ping'), pingBody, { 'User-Agent': 'Apple-iPhone15C2/2104.108' });
    const device = await h.state.getDevice({ tenant: 'http-test', user: user.email, deviceId: 'HTTPTEST01' });
    expect(device).toMatchObject({
      deviceType: 'iPhone',
      protocolVersion: '14.1',
      userAgent: 'Apple-iPhone15C2/2104.108',
      provisioning: 'none',
      wipe: 'none',
    });
    expect(Date.now() - device!.lastSeen).toBeLessThan(60_000);
  });

  it('accepts the login forms user, user@domain and DOMAIN\\user', async () => {
    for (const login of [user.name, user.email, `EXAMPLE\\${user.name}`]) {
      const res = await post(query('Ping'), pingBody, { Authorization: basic(login, user.password) });
      expect(res.status, login).toBe(200);
    }
  });

  it('reads the base64-packed query (version, command, device and parameters in one blob)', async () => {
    // MS-ASHTTP §2.2.1.1.1.1: version 141, Ping (18), locale 0x0409, DeviceId, no policy key, DeviceType.
    const deviceId = Buffer.from('B64DEVICE');
    const deviceType = Buffer.from('Android');
    const packed = Buffer.concat([
      Buffer.from([141, 18, 0x09, 0x04, deviceId.length]),
      deviceId,
      Buffer.from([0, deviceType.length]),
      deviceType,
    ]);
    const res = await h.fetch(`${BASE}?${packed.toString('base64')}`, {
      method: 'POST',
      body: pingBody,
      headers: { Authorization: auth, 'Content-Type': WBXML },
    });
    expect(res.status).toBe(200);
    const reply = decodeWbxml(new Uint8Array(await res.arrayBuffer()));
    expect(childText(reply, 'Folder')).toBe(`${user.email}/B64DEVICE/14.1`);
  });

  it('accepts an empty body (an empty Ping repeats the last one)', async () => {
    const res = await post(query('Ping'), null);
    expect(res.status).toBe(200);
    expect(childText(decodeWbxml(new Uint8Array(await res.arrayBuffer())), 'HeartbeatInterval')).toBe('none');
  });

  it('answers 501 for a command the server does not implement, 400 for one that does not exist', async () => {
    expect((await post(query('Search'), pingBody)).status).toBe(501);
    expect((await post(query('Explode'), pingBody)).status).toBe(400);
  });

  it('answers 400 to malformed WBXML, a broken query and an unsupported version', async () => {
    const truncated = pingBody.slice(0, pingBody.length - 2);
    expect((await post(query('Ping'), truncated)).status).toBe(400);
    expect((await post(query('Ping'), new Uint8Array([0x03, 0x01, 0x6a, 0x00, 0x45, 0x99]))).status).toBe(400);
    expect((await post(`${BASE}?Cmd=Ping&User=x&DeviceType=iPhone`, pingBody)).status).toBe(400);
    const old = await post(query('Ping'), pingBody, { 'MS-ASProtocolVersion': '2.5' });
    expect(old.status).toBe(400);
    expect(old.headers.get('MS-ASProtocolVersions')).toBe('12.0,12.1,14.0,14.1,16.0,16.1');
  });

  it('answers 413 to a body beyond the size limit', async () => {
    const res = await post(query('Ping'), new Uint8Array(70_000));
    expect(res.status).toBe(413);
  });

  it("turns a handler's failure into the command's server-error status, with no internals in the response", async () => {
    const res = await post(
      query('FolderSync'),
      encodeWbxml(el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')])),
    );
    expect(res.status).toBe(200);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const reply = decodeWbxml(bytes);
    expect(reply.tag).toBe('FolderSync');
    expect(childText(reply, 'Status')).toBe('6');
    expect(Buffer.from(bytes).toString('latin1')).not.toContain('secret');
  });

  it('answers HTTP 500 with an empty body when a command has no server-error status', async () => {
    const res = await post(query('Settings'), encodeWbxml(el('Settings', 'Settings', [])));
    expect(res.status).toBe(500);
    expect(await res.text()).toBe('');
  });

  it('writes one JSON log line per request with the request facts and no credentials', async () => {
    h.logs.length = 0;
    await post(query('Ping'), pingBody);
    await post(
      query('FolderSync'),
      encodeWbxml(el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')])),
    );
    expect(h.logs).toHaveLength(2);
    const [ping, folderSync] = h.logs;
    expect(ping).toMatchObject({
      tenant: 'http-test',
      user: user.email,
      cmd: 'Ping',
      deviceId: 'HTTPTEST01',
      deviceType: 'iPhone',
      version: '14.1',
      http: 200,
      status: 1,
    });
    expect(typeof ping!.ms).toBe('number');
    expect(Date.parse(String(ping!.time))).not.toBeNaN();
    expect(folderSync).toMatchObject({
      cmd: 'FolderSync',
      http: 200,
      status: 6,
      error: 'Error: backend exploded at /secret/path',
    });
    const text = h.logs.map((e) => JSON.stringify(e)).join('\n');
    expect(text).not.toContain(user.password);
    expect(text).not.toContain(auth.slice(6));
  });
});

describe('GET and other methods', () => {
  it('GET shows a short HTML page about the service', async () => {
    const res = await h.fetch(BASE);
    expect(res.status).toBe(200);
    expect(res.headers.get('Content-Type')).toContain('text/html');
    const html = await res.text();
    expect(html).toContain('Exchange ActiveSync');
    expect(html).not.toMatch(/imap|dovecot|node|hono|version/i);
  });

  it('answers 405 to other methods and 404 elsewhere', async () => {
    expect((await h.fetch(BASE, { method: 'PUT', body: 'x' })).status).toBe(405);
    expect((await h.fetch('https://eas.example.test/elsewhere')).status).toBe(404);
  });
});

describe('when the IMAP server cannot be reached', () => {
  it('answers 503 with Retry-After rather than asking for the password again', async () => {
    const closedPort = await freePort();
    const down = harness(closedPort);
    const res = await down.fetch(query('Ping'), {
      method: 'POST',
      body: pingBody,
      headers: { Authorization: auth, 'Content-Type': WBXML, 'MS-ASProtocolVersion': '14.1' },
    });
    expect(res.status).toBe(503);
    expect(res.headers.get('Retry-After')).toBe('30');
    expect(down.logs.find((e) => e.event === undefined)).toMatchObject({ http: 503, cmd: 'Ping' });
  });
});

// Last, so that a production Dovecot (with its per-IP penalty after failed logins) would not slow the rest.
describe('authentication failures', () => {
  it('answers 401 with a Basic challenge to a missing, malformed or wrong password', async () => {
    for (const authorization of [undefined, 'Basic !!!', 'Bearer abc', basic(user.email, 'wrong-password')]) {
      const res = await h.fetch(query('Ping'), {
        method: 'POST',
        body: pingBody,
        headers: {
          'Content-Type': WBXML,
          'MS-ASProtocolVersion': '14.1',
          ...(authorization ? { Authorization: authorization } : {}),
        },
      });
      expect(res.status, authorization).toBe(401);
      expect(res.headers.get('WWW-Authenticate')).toMatch(/^Basic realm="/);
    }
    const options = await h.fetch(BASE, {
      method: 'OPTIONS',
      headers: { Authorization: basic(user.email, 'wrong-password') },
    });
    expect(options.status).toBe(401);
    expect(JSON.stringify(h.logs)).not.toContain('wrong-password');
  });
});
