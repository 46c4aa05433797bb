/**
 * The Cloudflare runtime (wrangler dev, workerd) reaching ManageSieve (Oof with SIEVE=on) and SMTP (SendMail) of the
 * test Dovecot and Postfix over TLS, both ways: STARTTLS (SIEVE_SECURE=false, the default, and SMTP_SECURE=false) and
 * implicit TLS (SIEVE_SECURE=true, SMTP_SECURE=true). Inside workerd node:tls cannot upgrade a node:net socket, so both
 * go over cloudflare:sockets there (src/runtimes/cloudflare/sockets.ts); workerd trusts the test CA through
 * SSL_CERT_FILE (test/services/wrangler-dev.ts). Dovecot's log and Postfix's Received header say whether each
 * connection was encrypted.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { withManageSieve } from '../../../src/backends/sieve/managesieve.ts';
import type { StateStore } from '../../../src/state/types.ts';
import { child, childText, el, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { TestDevice, type TestServer } from '../../device/device.ts';
import { createUser } from '../../services/seed.ts';
import { compose, waitForStored } from '../mail/compose-helpers.ts';
import { makeMessage } from '../../services/message-builder.ts';
import type { TestUser } from '../../services/types.ts';
import { fetchVia, startWranglerDev, type WranglerDev } from '../../services/wrangler-dev.ts';

const services = inject('services');

const s = (tag: Parameters<typeof el<'Settings'>>[1], content?: Parameters<typeof el>[2]): WbxmlElement =>
  el('Settings', tag, content);

// SendMail needs Postfix, which runs only as root here: without it this test fails, it does not skip.
const smtp = services.smtp ?? { host: '127.0.0.1', port: 1 };
const smtps = services.smtps ?? { host: '127.0.0.1', port: 1 };

const modes = {
  starttls: {
    SIEVE_PORT: String(services.sieve.port),
    SMTP_HOST: smtp.host,
    SMTP_PORT: String(smtp.port),
    SMTP_SECURE: 'false',
  },
  implicit: {
    SIEVE_PORT: String(services.sieves.port),
    SIEVE_SECURE: 'true',
    SMTP_HOST: smtps.host,
    SMTP_PORT: String(smtps.port),
    SMTP_SECURE: 'true',
  },
} as const;

const workers: Partial<Record<keyof typeof modes, WranglerDev>> = {};

beforeAll(async () => {
  // Both Workers start at once: each wrangler dev takes several seconds to come up.
  await Promise.all(
    Object.entries(modes).map(async ([mode, settings]) => {
      workers[mode as keyof typeof modes] = await startWranglerDev({
        IMAP_HOST: services.imap.host,
        IMAP_PORT: String(services.imap.port),
        IMAP_SECURE: 'false',
        TENANT: 'test',
        SIEVE: 'on',
        SIEVE_HOST: services.sieve.host,
        ...settings,
      });
    }),
  );
}, 120_000);

afterAll(async () => {
  await Promise.all(Object.values(workers).map((w) => w?.stop()));
}, 30_000);

/** Dovecot's managesieve-login lines for `user`'s logins. */
function sieveLogins(user: TestUser): string[] {
  return readFileSync(`${services.dir}/dovecot/dovecot.log`, 'utf8')
    .split('\n')
    .filter((l) => l.includes('managesieve-login') && l.includes(`user=<${user.email}>`) && /Login:/.test(l));
}

async function oofSet(device: TestDevice, request: WbxmlElement): Promise<string | undefined> {
  const body = await device.command('Settings', s('Settings', [s('Oof', [s('Set', [request].flat())])]));
  expect(childText(body, 'Status')).toBe('1');
  return childText(child(body, 'Oof'), 'Status');
}

it('Postfix runs (SendMail needs it)', () => {
  expect(services.smtpSkipReason).toBeNull();
});

describe.each(Object.keys(modes) as (keyof typeof modes)[])('workerd to ManageSieve and SMTP (%s TLS)', (mode) => {
  it('Settings Oof Set installs the vacation script as the user, over TLS; Oof off removes it', async () => {
    const worker = workers[mode]!;
    const user = createUser(services);
    const server: TestServer = { fetch: fetchVia(worker.origin), state: undefined as unknown as StateStore, logs: [] };
    const device = new TestDevice(server, user);
    await device.provision();

    const on = await device.command(
      'Settings',
      s('Settings', [
        s('Oof', [
          s('Set', [
            s('OofState', '1'),
            s('OofMessage', [
              s('AppliesToInternal'),
              s('Enabled', '1'),
              s('ReplyMessage', `Away (${mode}).`),
              s('BodyType', 'Text'),
            ]),
          ]),
        ]),
      ]),
    );
    expect(childText(child(on, 'Oof'), 'Status'), worker.output().slice(-2000)).toBe('1');

    // What the Worker stored, read back over ManageSieve from Node as the user.
    const scripts = await withManageSieve(
      { ...services.sieve, secure: false },
      { login: user.email, password: user.password },
      async (session) => {
        const list = await session.listScripts();
        const active = list.find((x) => x.active);
        return { list, text: active ? await session.getScript(active.name) : '' };
      },
    );
    expect(scripts.list.some((x) => x.active)).toBe(true);
    expect(scripts.text).toMatch(/vacation/);
    expect(scripts.text).toContain(`Away (${mode}).`);

    expect(await oofSet(device, s('OofState', '0'))).toBe('1');

    // Every ManageSieve login of the user's (the Worker's two, and ours) came over TLS.
    const logins = sieveLogins(user);
    expect(logins.length).toBeGreaterThanOrEqual(3);
    for (const line of logins) expect(line).toMatch(/\bTLS\b/);
  });

  it('SendMail reaches the recipient through Postfix, over TLS', async () => {
    const worker = workers[mode]!;
    const user = createUser(services);
    const bob = createUser(services);
    const server: TestServer = { fetch: fetchVia(worker.origin), state: undefined as unknown as StateStore, logs: [] };
    const device = new TestDevice(server, user);
    await device.provision();
    const subject = `Over ${mode} TLS`;
    const res = await compose(
      device,
      'SendMail',
      makeMessage({ from: user.email, to: bob.email, subject, text: 'Sent from workerd.\n' }),
    );
    expect([res.status, res.bytes.length], worker.output().slice(-2000)).toEqual([200, 0]);
    const got = await waitForStored(services, bob, (m) => m.email.subject === subject);
    // Postfix's Received header (smtpd_tls_received_header) for the Worker's connection.
    const received = got.email.headers.filter((h) => h.key === 'received').map((h) => h.value);
    expect(received.join('\n')).toMatch(/using TLSv1\.[23] with cipher/);
  });
});

it('the Workers logged no uncaught error and no listener-leak warning', async () => {
  await new Promise((r) => setTimeout(r, 500));
  for (const worker of Object.values(workers)) expect(worker!.problems()).toEqual([]);
});
