/**
 * TLS to the backends (issue 17 items 6 and 7), against real Dovecot: IMAP and ManageSieve with `secure` false upgrade
 * with STARTTLS and refuse, before any password is sent, a server that does not offer it, unless plaintext was
 * configured (ALLOW_PLAINTEXT_BACKENDS); http:// DAV URLs need the same setting. The refusing server is a second
 * Dovecot of this file's own with `ssl = no` (it offers no STARTTLS at all, as an attacker stripping it would make it
 * look).
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { imapClient } from '../../src/backends/imap/connection.ts';
import { ManageSieveError, ManageSieveSession, withManageSieve } from '../../src/backends/sieve/managesieve.ts';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { child, childText, el } from '../../src/wbxml/tree.ts';
import { TestDevice, testServer } from '../device/device.ts';
import { makeUser } from '../services/accounts.ts';
import { isRoot } from '../services/apt.ts';
import { type DovecotService, startDovecot } from '../services/dovecot.ts';
import { createUser, seedCalendar } from '../services/seed.ts';

const services = inject('services');

/** Dovecot without TLS, with one user of its own. */
let plain: DovecotService;
let plainDir: string;
const plainUser = makeUser(`p${Date.now().toString(36)}`);

beforeAll(async () => {
  plainDir = mkdtempSync('/tmp/ase-plain-');
  // Dovecot's auth and login processes run as their own users and must read the users' files.
  chmodSync(plainDir, 0o755);
  plain = await startDovecot(plainDir, [plainUser], isRoot(), { tls: false });
});

afterAll(async () => {
  await plain?.stop();
  rmSync(plainDir, { recursive: true, force: true });
});

/** The Dovecot log lines of the shared services that name `login`. */
function dovecotLoginLines(login: string): string[] {
  return readFileSync(`${services.dir}/dovecot/dovecot.log`, 'utf8')
    .split('\n')
    .filter((l) => l.includes(`user=<${login}>`) && /Login:/.test(l));
}

describe('IMAP with IMAP_SECURE=false', () => {
  it('upgrades with STARTTLS and checks the certificate against the test CA', async () => {
    const user = createUser(services);
    const client = imapClient(
      { host: services.imap.host, port: services.imap.port, secure: false },
      { user: user.email, password: user.password },
    );
    await client.connect();
    expect(client.secureConnection).toBe(true);
    await client.logout();
  });

  it('refuses a server that offers no STARTTLS before sending the password', async () => {
    const client = imapClient(
      { host: '127.0.0.1', port: plain.imapPort, secure: false },
      { user: plainUser.email, password: plainUser.password },
    );
    client.on('error', () => undefined);
    const err = (await client.connect().then(
      () => undefined,
      (e: unknown) => e,
    )) as Error & { tlsFailed?: boolean };
    expect(err).toBeInstanceOf(Error);
    expect(err.tlsFailed).toBe(true);
    expect(err.message).toMatch(/STARTTLS/);
    // The server never saw a login attempt.
    const log = readFileSync(`${plainDir}/dovecot/dovecot.log`, 'utf8');
    expect(log).not.toContain(`user=<${plainUser.email}>`);
  });

  it('a device of a server whose IMAP offers no STARTTLS gets 503, and the log line says why', async () => {
    const server = testServer(services, { IMAP_HOST: '127.0.0.1', IMAP_PORT: String(plain.imapPort) });
    const device = new TestDevice(server, plainUser);
    device.autoProvision = false;
    const res = await device.send(
      'FolderSync',
      el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]),
    );
    expect(res.status).toBe(503);
    const errors = server.logs.map((l) => String((l as { error?: unknown }).error ?? ''));
    expect(errors.join('\n')).toMatch(/does not support STARTTLS.*IMAP_SECURE=false.*ALLOW_PLAINTEXT_BACKENDS/);
    expect(JSON.stringify(server.logs)).not.toContain(plainUser.password);
  });

  it('with ALLOW_PLAINTEXT_BACKENDS=true the same server is used in plaintext', async () => {
    const server = testServer(services, {
      IMAP_HOST: '127.0.0.1',
      IMAP_PORT: String(plain.imapPort),
      ALLOW_PLAINTEXT_BACKENDS: 'true',
    });
    const device = new TestDevice(server, plainUser);
    const body = await device.folderSync();
    expect(childText(body, 'Status')).toBe('1');
    const log = readFileSync(`${plainDir}/dovecot/dovecot.log`, 'utf8');
    expect(log).toMatch(new RegExp(`Login: user=<${plainUser.email.replace(/\./g, '\\.')}>`));
  });

  it('a device session over the TLS Dovecot logs in over TLS (Dovecot says so)', async () => {
    const user = createUser(services);
    const device = new TestDevice(testServer(services), user);
    expect(childText(await device.folderSync(), 'Status')).toBe('1');
    const lines = dovecotLoginLines(user.email);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line).toMatch(/\bTLS\b/);
  });
});

describe('ManageSieve (RFC 5804 §2.2 STARTTLS)', () => {
  it('upgrades with STARTTLS by default and reads the capabilities again', async () => {
    const session = await ManageSieveSession.open({ ...services.sieve, secure: false });
    try {
      expect(session.encrypted).toBe(true);
      // Dovecot offers STARTTLS only before the upgrade; the list kept is the one read over TLS.
      expect(session.capabilities.has('STARTTLS')).toBe(false);
      expect(session.capabilities.get('SASL')).toMatch(/PLAIN/i);
    } finally {
      await session.logout();
    }
  });

  it('logs in and stores a script over STARTTLS (Dovecot logs the login as TLS)', async () => {
    const user = createUser(services);
    await withManageSieve({ ...services.sieve, secure: false }, { login: user.email, password: user.password }, (s) =>
      s.putScript('probe', 'keep;\r\n'),
    );
    const lines = readFileSync(`${services.dir}/dovecot/dovecot.log`, 'utf8')
      .split('\n')
      .filter((l) => l.includes('managesieve-login') && l.includes(`user=<${user.email}>`) && /Login:/.test(l));
    expect(lines.length).toBe(1);
    expect(lines[0]).toMatch(/\bTLS\b/);
  });

  it('refuses a server without STARTTLS before sending the password, unless plaintext is allowed', async () => {
    const server = { host: '127.0.0.1', port: plain.sievePort, secure: false };
    const refused = await ManageSieveSession.open(server).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(ManageSieveError);
    expect((refused as ManageSieveError).code).toBe('STARTTLS');
    expect((refused as Error).message).toMatch(/does not offer STARTTLS.*ALLOW_PLAINTEXT_BACKENDS/);

    await withManageSieve(
      { ...server, allowPlaintext: true },
      { login: plainUser.email, password: plainUser.password },
      (s) => s.putScript('probe', 'keep;\r\n'),
    );
  });

  it('Oof with SIEVE=on against a ManageSieve without STARTTLS: Status 4 and the reason in the log line', async () => {
    const server = testServer(services, {
      SIEVE: 'on',
      SIEVE_HOST: '127.0.0.1',
      SIEVE_PORT: String(plain.sievePort),
    });
    const user = createUser(services);
    const device = new TestDevice(server, user);
    const body = await device.command(
      'Settings',
      el('Settings', 'Settings', [
        el('Settings', 'Oof', [
          el('Settings', 'Set', [
            el('Settings', 'OofState', '1'),
            el('Settings', 'OofMessage', [
              el('Settings', 'AppliesToInternal'),
              el('Settings', 'Enabled', '1'),
              el('Settings', 'ReplyMessage', 'Away.'),
              el('Settings', 'BodyType', 'Text'),
            ]),
          ]),
        ]),
      ]),
    );
    expect(childText(child(body, 'Oof'), 'Status')).toBe('4');
    expect(JSON.stringify(server.logs)).toMatch(/oofSieveError[^}]*does not offer STARTTLS/);
  });
});

describe('DAV URLs', () => {
  it('https to Radicale by default; its plain http URL works only with ALLOW_PLAINTEXT_BACKENDS=true', async () => {
    expect(services.caldavUrl).toMatch(/^https:/);
    const user = createUser(services);
    await seedCalendar(services, user, 'plainhome', [], { displayName: 'Plain Home' });
    const plainDav = { CALDAV_URL: services.davPlainUrl, CARDDAV_URL: services.davPlainUrl };
    expect(() => testServer(services, plainDav)).toThrow(/CALDAV_URL, CARDDAV_URL are http:\/\//);
    const device = new TestDevice(testServer(services, { ...plainDav, ALLOW_PLAINTEXT_BACKENDS: 'true' }), user);
    expect(childText(await device.folderSync(), 'Status')).toBe('1');
    expect(device.folderByName('Plain Home').serverId).toBeTruthy();
  });

  it('an http:// CALDAV_URL, CARDDAV_URL or GAL_URL stops start-up unless ALLOW_PLAINTEXT_BACKENDS=true', () => {
    const base = { IMAP_HOST: 'imap.example.test' };
    expect(() => loadConfig({ ...base, CALDAV_URL: 'http://dav.example.test/' })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, CARDDAV_URL: 'HTTP://dav.example.test/', GAL_URL: 'http://x.test/' })).toThrow(
      /CARDDAV_URL, GAL_URL are http:\/\/.*ALLOW_PLAINTEXT_BACKENDS=true/,
    );
    expect(loadConfig({ ...base, CALDAV_URL: 'https://dav.example.test/' }).caldavUrl).toBe(
      'https://dav.example.test/',
    );
    const allowed = loadConfig({ ...base, CALDAV_URL: 'http://dav.example.test/', ALLOW_PLAINTEXT_BACKENDS: 'true' });
    expect(allowed.caldavUrl).toBe('http://dav.example.test/');
    expect(allowed.imap.allowPlaintext).toBe(true);
  });

  it('SIEVE_SECURE defaults to false (STARTTLS on 4190, required)', () => {
    const config = loadConfig({ IMAP_HOST: 'imap.example.test', SIEVE: 'on' });
    expect(config.sieve).toEqual({ host: 'imap.example.test', port: 4190, secure: false });
  });
});
