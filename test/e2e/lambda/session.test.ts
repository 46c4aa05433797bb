/**
 * One device session on the Lambda runtime (src/runtimes/lambda.ts): the Function URL handler invoked with the events
 * a Function URL sends (payload 2.0, base64 bodies, through JSON), state in DynamoDB (dynalite), mail in the test
 * Dovecot (implicit TLS, IMAP_SECURE=true) and Postfix, and the scheduled watcher function running its IDLE watch
 * beside it. No serverless-offline: it decodes WBXML bodies as UTF-8.
 *
 * The watcher gets its own push hub, as a separate function would: a Ping is noticed through its watch lease in
 * DynamoDB, and the Ping through the feed the watcher writes there.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import type { LogEntry } from '../../../src/log.ts';
import {
  createLambdaRuntime,
  handler,
  LAMBDA_DEFAULTS,
  watch,
  type LambdaRuntime,
  type WatchReport,
} from '../../../src/runtimes/lambda.ts';
import { decodeWbxml } from '../../../src/wbxml/decoder.ts';
import { encodeWbxml } from '../../../src/wbxml/encoder.ts';
import { child, children, childText, el } from '../../../src/wbxml/tree.ts';
import {
  functionUrlEvent,
  functionUrlFetch,
  functionUrlResponse,
  type FunctionUrlEvent,
} from '../../device/function-url.ts';
import { TestDevice, WBXML, type TestServer } from '../../device/device.ts';
import { createUser } from '../../services/seed.ts';
import {
  fetchAttachmentMultipart,
  moveToArchive,
  pingBody,
  pingSeesNewMessage,
  seedInbox,
  sendMailArrives,
  subjectsOf,
} from '../session-steps.ts';

const services = inject('services');

function lambdaEnv(): Record<string, string> {
  return {
    IMAP_HOST: services.imaps.host,
    IMAP_PORT: String(services.imaps.port),
    // Implicit TLS (993-style), the form Workers use in production; most other tests use STARTTLS.
    IMAP_SECURE: 'true',
    ...(services.smtp
      ? { SMTP_HOST: services.smtp.host, SMTP_PORT: String(services.smtp.port), SMTP_SECURE: 'false' }
      : {}),
    TENANT: 'test',
    DYNAMODB_TABLE: `ase-lambda-${randomBytes(4).toString('hex')}`,
    DYNAMODB_ENDPOINT: services.dynamodb.endpoint,
    AWS_REGION: services.dynamodb.region,
    AWS_ACCESS_KEY_ID: services.dynamodb.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: services.dynamodb.credentials.secretAccessKey,
    // Short heartbeats and a fast feed poll for the test; the cap stays Lambda's default.
    PING_MIN_HEARTBEAT: '1',
    PING_POLL_SECONDS: '1',
    IMAP_MASTER_USER: services.master.user,
    IMAP_MASTER_PASSWORD: services.master.password,
  };
}

function lambdaServer(runtime: LambdaRuntime): TestServer {
  return { fetch: functionUrlFetch((event) => runtime.http(event)), state: runtime.state, logs: [] };
}

describe('a device session against the Lambda Function URL handler (DynamoDB state)', () => {
  const logs: LogEntry[] = [];
  let runtime: LambdaRuntime;
  let server: TestServer;
  let device: TestDevice;
  let inbox: string;
  let watcherRun: Promise<WatchReport> | undefined;
  const user = createUser(services);

  beforeAll(() => {
    runtime = createLambdaRuntime({
      env: lambdaEnv(),
      log: (e) => logs.push(e),
      watcher: { leaseScanMs: 200, checkIntervalMs: 1_000, durationMs: 10_000 },
    });
    server = lambdaServer(runtime);
    device = new TestDevice(server, user);
  });

  afterAll(async () => {
    await watcherRun;
  }, 40_000);

  it('uses Lambda defaults: DynamoDB state and the Function URL heartbeat cap', () => {
    expect(runtime.config.state.kind).toBe('dynamodb');
    expect(runtime.config.push.maxHeartbeat).toBe(Number(LAMBDA_DEFAULTS.PING_MAX_HEARTBEAT));
    expect(runtime.config.push.maxHeartbeat).toBeLessThan(900);
  });

  it('answers OPTIONS, and a browser GET with the info page as text', async () => {
    const options = await server.fetch('https://eas.example.test/Microsoft-Server-ActiveSync', {
      method: 'OPTIONS',
      headers: { Authorization: `Basic ${Buffer.from(`${user.email}:${user.password}`).toString('base64')}` },
    });
    expect(options.status).toBe(200);
    expect(options.headers.get('ms-asprotocolversions')).toContain('14.1');
    const event = await functionUrlEvent(new Request('https://eas.example.test/Microsoft-Server-ActiveSync'));
    const result = await runtime.http(event);
    expect(result).toMatchObject({ statusCode: 200, isBase64Encoded: false });
    expect(result.body).toContain('Exchange ActiveSync');
  });

  it('Provision: the two-phase handshake gives a final policy key, kept in DynamoDB', async () => {
    const round = await device.provision();
    expect(round.initial.status).toBe(200);
    expect(round.ack?.status).toBe(200);
    expect(device.policyKey).toMatch(/^\d+$/);
    const stored = await runtime.state.getDevice(device.scope);
    expect(stored).toMatchObject({ deviceType: 'iPhone' });
  });

  it('carries WBXML both ways as base64, byte for byte (a FolderSync request and its answer)', async () => {
    const request = encodeWbxml(el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')]));
    const event = await functionUrlEvent(
      new Request(
        `https://eas.example.test/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=${user.name}&DeviceId=${device.deviceId}&DeviceType=iPhone`,
        {
          method: 'POST',
          body: request as BodyInit,
          headers: {
            Authorization: `Basic ${Buffer.from(`${user.email}:${user.password}`).toString('base64')}`,
            'MS-ASProtocolVersion': '14.1',
            'Content-Type': WBXML,
            'X-MS-PolicyKey': device.policyKey!,
          },
        },
      ),
    );
    expect(event.isBase64Encoded).toBe(true);
    expect(Buffer.from(event.body!, 'base64').equals(Buffer.from(request))).toBe(true);
    const result = await runtime.http(event);
    expect(result.statusCode).toBe(200);
    expect(result.isBase64Encoded).toBe(true);
    expect(result.headers?.['content-type']).toBe(WBXML);
    const answer = decodeWbxml(new Uint8Array(Buffer.from(result.body, 'base64')));
    expect(childText(answer, 'Status')).toBe('1');
    expect(children(child(answer, 'Changes'), 'Add').length).toBeGreaterThanOrEqual(5);
  });

  it('FolderSync and Sync: the device gets the Inbox and its messages', async () => {
    await seedInbox(services, user);
    await device.folderSync();
    inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.syncUntilDone(inbox);
    expect(subjectsOf(device, inbox)).toEqual(['Plain note', 'Scan attached']);
  });

  it('ItemOperations: the attachment as a multipart answer, its bytes exact after base64 through the Function URL', async () => {
    await fetchAttachmentMultipart(device, inbox);
  });

  it('Ping: a heartbeat above the Function URL cap gets Status 5 with the cap', async () => {
    const res = await device.send('Ping', pingBody(3000, [inbox]));
    expect(childText(res.body, 'Status')).toBe('5');
    expect(childText(res.body, 'HeartbeatInterval')).toBe(LAMBDA_DEFAULTS.PING_MAX_HEARTBEAT);
  });

  it('Ping: the scheduled watcher function notices a new message, and the Ping answers Status 2', async () => {
    watcherRun = runtime.watch({}, { getRemainingTimeInMillis: () => 900_000 });
    // Well before the 60 s heartbeat: the watcher's feed marker woke it.
    expect(await pingSeesNewMessage(services, user, device, inbox, 60)).toBeLessThan(20_000);
    expect(logs.filter((e) => String(e.event).includes('error'))).toEqual([]);
  }, 30_000);

  it('SendMail: the message reaches the recipient through Postfix', async () => {
    await sendMailArrives(services, device, user);
  });

  it('MoveItems: a message moves to Archive, and the next Syncs do not send it back', async () => {
    await moveToArchive(services, user, device, inbox);
  });

  it('the watcher run ends by itself within its duration and reports it', async () => {
    const report = await watcherRun!;
    expect(report).toMatchObject({ tenants: 1, shards: 16 });
    expect(report.ms).toBeGreaterThanOrEqual(10_000);
    expect(logs.some((e) => e.event === 'watch-run')).toBe(true);
  }, 40_000);
});

describe('the exported Lambda handler without settings', () => {
  it('answers devices 500 "not configured" and logs which setting is missing; the watcher run fails', async () => {
    const saved = process.env.IMAP_HOST;
    delete process.env.IMAP_HOST;
    try {
      const event: FunctionUrlEvent = await functionUrlEvent(
        new Request('https://eas.example.test/Microsoft-Server-ActiveSync', { method: 'OPTIONS' }),
      );
      const res = functionUrlResponse(
        await handler(event, { getRemainingTimeInMillis: () => 1000 } as Parameters<typeof handler>[1]),
      );
      expect(res.status).toBe(500);
      expect(await res.text()).toContain('not configured');
      // The scheduled watcher fails instead, so that the failed run raises the watcher alarm.
      await expect(
        watch(undefined, { getRemainingTimeInMillis: () => 1000 } as Parameters<typeof watch>[1]),
      ).rejects.toThrow(/not configured/);
    } finally {
      if (saved !== undefined) process.env.IMAP_HOST = saved;
    }
  });
});

describe('one Lambda for several tenants (TENANTS)', () => {
  it('keeps each tenant’s device state apart by Host, and the watcher run watches every tenant', async () => {
    const user = createUser(services);
    const tenants = [
      { name: 'alpha', hostnames: ['alpha.example.test'] },
      { name: 'beta', hostnames: ['beta.example.test'] },
    ];
    const logs: LogEntry[] = [];
    const runtime = createLambdaRuntime({
      env: { ...lambdaEnv(), TENANT: '', PROVISIONING: 'loose', TENANTS: JSON.stringify({ tenants }) },
      log: (e) => logs.push(e),
      watcher: { durationMs: 300 },
    });
    const base = lambdaServer(runtime);
    // The same device id of the same user, once per tenant host.
    for (const host of ['alpha.example.test', 'beta.example.test']) {
      const server: TestServer = {
        ...base,
        fetch: (url, init) => base.fetch(url.replace('eas.example.test', host), init),
      };
      const device = new TestDevice(server, user, 'SAMEDEVICE');
      device.autoProvision = false;
      await device.folderSync();
      expect(device.folderByType(FolderType.Inbox)).toBeDefined();
    }
    for (const tenant of ['alpha', 'beta']) {
      expect(
        await runtime.state.getDevice({ tenant, user: user.email.toLowerCase(), deviceId: 'SAMEDEVICE' }),
      ).toMatchObject({ deviceType: 'iPhone' });
    }
    expect(
      await runtime.state.getDevice({ tenant: 'test', user: user.email.toLowerCase(), deviceId: 'SAMEDEVICE' }),
    ).toBeUndefined();
    expect(await runtime.watch({}, { getRemainingTimeInMillis: () => 900_000 })).toMatchObject({ tenants: 2 });
    expect(logs.find((e) => e.event === 'watch-run')).toMatchObject({ tenant: 'alpha,beta' });
  });
});
