/**
 * The SQLite StateStore on better-sqlite3: the embedded default of the Node runtime, one file under STATE_DIR.
 * Node only (a native module); the Workers build uses durable-object.ts instead.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { SqliteStateStore, type SqlDriver, type SqlRow, type SqlValue } from './sqlite.ts';

export const STATE_FILE_NAME = 'state.sqlite';

export interface NodeSqliteStore {
  store: SqliteStateStore;
  close(): void;
}

/** Opens (creating if needed) the state database at `path`; `:memory:` for a throwaway one. */
export function openSqliteStateStore(path: string): NodeSqliteStore {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  // WAL: readers do not wait for the writer; NORMAL sync is durable across process crashes (not power loss).
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  return { store: new SqliteStateStore(betterSqliteDriver(db)), close: () => db.close() };
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

/** Blobs come back as Buffers; the store speaks plain Uint8Array, as the Durable Object engine does. */
function fromSqlite(row: Record<string, unknown>): SqlRow {
  const out: SqlRow = {};
  for (const [k, v] of Object.entries(row)) out[k] = Buffer.isBuffer(v) ? new Uint8Array(v) : (v as SqlValue);
  return out;
}
