import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stateStoreContract } from '../../test/state/contract.ts';
import { openSqliteStateStore } from './sqlite-node.ts';
import { MIGRATIONS } from './sqlite.ts';

const dir = mkdtempSync(join(tmpdir(), 'ase-sqlite-'));
const shared = openSqliteStateStore(join(dir, 'contract.sqlite'));
afterAll(() => {
  shared.close();
  rmSync(dir, { recursive: true, force: true });
});

stateStoreContract('SQLite (better-sqlite3)', { open: async () => shared.store });

describe('SQLite state file', () => {
  it('keeps its data when it is closed and opened again', async () => {
    const path = join(dir, 'reopen.sqlite');
    const first = openSqliteStateStore(path);
    const device = { tenant: 't', user: 'alice', deviceId: 'D' };
    await first.store.updateDevice(device, { deviceType: 'iPhone', lastSeen: 5 });
    first.close();
    const second = openSqliteStateStore(path);
    expect(await second.store.getDevice(device)).toMatchObject({ deviceType: 'iPhone', firstSeen: 5 });
    second.close();
  });

  it('applies each migration once, however often it is opened', () => {
    const path = join(dir, 'migrations.sqlite');
    for (let i = 0; i < 3; i++) openSqliteStateStore(path).close();
    const db = new Database(path, { readonly: true });
    const versions = db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as {
      version: number;
    }[];
    db.close();
    expect(versions.map((v) => v.version)).toEqual(MIGRATIONS.map((m) => m.version));
  });

  it('keeps sync state written by a process that has since exited', async () => {
    const path = join(dir, 'restart.sqlite');
    const device = { tenant: 't', user: 'alice', deviceId: 'RESTART' };
    const script = `
      import { openSqliteStateStore } from ${JSON.stringify(join(import.meta.dirname, 'sqlite-node.ts'))};
      const { store } = openSqliteStateStore(${JSON.stringify(path)});
      const d = ${JSON.stringify(device)};
      await store.updateDevice(d, { deviceType: 'Android', lastSeen: 7 });
      await store.commitCollection(d, '5', 'absent', { syncKey: '3', state: { class: 'Email', watermark: { kind: 'none' }, options: {}, pending: [], clientIds: {} } });
      process.exit(0); // no close(): the process just ends, as a killed server would
    `;
    execFileSync(join(import.meta.dirname, '../../node_modules/.bin/tsx'), ['--input-type=module', '-e', script]);
    const reopened = openSqliteStateStore(path);
    expect(await reopened.store.getDevice(device)).toMatchObject({ deviceType: 'Android', lastSeen: 7 });
    expect((await reopened.store.getCollection(device, '5'))?.syncKey).toBe('3');
    reopened.close();
  });
});
