/**
 * The SQLite StateStore on better-sqlite3: the embedded default of the Node runtime, one file under STATE_DIR.
 * Node only (a native module); the Workers build uses durable-object.ts instead.
 */
import Database from 'better-sqlite3';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { SqliteStateStore, type SqlDriver, type SqlRow, type SqlValue } from './sqlite.ts';

export const STATE_FILE_NAME = 'state.sqlite';

export interface NodeSqliteStore {
  store: SqliteStateStore;
  close(): void;
  /** Set when the state folder existed and other users may enter it (it is left as it is; the file is 0600). */
  notice?: string;
}

/**
 * Opens (creating if needed) the state database at `path`; `:memory:` for a throwaway one. The state names every
 * user and device and holds sealed credentials, so the file is created 0600 (SQLite gives its -wal and -shm files
 * the database file's mode) and tightened to 0600 if it was not, in a folder created 0700. A folder that already
 * existed is not changed (it may be shared, like /tmp); when others may enter it, `notice` says so.
 */
export function openSqliteStateStore(path: string): NodeSqliteStore {
  const notice = path === ':memory:' ? undefined : prepareStateFile(path);
  const db = new Database(path);
  // WAL: readers do not wait for the writer; NORMAL sync is durable across process crashes (not power loss).
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  return {
    store: new SqliteStateStore(betterSqliteDriver(db), { lazyReplays: true }),
    close: () => db.close(),
    ...(notice ? { notice } : {}),
  };
}

function prepareStateFile(path: string): string | undefined {
  const dir = dirname(path);
  let notice: string | undefined;
  if (existsSync(dir)) {
    const mode = statSync(dir).mode & 0o777;
    if (mode & 0o077)
      notice = `the state folder ${dir} is open to other users (mode ${mode.toString(8)}); the state file is 0600, chmod 700 the folder`;
  } else mkdirSync(dir, { recursive: true, mode: 0o700 });
  closeSync(openSync(path, 'a', 0o600));
  for (const file of [path, `${path}-wal`, `${path}-shm`]) if (existsSync(file)) chmodSync(file, 0o600);
  return notice;
}

function betterSqliteDriver(db: Database.Database): SqlDriver {
  const statements = new Map<string, Database.Statement>();
  const prepare = (sql: string): Database.Statement => {
    let statement = statements.get(sql);
    if (!statement) {
      statement = db.prepare(sql);
      statements.set(sql, statement);
    }
    return statement;
  };
  return {
    query(sql, ...params) {
      return (prepare(sql).all(...params.map(toSqlite)) as Record<string, unknown>[]).map(fromSqlite);
    },
    run(sql, ...params) {
      return prepare(sql).run(...params.map(toSqlite)).changes;
    },
    transaction(fn) {
      return db.transaction(fn)();
    },
  };
}

function toSqlite(value: SqlValue): unknown {
  return value instanceof Uint8Array ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : value;
}

/**
 * Blobs come back as Buffers; the store speaks plain Uint8Array, as the Durable Object engine does: a view of the
 * same memory, not a copy (each blob read is a Buffer of its own).
 */
function fromSqlite(row: Record<string, unknown>): SqlRow {
  const out: SqlRow = {};
  for (const [k, v] of Object.entries(row))
    out[k] = Buffer.isBuffer(v) ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : (v as SqlValue);
  return out;
}
