/**
 * The Lambda handlers with their secrets in Secrets Manager (issue 17 item 8), the CloudFront origin check (item 23)
 * and the 6 MB response limit: the exported handlers' factory (src/runtimes/lambda.ts lambdaHandlers) reads
 * SECRET_ARN's secret with GetSecretValue from a local emulation of the Secrets Manager API
 * (test/services/secrets-manager.ts: SigV4-checked, the role's one ARN allowed), state in DynamoDB (dynalite), logins
 * at the test Dovecot.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import type { LogEntry } from '../../../src/log.ts';
import {
  LAMBDA_MAX_RESPONSE_BYTES,
  lambdaHandlers,
  type FunctionUrlResult,
  type LambdaHandlers,
} from '../../../src/runtimes/lambda.ts';
import { SECRET_REFRESH_MS, SECRET_STALE_MIN_MS } from '../../../src/runtimes/secret-settings.ts';
import { el } from '../../../src/wbxml/tree.ts';
import { TestDevice, type TestServer } from '../../device/device.ts';
import { functionUrlFetch, type FunctionUrlEvent } from '../../device/function-url.ts';
import { createUser, seedMailbox } from '../../services/seed.ts';
import { spawnNodeServer, startNodeServer, stopNodeServer } from '../../services/node-server.ts';
import { freePort } from '../../services/process.ts';
import { startSecretsManager, type SecretsManagerEmulation } from '../../services/secrets-manager.ts';
import { pingBody } from '../session-steps.ts';

const services = inject('services');
type Context = Parameters<LambdaHandlers['handler']>[1];
const CONTEXT = { getRemainingTimeInMillis: () => 900_000 } as Context;

let sm: SecretsManagerEmulation;

beforeAll(async () => {
  sm = await startSecretsManager(services.dynamodb.region);
});
afterAll(() => sm?.close());

/** What the stack puts in the function's environment: no secret value, the secret's ARN. */
function plainEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    IMAP_HOST: services.imap.host,
    IMAP_PORT: String(services.imap.port),
    IMAP_SECURE: 'false',
    TENANT: 'test',
    DYNAMODB_TABLE: `ase-secrets-${randomBytes(4).toString('hex')}`,
    DYNAMODB_ENDPOINT: services.dynamodb.endpoint,
    AWS_REGION: services.dynamodb.region,
    // One set of credentials for both emulations, as a function role's are for both services.
    AWS_ACCESS_KEY_ID: services.dynamodb.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: services.dynamodb.credentials.secretAccessKey,
    AWS_ENDPOINT_URL_SECRETS_MANAGER: sm.endpoint,
    PING_MIN_HEARTBEAT: '1',
    PING_POLL_SECONDS: '1',
    ...extra,
  };
}

/** Handlers whose Secrets Manager client signs with the emulation's credentials; a clock the test moves. */
function handlers(env: Record<string, string>, logs: LogEntry[], clock = { now: Date.now() }): LambdaHandlers {
  return lambdaHandlers({
    env: {
      ...env,
      AWS_ACCESS_KEY_ID: sm.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: sm.credentials.secretAccessKey,
    },
    log: (e) => logs.push(e),
    secrets: { now: () => clock.now },
    watcher: { leaseScanMs: 200, checkIntervalMs: 1_000, durationMs: 4_000 },
  });
}

/**
 * The credentials the DynamoDB emulation checks are the test's; the runtime's own AWS credentials are those of the
 * Secrets Manager emulation (handlers() above). dynalite accepts any signature, so one set serves both.
 */
function server(h: LambdaHandlers, sizes?: number[]): TestServer {
  return {
    fetch: functionUrlFetch(async (event: FunctionUrlEvent) => {
      const result: FunctionUrlResult = await h.handler(event, CONTEXT);
      sizes?.push(JSON.stringify(result).length);
      return result;
    }),
    state: undefined as unknown as TestServer['state'],
    logs: [],
  };
}

async function admin(h: LambdaHandlers, token: string): Promise<number> {
  const res = await server(h).fetch('https://eas.example.test/admin/devices?tenant=test', {
    headers: { Authorization: `Bearer ${token}` },
  });
  return res.status;
}

function secretName(): string {
  return `activesync-edge/t${randomBytes(4).toString('hex')}`;
}

describe('secrets from Secrets Manager (SECRET_ARN)', () => {
  it('reads them once at cold start: the master login and the admin token work, the environment holds neither', async () => {
    const name = secretName();
    const adminToken = randomBytes(24).toString('hex');
    const arn = sm.put(name, {
      IMAP_MASTER_USER: services.master.user,
      IMAP_MASTER_PASSWORD: services.master.password,
      ADMIN_TOKEN: adminToken,
    });
    sm.allow([`${arn.slice(0, -7)}-??????`]);
    const env = plainEnv({ SECRET_ARN: arn });
    const logs: LogEntry[] = [];
    const h = handlers(env, logs);
    const user = createUser(services);
    const device = new TestDevice(server(h), user);
    await device.folderSync();
    expect(await admin(h, adminToken)).toBe(200);
    expect(await admin(h, 'x'.repeat(32))).toBe(401);
    const runtime = await h.runtime();
    expect(runtime!.config.push.master).toEqual({ user: services.master.user, password: services.master.password });
    // One GetSecretValue for all those events, on the one ARN.
    expect(sm.calls.filter((c) => c.secretId === arn)).toEqual([{ secretId: arn, outcome: 'ok' }]);
    expect(h.secrets.reads).toBe(1);
    // Nothing secret in the environment the function was given, nor in any log line.
    expect(Object.values(env).join('\n')).not.toContain(services.master.password);
    expect(Object.values(env).join('\n')).not.toContain(adminToken);
    expect(JSON.stringify(logs)).not.toContain(services.master.password);
    expect(JSON.stringify(logs)).not.toContain(adminToken);
    expect(logs.find((e) => e.event === 'secrets-read')).toMatchObject({ secrets: 1 });
  });

  it('reads a rotated secret again after SECRET_REFRESH_MS: the new admin token works, the old one no longer', async () => {
    const name = secretName();
    const arn = sm.put(name, { ADMIN_TOKEN: 'a'.repeat(32) });
    sm.allow([arn]);
    const clock = { now: Date.now() };
    const logs: LogEntry[] = [];
    const h = handlers(plainEnv({ SECRET_ARN: arn }), logs, clock);
    expect(await admin(h, 'a'.repeat(32))).toBe(200);
    sm.put(name, { ADMIN_TOKEN: 'b'.repeat(32) });
    // Cached: the old value serves until the refresh is due.
    clock.now += SECRET_REFRESH_MS - 1_000;
    expect(await admin(h, 'a'.repeat(32))).toBe(200);
    clock.now += 1_000;
    expect(await admin(h, 'b'.repeat(32))).toBe(200);
    expect(await admin(h, 'a'.repeat(32))).toBe(401);
    expect(h.secrets.reads).toBe(2);
    expect(logs.some((e) => e.event === 'secrets-changed')).toBe(true);
  });

  it('reads it again soon after the watcher’s master login was refused (a rotated master password)', async () => {
    const name = secretName();
    // The master password was rotated at the mail server and in the secret; this container read it before.
    const arn = sm.put(name, { IMAP_MASTER_USER: services.master.user, IMAP_MASTER_PASSWORD: 'stale-password' });
    sm.allow([arn]);
    const clock = { now: Date.now() };
    const logs: LogEntry[] = [];
    const h = handlers(plainEnv({ SECRET_ARN: arn }), logs, clock);
    const user = createUser(services);
    const device = new TestDevice(server(h), user);
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.sync(inbox);
    await device.sync(inbox);
    // A Ping leaves a watch lease; the watcher run logs in as the master user with what it has, and is refused.
    const ping = device.send('Ping', pingBody(2, [inbox]));
    sm.put(name, { IMAP_MASTER_USER: services.master.user, IMAP_MASTER_PASSWORD: services.master.password });
    clock.now += SECRET_STALE_MIN_MS;
    await h.watch({}, CONTEXT);
    await ping;
    expect(logs.find((e) => e.event === 'watch-error')).toMatchObject({ loginRefused: 1 });
    expect(h.secrets.reads).toBe(1);
    // The next event reads the secret again (long before SECRET_REFRESH_MS) and runs with the new password.
    expect((await h.runtime())!.config.push.master?.password).toBe(services.master.password);
    expect(h.secrets.reads).toBe(2);
  }, 30_000);

  it('a secret the role may not read, or a setting both in the environment and the secret, stops it with a clear log line', async () => {
    const name = secretName();
    const arn = sm.put(name, { ADMIN_TOKEN: 'c'.repeat(32) });
    sm.allow([]);
    const logs: LogEntry[] = [];
    const denied = handlers(plainEnv({ SECRET_ARN: arn }), logs);
    const res = await server(denied).fetch('https://eas.example.test/Microsoft-Server-ActiveSync', {
      method: 'OPTIONS',
    });
    expect(res.status).toBe(500);
    await expect(denied.watch({}, CONTEXT)).rejects.toThrow(/not configured/);
    expect(String(logs.find((e) => e.event === 'config-error')?.error)).toContain('AccessDeniedException');

    sm.allow([arn]);
    const twice: LogEntry[] = [];
    const both = handlers(plainEnv({ SECRET_ARN: arn, ADMIN_TOKEN: 'd'.repeat(32) }), twice);
    expect(await both.runtime()).toBeUndefined();
    const error = String(twice.find((e) => e.event === 'config-error')?.error);
    expect(error).toContain('ADMIN_TOKEN is set in the environment and in secret');
    expect(error).not.toContain('c'.repeat(32));
  });
});

describe('behind CloudFront: ORIGIN_VERIFY_HEADER', () => {
  it('refuses requests that did not come through CloudFront (no header, or the wrong value)', async () => {
    const name = secretName();
    const originSecret = randomBytes(32).toString('hex');
    const arn = sm.put(name, { ORIGIN_VERIFY_SECRET: originSecret });
    sm.allow([arn]);
    const logs: LogEntry[] = [];
    const h = handlers(
      plainEnv({ SECRET_ARN: arn, ORIGIN_VERIFY_HEADER: 'X-Origin-Verify', CLIENT_IP_HEADER: 'X-Viewer-Address' }),
      logs,
    );
    const user = createUser(services);
    const options = (headers: Record<string, string>) =>
      server(h).fetch('https://eas.example.test/Microsoft-Server-ActiveSync', {
        method: 'OPTIONS',
        headers: {
          Authorization: `Basic ${Buffer.from(`${user.email}:${user.password}`).toString('base64')}`,
          'X-Viewer-Address': '203.0.113.9',
          ...headers,
        },
      });
    // A direct caller at the Function URL, choosing its own client address.
    expect((await options({})).status).toBe(403);
    expect((await options({ 'X-Origin-Verify': 'guess'.repeat(10) })).status).toBe(403);
    expect((await options({ 'X-Origin-Verify': originSecret })).status).toBe(200);
    expect(logs.filter((e) => e.event === 'origin-refused')).toHaveLength(2);
    expect(JSON.stringify(logs)).not.toContain(originSecret);
  });

  it('half of the setting stops start-up', async () => {
    const logs: LogEntry[] = [];
    const h = handlers(plainEnv({ ORIGIN_VERIFY_HEADER: 'X-Origin-Verify' }), logs);
    expect(await h.runtime()).toBeUndefined();
    expect(String(logs.find((e) => e.event === 'config-error')?.error)).toContain('ORIGIN_VERIFY_SECRET');
  });
});

describe('the answer budget fits a Lambda response (6 MB)', () => {
  it('defaults MAX_RESPONSE_BYTES to what a response can carry, and lowers a larger setting with a start-up line', async () => {
    const logs: LogEntry[] = [];
    expect((await handlers(plainEnv(), logs).runtime())!.config.maxResponseBytes).toBe(LAMBDA_MAX_RESPONSE_BYTES);
    expect(logs.some((e) => e.event === 'max-response-bytes-lowered')).toBe(false);
    const runtime = await handlers(plainEnv({ MAX_RESPONSE_BYTES: String(32 * 1024 * 1024) }), logs).runtime();
    expect(runtime!.config.maxResponseBytes).toBe(LAMBDA_MAX_RESPONSE_BYTES);
    expect(logs.find((e) => e.event === 'max-response-bytes-lowered')).toMatchObject({
      configured: 32 * 1024 * 1024,
      used: LAMBDA_MAX_RESPONSE_BYTES,
    });
  });

  it('a Sync of messages larger in all than 6 MB, as MIME, comes in answers that each fit', async () => {
    const user = createUser(services);
    await seedMailbox(
      services,
      user,
      'INBOX',
      ['One', 'Two', 'Three', 'Four', 'Five'].map((subject) => ({
        message: {
          from: 'Bob <bob@example.test>',
          to: user.email,
          subject,
          text: `${subject}.\n`,
          attachments: [
            { filename: 'scan.bin', contentType: 'application/octet-stream', content: randomBytes(1 << 20) },
          ],
        },
      })),
    );
    const sizes: number[] = [];
    const h = handlers(plainEnv(), []);
    const device = new TestDevice(server(h, sizes), user);
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    const mime = [
      el('AirSync', 'MIMESupport', '2'),
      el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '4')]),
    ];
    sizes.length = 0;
    const rounds = await device.syncUntilDone(inbox, { windowSize: 50, options: mime });
    expect(rounds.reduce((n, r) => n + r.added.length, 0)).toBe(5);
    // ~7 MB of message source in all (base64 in MIME), ~9.5 MB once base64-encoded for the Function URL.
    expect(sizes.reduce((a, b) => a + b, 0)).toBeGreaterThan(6_000_000);
    expect(Math.max(...sizes)).toBeLessThan(6_000_000);
  }, 120_000);
});

describe('the Node runtime (containers on ECS) with SECRET_ARN', () => {
  it('reads the secret once at start-up: the admin token from it works; a secret it may not read stops start-up', async () => {
    const adminToken = randomBytes(24).toString('hex');
    const arn = sm.put(secretName(), { ADMIN_TOKEN: adminToken });
    sm.allow([arn]);
    const port = await freePort();
    const env = {
      PORT: String(port),
      HOST: '127.0.0.1',
      IMAP_HOST: services.imap.host,
      IMAP_PORT: String(services.imap.port),
      IMAP_SECURE: 'false',
      ALLOW_PLAINTEXT_BACKENDS: 'true',
      STATE_DIR: mkdtempSync(join(tmpdir(), 'ase-secret-node-')),
      AWS_REGION: sm.region,
      AWS_ACCESS_KEY_ID: sm.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: sm.credentials.secretAccessKey,
      AWS_ENDPOINT_URL_SECRETS_MANAGER: sm.endpoint,
      SECRET_ARN: arn,
    };
    const node = await startNodeServer(env);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/admin/devices`, {
        headers: { Authorization: `Bearer ${adminToken}` },
      });
      expect(res.status).toBe(200);
      expect(node.output()).not.toContain(adminToken);
    } finally {
      await stopNodeServer(node);
    }
    sm.allow([]);
    const refused = spawnNodeServer({ ...env, PORT: String(await freePort()) });
    expect(await refused.exited).toBe(2);
    expect(refused.output()).toContain('AccessDeniedException');
  }, 60_000);
});
