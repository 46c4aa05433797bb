/**
 * The DynamoDB store's data outlives the server process: dynalite on disk (LevelDB) is stopped and started again on
 * the same folder, and everything written before reads back, chunked state included.
 */
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DynamoDbStateStore, createStateTable } from '../../src/state/dynamodb/store.ts';
import type { CollectionState, KeyedState } from '../../src/state/types.ts';
import { freePort, isPortOpen, waitUntil } from '../services/process.ts';

const DYNALITE = join(import.meta.dirname, '../../node_modules/.bin/dynalite');
const dir = mkdtempSync(join(tmpdir(), 'ase-dynalite-'));
const running = new Set<ChildProcess>();

afterAll(async () => {
  for (const child of running) await stop(child);
  rmSync(dir, { recursive: true, force: true });
});

/** Starts dynalite on `dir` and waits until it accepts connections. */
async function start(port: number): Promise<ChildProcess> {
  const child = spawn(
    DYNALITE,
    ['--host', '127.0.0.1', '--port', String(port), '--path', dir, '--createTableMs', '0'],
    { stdio: 'ignore' },
  );
  running.add(child);
  await waitUntil(() => isPortOpen(port), `dynalite on port ${port}`);
  return child;
}

/** Kills dynalite and waits for the process to be gone, so the next one gets the LevelDB lock. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }
  running.delete(child);
}

function storeOn(port: number): { client: DynamoDBClient; store: DynamoDbStateStore } {
  const client = new DynamoDBClient({
    endpoint: `http://127.0.0.1:${port}`,
    region: 'local',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  return { client, store: new DynamoDbStateStore({ client, table: 'state' }) };
}

describe('DynamoDB store on dynalite with a data folder', () => {
  it('keeps devices, sync state and leases across a server restart', async () => {
    const device = { tenant: 'acme', user: 'alice@example.test', deviceId: 'RESTART' };
    const until = Date.now() + 3_600_000;
    // A 100,000-entry address book: chunked, several items.
    const etags = Object.fromEntries(
      Array.from({ length: 100_000 }, (_, i) => [`/dav/alice/contacts/${i}.vcf`, `"${(i * 2654435761) >>> 0}"`]),
    );
    const book: KeyedState<CollectionState> = {
      syncKey: '7',
      state: {
        class: 'Contacts',
        watermark: { kind: 'dav', syncToken: 'tok', etags },
        options: {},
        pending: [],
        clientIds: {},
      },
      replay: { syncKey: '6', response: new Uint8Array(500_000).map((_, i) => i % 253), expiresAt: until },
    };
    const mail: KeyedState<CollectionState> = {
      syncKey: '3',
      state: { class: 'Email', watermark: { kind: 'none' }, options: { filterType: 3 }, pending: [], clientIds: {} },
    };

    const firstPort = await freePort();
    const first = await start(firstPort);
    const writer = storeOn(firstPort);
    await createStateTable(writer.client, 'state');
    await writer.store.updateDevice(device, { deviceType: 'Android', lastSeen: 7 });
    await writer.store.commitCollection(device, 'book', 'absent', book);
    await writer.store.commitCollection(device, 'mail', 'absent', mail);
    await writer.store.putLease({
      tenant: device.tenant,
      user: device.user,
      until,
      credential: new Uint8Array([1, 2, 3]),
    });
    const stored = await writer.client.send(
      new ScanCommand({
        TableName: 'state',
        Select: 'COUNT',
        FilterExpression: 'begins_with(sk, :chunk)',
        ExpressionAttributeValues: { ':chunk': { S: 'CHUNK#' } },
      }),
    );
    expect(stored.Count).toBeGreaterThanOrEqual(3);
    writer.client.destroy();
    // Killed, not shut down: what was acknowledged must already be on disk.
    await stop(first);

    const secondPort = await freePort();
    const second = await start(secondPort);
    const reader = storeOn(secondPort);
    try {
      await createStateTable(reader.client, 'state'); // finds the table there
      expect(await reader.store.getDevice(device)).toMatchObject({ deviceType: 'Android', firstSeen: 7, lastSeen: 7 });
      expect(await reader.store.getCollection(device, 'book')).toEqual(book);
      expect(await reader.store.getCollection(device, 'mail')).toEqual(mail);
      expect((await reader.store.listCollections(device)).sort()).toEqual(['book', 'mail']);
      expect(await reader.store.getLease({ tenant: device.tenant, user: device.user })).toEqual({
        tenant: device.tenant,
        user: device.user,
        until,
        credential: new Uint8Array([1, 2, 3]),
      });
    } finally {
      reader.client.destroy();
      await stop(second);
    }
  });
});
