/**
 * State store throughput and size: reads and compare-and-set commits per second on each store, and the stored
 * bytes of collection states at 1k, 10k and 100k items, and the login throttle's reads and writes per request
 * (login-throttle.ts).
 *
 * - SQLite: better-sqlite3 on a file (WAL), as `npm start` runs it;
 * - Durable Objects: the same SQLite store inside workerd (wrangler's local runtime), called from a Worker over RPC;
 * - DynamoDB: on dynalite in this process. dynalite is an emulator (LevelDB in memory): its figures show our
 *   per-operation overhead, not AWS latency (a real table adds a network round trip, typically 3–10 ms).
 *
 *   npm run bench:state [-- --seconds 2]
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unstable_startWorker } from 'wrangler';
import { createStateTable, DynamoDbStateStore } from '../src/state/dynamodb/store.ts';
import { openSqliteStateStore } from '../src/state/sqlite-node.ts';
import { startDynalite } from '../test/services/dynalite.ts';
import { runLoginThrottleBench } from './login-throttle.ts';
import { measureStateSizes, measureStore, type StoreFigures } from './state-measure.ts';

async function sqliteFigures(seconds: number): Promise<StoreFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-state-'));
  const { store, close } = openSqliteStateStore(join(dir, 'state.sqlite'));
  try {
    return await measureStore(store, seconds);
  } finally {
    close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function dynamoFigures(seconds: number): Promise<StoreFigures> {
  const dynalite = await startDynalite();
  const client = new DynamoDBClient({
    endpoint: dynalite.endpoint,
    region: 'local',
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
  });
  try {
    await createStateTable(client, 'bench-state');
    return await measureStore(new DynamoDbStateStore({ client, table: 'bench-state' }), seconds);
  } finally {
    client.destroy();
    await dynalite.stop();
  }
}

async function durableObjectFigures(seconds: number): Promise<StoreFigures> {
  process.env.WRANGLER_SEND_METRICS = 'false';
  const worker = await unstable_startWorker({
    config: join(import.meta.dirname, 'workers/wrangler.toml'),
    dev: { server: { port: 0 }, inspector: false, logLevel: 'none' },
  });
  try {
    await worker.ready;
    const response = await worker.fetch(`http://bench/?seconds=${seconds}`);
    if (!response.ok) throw new Error(`bench worker answered ${response.status}: ${await response.text()}`);
    return (await response.json()) as StoreFigures;
  } finally {
    await worker.dispose();
  }
}

export async function runStateBench(seconds = 2): Promise<void> {
  console.log(`\nState store: operations per second (one collection, sequential, ${seconds} s each)`);
  console.log('store                          reads/s   compare-and-set/s');
  for (const [name, run] of [
    ['SQLite (better-sqlite3, file)', sqliteFigures],
    ['SQLite (Durable Object, workerd)', durableObjectFigures],
    ['DynamoDB (dynalite, in process)', dynamoFigures],
  ] as const) {
    const f = await run(seconds);
    console.log(
      `${name.padEnd(30)} ${f.readsPerSecond.toFixed(0).padStart(8)}   ${f.commitsPerSecond.toFixed(0).padStart(10)}`,
    );
  }

  console.log('\nState store: stored bytes per collection state (same encoding in every store)');
  console.log('shape                           1k items   10k items  100k items');
  const sizes = await measureStateSizes();
  for (const shape of [...new Set(sizes.map((s) => s.shape))]) {
    const row = [1_000, 10_000, 100_000].map((n) =>
      String(sizes.find((s) => s.shape === shape && s.items === n)!.bytes).padStart(10),
    );
    console.log(`${shape.padEnd(30)} ${row.join('  ')}`);
  }
  await runLoginThrottleBench();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const at = process.argv.indexOf('--seconds');
  await runStateBench(at > 0 ? Number(process.argv[at + 1]) : 2);
}
