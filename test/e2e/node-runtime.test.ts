/**
 * `npm start` as an operator runs it: the Node runtime in its own process, configured by environment variables,
 * talking to the real Dovecot.
 */
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../services/process.ts';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDbStateStore } from '../../src/state/dynamodb/store.ts';
import { openSqliteStateStore, STATE_FILE_NAME } from '../../src/state/sqlite-node.ts';
import type { DeviceRecord } from '../../src/state/types.ts';
import {
  spawnNodeServer,
  startNodeServer,
  stopNodeServer,
  waitFor,
  type NodeProcess,
} from '../services/node-server.ts';
import { createUser } from '../services/seed.ts';

const services = inject('services');
/** The server as an operator starts it: settings in the environment, state in STATE_DIR. */
async function startServer(
  port: number,
  stateDir: string,
  extraEnv: Record<string, string> = {},
): Promise<NodeProcess> {
  return startNodeServer({
    PORT: String(port),
    HOST: '127.0.0.1',
    STATE_DIR: stateDir,
    IMAP_HOST: services.imap.host,
    IMAP_PORT: String(services.imap.port),
    IMAP_SECURE: 'false',
    ...extraEnv,
  });
}

async function stopServer(server: NodeProcess): Promise<void> {
  expect(await stopNodeServer(server)).toBe(0);
}

describe('npm start (src/runtimes/node.ts)', () => {
  let server: NodeProcess;
  let url: string;
  let port: number;
  const stateDir = mkdtempSync(join(tmpdir(), 'ase-node-state-'));
  const user = createUser(services);
  const basic = (password: string): string => `Basic ${Buffer.from(`${user.email}:${password}`).toString('base64')}`;

  beforeAll(async () => {
    port = await freePort();
    url = `http://127.0.0.1:${port}/Microsoft-Server-ActiveSync`;
    server = await startServer(port, stateDir);
  });

  afterAll(async () => {
    await stopServer(server);
  });

  it('answers OPTIONS with the ActiveSync headers', async () => {
    const res = await fetch(url, { method: 'OPTIONS', headers: { Authorization: basic(user.password) } });
    expect(res.status).toBe(200);
    expect(res.headers.get('ms-asprotocolversions')).toBe('12.0,12.1,14.0,14.1,16.0,16.1');
    expect(res.headers.get('ms-server-activesync')).toBe('16.1');
    expect(res.headers.has('ms-asprotocolcommands')).toBe(true);
  });

  it('lets a right password through authentication and logs the request as JSON', async () => {
    const res = await fetch(`${url}?Cmd=Ping&User=${user.name}&DeviceId=NODE01&DeviceType=iPhone`, {
      method: 'POST',
      headers: {
        Authorization: basic(user.password),
        'MS-ASProtocolVersion': '14.1',
        'Content-Type': 'application/vnd.ms-sync.wbxml',
      },
    });
    // Past authentication: the command is either implemented (200) or not yet (501), never 401.
    expect([200, 501]).toContain(res.status);
    await waitFor(() => server.output().includes('"deviceId":"NODE01"'), 'the log line');
    const line = server
      .output()
      .split('\n')
      .find((l) => l.includes('"deviceId":"NODE01"'))!;
    expect(JSON.parse(line)).toMatchObject({ cmd: 'Ping', user: user.email, deviceType: 'iPhone', http: res.status });
  });

  it('keeps what it knows about devices across a restart, in the SQLite file under STATE_DIR', async () => {
    const sync = (userAgent: string): Promise<Response> =>
      fetch(`${url}?Cmd=FolderSync&User=${user.name}&DeviceId=KEEPME&DeviceType=Android`, {
        method: 'POST',
        headers: { Authorization: basic(user.password), 'MS-ASProtocolVersion': '16.1', 'User-Agent': userAgent },
      });
    const readDevice = async (): Promise<DeviceRecord | undefined> => {
      const { store, close } = openSqliteStateStore(join(stateDir, STATE_FILE_NAME));
      const device = await store.getDevice({ tenant: 'default', user: user.email, deviceId: 'KEEPME' });
      close();
      return device;
    };

    expect((await sync('Android-Mail/2024.1')).status).not.toBe(401);
    const before = await readDevice();
    expect(before).toMatchObject({ deviceType: 'Android', protocolVersion: '16.1', userAgent: 'Android-Mail/2024.1' });

    await stopServer(server);
    await new Promise((r) => setTimeout(r, 20));
    server = await startServer(port, stateDir);

    // The restarted server finds the device it knew: it updates the record rather than creating a new one.
    expect((await sync('Android-Mail/2024.2')).status).not.toBe(401);
    const after = await readDevice();
    expect(after).toMatchObject({ userAgent: 'Android-Mail/2024.2', firstSeen: before!.firstSeen });
    expect(after!.lastSeen).toBeGreaterThan(before!.lastSeen);
  });

  it('answers a wrong password with 401 and never logs it', async () => {
    const res = await fetch(`${url}?Cmd=Ping&User=${user.name}&DeviceId=NODE02&DeviceType=iPhone`, {
      method: 'POST',
      headers: { Authorization: basic('not-the-password'), 'MS-ASProtocolVersion': '14.1' },
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    await waitFor(() => server.output().includes('"deviceId":"NODE02"'), 'the log line');
    expect(server.output()).not.toContain('not-the-password');
    expect(server.output()).not.toContain(user.password);
  });

  it('hangs up after refusing a body it did not read, instead of reading the rest only to drop it', async () => {
    // A Sync declaring 8 MiB (over MAX_WBXML_BYTES): 413 from its Content-Length, with the body still on its way.
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => {});
    await once(socket, 'connect');
    const declared = 8 * 1024 * 1024;
    socket.write(
      `POST /Microsoft-Server-ActiveSync?Cmd=Sync&User=${user.name}&DeviceId=NODE03&DeviceType=iPhone HTTP/1.1\r\n` +
        `Host: 127.0.0.1:${port}\r\nAuthorization: ${basic(user.password)}\r\nMS-ASProtocolVersion: 14.1\r\n` +
        `Content-Type: application/vnd.ms-sync.wbxml\r\nContent-Length: ${declared}\r\n\r\n`,
    );
    socket.write(Buffer.alloc(64 * 1024));
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString('latin1')));
    await once(socket, 'close');
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).toMatch(/\r\nConnection: close\r\n/i);
  });
});

describe('npm start with STATE_STORE=dynamodb', () => {
  it('keeps device state in the DynamoDB table it names (dynalite here)', async () => {
    const user = createUser(services);
    const table = `ase-node-${Date.now()}`;
    const port = await freePort();
    const { endpoint, region, credentials } = services.dynamodb;
    const server = await startServer(port, mkdtempSync(join(tmpdir(), 'ase-unused-')), {
      STATE_STORE: 'dynamodb',
      DYNAMODB_TABLE: table,
      DYNAMODB_ENDPOINT: endpoint,
      AWS_REGION: region,
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    });
    try {
      expect(server.output()).toContain(`"state":"dynamodb:${table}"`);
      const res = await fetch(
        `http://127.0.0.1:${port}/Microsoft-Server-ActiveSync?Cmd=Sync&User=${user.name}&DeviceId=DYNAMO1&DeviceType=iPad`,
        {
          method: 'POST',
          headers: {
            Authorization: `Basic ${Buffer.from(`${user.email}:${user.password}`).toString('base64')}`,
            'MS-ASProtocolVersion': '14.0',
          },
        },
      );
      expect(res.status).not.toBe(401);
    } finally {
      await stopServer(server);
    }
    const client = new DynamoDBClient({ endpoint, region, credentials });
    const device = await new DynamoDbStateStore({ client, table }).getDevice({
      tenant: 'default',
      user: user.email,
      deviceId: 'DYNAMO1',
    });
    client.destroy();
    expect(device).toMatchObject({ deviceType: 'iPad', protocolVersion: '14.0' });
  });

  it('refuses to start without DYNAMODB_TABLE', async () => {
    const started = spawnNodeServer({ IMAP_HOST: 'localhost', STATE_STORE: 'dynamodb' });
    expect(await started.exited).toBe(2);
    expect(started.output()).toContain('DYNAMODB_TABLE');
  });
});

describe('start-up with a missing setting', () => {
  it('stops with a message that names it', async () => {
    const started = spawnNodeServer({ PORT: String(await freePort()) });
    expect(await started.exited).toBe(2);
    expect(started.output()).toContain('IMAP_HOST');
  });

  it('names a malformed one too', async () => {
    const started = spawnNodeServer({ IMAP_HOST: 'localhost', IMAP_PORT: 'seventy' });
    expect(await started.exited).toBe(2);
    expect(started.output()).toContain('IMAP_PORT');
  });
});
