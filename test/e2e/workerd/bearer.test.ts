/**
 * Bearer sign-in on the Cloudflare runtime: the Worker under `wrangler dev` (workerd) with AUTH_MODE bearer verifies
 * each token with jose on WebCrypto against a JWKS served here (a key generated here), then logs in to a Dovecot of
 * its own with XOAUTH2, whose oauth2 passdb asks the same provider's RFC 7662 introspection endpoint
 * (test/services/identity-provider.ts, as for the hooli tenant in test/e2e/tenants.test.ts). A token that does not verify gets 401 before the mail server is asked; no token
 * reaches the Worker's output.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { generateKeyPair, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import type { StateStore } from '../../../src/state/types.ts';
import { childText } from '../../../src/wbxml/tree.ts';
import { TestDevice, type TestServer } from '../../device/device.ts';
import { makeUser } from '../../services/accounts.ts';
import { isRoot } from '../../services/apt.ts';
import { startDovecot, type DovecotService } from '../../services/dovecot.ts';
import { startIdentityProvider, type IdentityProvider } from '../../services/identity-provider.ts';
import { seedMailbox } from '../../services/seed.ts';
import { fetchVia, startWranglerDev, type WranglerDev } from '../../services/wrangler-dev.ts';

const services = inject('services');

describe('Bearer sign-in on the Worker in workerd (JWKS verified with jose, XOAUTH2 to Dovecot)', () => {
  const user = makeUser(`bearer${Date.now().toString(36)}`);
  const tokens: string[] = [];
  let idp: IdentityProvider;
  let runDir: string;
  let dovecot: DovecotService;
  let worker: WranglerDev;
  let server: TestServer;

  async function jwt(o: { key?: CryptoKey; expires?: number | string } = {}): Promise<string> {
    const token = await idp.jwt({ email: user.email }, o);
    // Dovecot would take each of them: only the Worker's own check can refuse the bad ones.
    idp.issued.set(token, user.email);
    tokens.push(token);
    return token;
  }

  function deviceWith(token: string): TestDevice {
    const device = new TestDevice(server, user);
    device.authorization = `Bearer ${token}`;
    return device;
  }

  beforeAll(async () => {
    idp = await startIdentityProvider();
    runDir = mkdtempSync('/tmp/ase-wb-');
    chmodSync(runDir, 0o755);
    dovecot = await startDovecot(runDir, [user], isRoot(), { extraConfig: idp.dovecotXoauth2(runDir) });
    await seedMailbox({ ...services, imap: { ...services.imap, port: dovecot.imapPort } }, user, 'INBOX', [
      { message: { from: 'Dan <dan@example.test>', to: user.email, subject: 'bearer one', text: 'Hello.' } },
    ]);

    worker = await startWranglerDev({
      IMAP_HOST: services.imaps.host,
      IMAP_PORT: String(dovecot.imapsPort),
      IMAP_SECURE: 'true',
      TENANT: 'bearer',
      AUTH_MODE: 'bearer',
      ...idp.bearerSettings('email'),
    });
    server = { fetch: fetchVia(worker.origin), state: undefined as unknown as StateStore, logs: [] };
  }, 120_000);

  afterAll(async () => {
    await worker?.stop();
    await dovecot?.stop();
    idp?.close();
    if (runDir) rmSync(runDir, { recursive: true, force: true });
  }, 30_000);

  it('a valid token: Provision, then FolderSync Status 1 with the Inbox', async () => {
    const device = deviceWith(await jwt());
    const before = idp.introspected;
    const body = await device.folderSync();
    expect(childText(body, 'Status')).toBe('1');
    // Dovecot checked the token itself (XOAUTH2 through its oauth2 passdb).
    expect(idp.introspected).toBeGreaterThan(before);
    expect(device.folderByType(FolderType.Inbox).displayName).toBe('Inbox');
  }, 60_000);

  it('an expired token and one signed by another key get 401, before the mail server is asked', async () => {
    const other = (await generateKeyPair('RS256')).privateKey;
    const before = idp.introspected;
    for (const token of [await jwt({ expires: Math.floor(Date.now() / 1000) - 600 }), await jwt({ key: other })]) {
      const device = deviceWith(token);
      device.autoProvision = false;
      const res = await device.send('FolderSync');
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="ActiveSync"');
    }
    expect(idp.introspected).toBe(before);
  }, 30_000);

  it('the Worker logged no token and no problem', async () => {
    // wrangler passes the Worker's output on a moment after the answer.
    await new Promise((r) => setTimeout(r, 500));
    const output = worker.output();
    expect(output).toMatch(/"cmd":"FolderSync"/);
    for (const token of tokens) {
      expect(output).not.toContain(token);
      // Nor its signature alone.
      expect(output).not.toContain(token.split('.')[2]);
    }
    expect(worker.problems()).toEqual([]);
  });
});
