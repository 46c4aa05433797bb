/**
 * `npm start` with a tenants file (TENANTS_FILE): one process, two tenants told apart by the Host they are reached
 * at (`127.0.0.1` and `localhost`), both on the test Dovecot. The same login and DeviceId in both end up as two
 * device records, one per tenant, in the one state file.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { openSqliteStateStore, STATE_FILE_NAME } from '../../src/state/sqlite-node.ts';
import { freePort } from '../services/process.ts';
import {
  spawnNodeServer,
  startNodeServer,
  stopNodeServer,
  waitFor,
  type NodeProcess,
} from '../services/node-server.ts';
import { createUser } from '../services/seed.ts';

const services = inject('services');
describe('npm start with TENANTS_FILE', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ase-tenants-'));
  const user = createUser(services);
  const basic = `Basic ${Buffer.from(`${user.email}:${user.password}`).toString('base64')}`;
  let server: NodeProcess;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    const imap = {
      IMAP_HOST: services.imap.host,
      IMAP_PORT: services.imap.port,
      IMAP_SECURE: false,
      PROVISIONING: 'loose',
    };
    writeFileSync(
      join(dir, 'tenants.json'),
      JSON.stringify({
        defaults: imap,
        tenants: [
          { name: 'by-ip', hostnames: ['127.0.0.1'] },
          { name: 'by-name', hostnames: ['localhost'] },
        ],
      }),
    );
    server = await startNodeServer({
      PORT: String(port),
      HOST: '127.0.0.1',
      STATE_DIR: dir,
      TENANTS_FILE: join(dir, 'tenants.json'),
    });
    expect(server.output()).toContain('"tenants":2');
  });

  afterAll(async () => {
    if (server.child.exitCode === null) await stopNodeServer(server);
  });

  it('serves each tenant at its hostname, with separate device records for the same login and DeviceId', async () => {
    for (const host of ['127.0.0.1', 'localhost']) {
      const res = await fetch(
        `http://${host}:${port}/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=${user.name}&DeviceId=TWIN01&DeviceType=iPhone`,
        {
          method: 'POST',
          headers: { Authorization: basic, 'MS-ASProtocolVersion': '16.1', 'User-Agent': `Agent-${host}` },
        },
      );
      expect(res.status).toBe(200);
    }
    await waitFor(() => (server.output().match(/"deviceId":"TWIN01"/g) ?? []).length >= 2, 'the log lines');
    const lines = server
      .output()
      .split('\n')
      .filter((l) => l.includes('"deviceId":"TWIN01"'))
      .map((l) => JSON.parse(l) as { tenant: string });
    expect(lines.map((l) => l.tenant).sort()).toEqual(['by-ip', 'by-name']);

    const { store, close } = openSqliteStateStore(join(dir, STATE_FILE_NAME));
    try {
      const byIp = await store.getDevice({ tenant: 'by-ip', user: user.email, deviceId: 'TWIN01' });
      const byName = await store.getDevice({ tenant: 'by-name', user: user.email, deviceId: 'TWIN01' });
      expect(byIp?.userAgent).toBe('Agent-127.0.0.1');
      expect(byName?.userAgent).toBe('Agent-localhost');
    } finally {
      close();
    }
  });

  it('refuses to start with a tenants file that is wrong, naming what is wrong', async () => {
    writeFileSync(join(dir, 'bad.json'), JSON.stringify([{ name: 'a', settings: { IMAP_HOTS: 'x' } }]));
    const bad = spawnNodeServer({
      PORT: String(await freePort()),
      STATE_DIR: dir,
      TENANTS_FILE: join(dir, 'bad.json'),
    });
    expect(await bad.exited).toBe(2);
    expect(bad.output()).toMatch(/TENANTS_FILE .*bad\.json: tenants\.0\.settings\.IMAP_HOTS is not a setting/);
  });
});
