import Database from 'better-sqlite3';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stateStoreContract } from '../../test/state/contract.ts';
import { openSqliteStateStore } from './sqlite-node.ts';
import { MIGRATIONS } from './sqlite.ts';
import { StateConflictError } from './types.ts';

const dir = mkdtempSync(join(tmpdir(), 'ase-sqlite-'));
const shared = openSqliteStateStore(join(dir, 'contract.sqlite'));
afterAll(() => {
  shared.close();
  rmSync(dir, { recursive: true, force: true });
});

stateStoreContract('SQLite (better-sqlite3)', { open: async () => shared.store });

describe('SQLite replay records', () => {
  it('reads a replay response only when asked, from the row it was read with', async () => {
    const { store, close } = openSqliteStateStore(':memory:');
    const d = { tenant: 't', user: 'alice', deviceId: 'D' };
    const state = { class: 'Email', watermark: { kind: 'none' as const }, options: {}, pending: [], clientIds: {} };
    const response = new Uint8Array([3, 1, 106, 0]);
    await store.commitCollection(d, '5', 'absent', {
      syncKey: '2',
      state,
      replay: { syncKey: '1', response, expiresAt: Date.now() + 60_000 },
    });
    const read = (await store.getCollection(d, '5'))!;
    const stale = (await store.getCollection(d, '5'))!;
    expect(read.replay?.response).toEqual(response);
    // The key moved on before the second read's replay was asked for: that replay is gone.
    await store.commitCollection(d, '5', { syncKey: '2' }, { syncKey: '3', state });
    expect(() => stale.replay?.response).toThrow(StateConflictError);
    close();
  });
});

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

  it('creates the file 0600 (its WAL files too) in a folder created 0700, and tightens a file that was open', async () => {
    const folder = join(dir, 'private', 'state');
    const path = join(folder, 'state.sqlite');
    const opened = openSqliteStateStore(path);
    await opened.store.updateDevice({ tenant: 't', user: 'alice', deviceId: 'D' }, { deviceType: 'iPhone' });
    const modeOf = (p: string) => statSync(p).mode & 0o777;
    expect(modeOf(folder)).toBe(0o700);
    expect(modeOf(join(dir, 'private'))).toBe(0o700);
    for (const file of [path, `${path}-wal`, `${path}-shm`]) expect(modeOf(file)).toBe(0o600);
    expect(opened.notice).toBeUndefined();
    opened.close();

    // A file left readable (an older version, a copy) is tightened when opened; a folder that existed is left as it
    // was, with a notice when others may enter it.
    const shared = join(dir, 'shared');
    mkdirSync(shared, { mode: 0o755 });
    chmodSync(shared, 0o755);
    const old = join(shared, 'state.sqlite');
    writeFileSync(old, '', { mode: 0o644 });
    chmodSync(old, 0o644);
    const reopened = openSqliteStateStore(old);
    expect(modeOf(old)).toBe(0o600);
    expect(modeOf(shared)).toBe(0o755);
    expect(reopened.notice).toMatch(/open to other users \(mode 755\)/);
    reopened.close();
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
