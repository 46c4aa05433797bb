import { describe, expect, it } from 'vitest';
import { loadConfig } from '../config.ts';
import { toBase64 } from '../util/base64.ts';
import { decodeVaultKey, openCredential, sealCredential, VaultError } from './vault.ts';

const key = crypto.getRandomValues(new Uint8Array(32));
const alice = { tenant: 't1', user: 'alice@example.test' };

describe('credential vault', () => {
  it('opens what it sealed, with the same key for the same user', async () => {
    const sealed = await sealCredential(key, alice, 'pässwörd 🔑');
    expect(new TextDecoder().decode(sealed)).not.toContain('pässwörd');
    expect(await openCredential(key, alice, sealed)).toBe('pässwörd 🔑');
    // A fresh IV each time: the same password never seals to the same bytes.
    expect(toBase64(await sealCredential(key, alice, 'pässwörd 🔑'))).not.toBe(toBase64(sealed));
  });

  it('refuses another key, another user or tenant, and changed bytes', async () => {
    const sealed = await sealCredential(key, alice, 'secret');
    const otherKey = crypto.getRandomValues(new Uint8Array(32));
    await expect(openCredential(otherKey, alice, sealed)).rejects.toThrow(VaultError);
    await expect(openCredential(key, { ...alice, user: 'bob@example.test' }, sealed)).rejects.toThrow(VaultError);
    await expect(openCredential(key, { ...alice, tenant: 't2' }, sealed)).rejects.toThrow(VaultError);
    const tampered = sealed.slice();
    tampered[tampered.length - 1]! ^= 1;
    await expect(openCredential(key, alice, tampered)).rejects.toThrow(VaultError);
    await expect(openCredential(key, alice, sealed.slice(0, 10))).rejects.toThrow(VaultError);
  });

  it('takes CREDENTIAL_KEY as 32 bytes of base64, and nothing else', () => {
    expect(decodeVaultKey(toBase64(key))).toEqual(key);
    expect(decodeVaultKey(toBase64(key.slice(0, 16)))).toBeUndefined();
    expect(decodeVaultKey('not base64!')).toBeUndefined();
    const base = { IMAP_HOST: 'imap.example.test' };
    expect(loadConfig({ ...base, CREDENTIAL_KEY: toBase64(key) }).push.credentialKey).toEqual(key);
    expect(() => loadConfig({ ...base, CREDENTIAL_KEY: 'c2hvcnQ=' })).toThrow(/CREDENTIAL_KEY must be 32 bytes/);
    expect(() => loadConfig({ ...base, IMAP_MASTER_USER: 'syncmaster' })).toThrow(
      /IMAP_MASTER_USER and IMAP_MASTER_PASSWORD/,
    );
  });

  it('has push defaults for Node, and a runtime may bring its own', () => {
    const base = { IMAP_HOST: 'imap.example.test' };
    expect(loadConfig(base).push).toMatchObject({
      maxHeartbeat: 3540,
      minHeartbeat: 60,
      pollSeconds: 20,
      master: undefined,
      credentialKey: undefined,
    });
    // A Lambda behind API Gateway: the cap is below the usual minimum, so the minimum follows it down.
    expect(loadConfig(base, { PING_MAX_HEARTBEAT: '28' }).push).toMatchObject({ maxHeartbeat: 28, minHeartbeat: 28 });
    expect(loadConfig({ ...base, PING_MAX_HEARTBEAT: '600' }, { PING_MAX_HEARTBEAT: '28' }).push.maxHeartbeat).toBe(
      600,
    );
  });
});
