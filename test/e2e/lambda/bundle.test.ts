/**
 * The Lambda bundle as it deploys (infra/aws/bundle.ts: one ES module, AWS SDK outside), run the way Lambda runs it:
 * a fresh Node.js process imports it and calls the exported `handler` with Function URL events. A bundling mistake
 * (a dynamic require, a file read at import time, a missing dependency) fails here rather than in AWS.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { bundleLambda } from '../../../infra/aws/bundle.ts';
import type { FunctionUrlResult } from '../../../src/runtimes/lambda.ts';
import { decodeWbxml } from '../../../src/wbxml/decoder.ts';
import { encodeWbxml } from '../../../src/wbxml/encoder.ts';
import { child, children, childText, el } from '../../../src/wbxml/tree.ts';
import { WBXML } from '../../device/device.ts';
import { functionUrlEvent } from '../../device/function-url.ts';
import { createUser } from '../../services/seed.ts';
import { startSecretsManager } from '../../services/secrets-manager.ts';

const services = inject('services');
const ROOT = join(import.meta.dirname, '../../..');
/** Inside the repository, so that the bundle finds the AWS SDK in node_modules as Lambda's runtime provides it. */
const DIR = join(ROOT, 'node_modules/.cache/activesync-edge', `lambda-bundle-${randomBytes(4).toString('hex')}`);

/** Reads events (JSON lines) on stdin, calls the bundle's handler with each in turn, prints the results as JSON. */
const RUNNER = `
import { handler } from './lambda.mjs';
let input = '';
for await (const chunk of process.stdin) input += chunk;
const results = [];
for (const line of input.split('\\n').filter(Boolean)) results.push(await handler(JSON.parse(line), { getRemainingTimeInMillis: () => 900000 }));
// Lambda freezes a container after its answer; a process here would wait for the pooled IMAP connection to time out.
process.stdout.write('RESULTS ' + JSON.stringify(results) + '\\n', () => process.exit(0));
`;

function runBundle(events: object[], env: Record<string, string>): Promise<FunctionUrlResult[]> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      ['runner.mjs'],
      {
        cwd: DIR,
        env: {
          PATH: process.env.PATH ?? '',
          NODE_NO_WARNINGS: '1',
          // The test backends' CA (IMAP STARTTLS is required), as vitest.config.ts gives the test processes.
          NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS ?? '',
          ...env,
        },
        timeout: 60_000,
      },
      (err, stdout, stderr) => {
        const line = stdout.split('\n').find((l) => l.startsWith('RESULTS '));
        if (err || !line) reject(new Error(`the bundle failed: ${err?.message ?? ''}\n${stdout}\n${stderr}`));
        else resolve(JSON.parse(line.slice('RESULTS '.length)) as FunctionUrlResult[]);
      },
    );
    child.stdin!.end(events.map((e) => JSON.stringify(e)).join('\n'));
  });
}

beforeAll(async () => {
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  await bundleLambda(DIR);
  writeFileSync(join(DIR, 'runner.mjs'), RUNNER);
  return () => rmSync(DIR, { recursive: true, force: true });
}, 60_000);

describe('the bundled Lambda handler in a fresh Node.js process', () => {
  it('answers OPTIONS, a FolderSync with WBXML (base64 both ways, state in DynamoDB), and the admin API with the token from Secrets Manager', async () => {
    const user = createUser(services);
    const url = `https://abc.lambda-url.eu-west-1.on.aws/Microsoft-Server-ActiveSync?Cmd=FolderSync&User=${user.name}&DeviceId=BUNDLE1&DeviceType=iPhone`;
    const events = [
      await functionUrlEvent(
        new Request('https://abc.lambda-url.eu-west-1.on.aws/Microsoft-Server-ActiveSync', {
          method: 'OPTIONS',
          headers: { Authorization: `Basic ${Buffer.from(`${user.email}:${user.password}`).toString('base64')}` },
        }),
      ),
      await functionUrlEvent(
        new Request(url, {
          method: 'POST',
          body: encodeWbxml(el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', '0')])) as BodyInit,
          headers: {
            Authorization: `Basic ${Buffer.from(`${user.email}:${user.password}`).toString('base64')}`,
            'MS-ASProtocolVersion': '14.1',
            'Content-Type': WBXML,
          },
        }),
      ),
    ];
    // The admin token comes from the secret SECRET_ARN names (the AWS SDK's Secrets Manager client is outside the
    // bundle, as the Lambda runtime provides it).
    const sm = await startSecretsManager(services.dynamodb.region);
    const adminToken = randomBytes(20).toString('hex');
    const arn = sm.put('activesync-edge/bundle', { ADMIN_TOKEN: adminToken });
    sm.allow([arn]);
    events.push(
      await functionUrlEvent(
        new Request('https://abc.lambda-url.eu-west-1.on.aws/admin/devices?tenant=test', {
          headers: { Authorization: `Bearer ${adminToken}` },
        }),
      ),
    );
    const [options, folderSync, admin] = await runBundle(events, {
      IMAP_HOST: services.imap.host,
      IMAP_PORT: String(services.imap.port),
      IMAP_SECURE: 'false',
      TENANT: 'test',
      // No Provision in this short script.
      PROVISIONING: 'loose',
      DYNAMODB_TABLE: `ase-bundle-${randomBytes(4).toString('hex')}`,
      DYNAMODB_ENDPOINT: services.dynamodb.endpoint,
      AWS_REGION: services.dynamodb.region,
      // The emulation's credentials sign both services' requests; dynalite takes any.
      AWS_ACCESS_KEY_ID: sm.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: sm.credentials.secretAccessKey,
      AWS_ENDPOINT_URL_SECRETS_MANAGER: sm.endpoint,
      SECRET_ARN: arn,
    }).finally(() => sm.close());
    expect(admin!.statusCode).toBe(200);
    expect(sm.calls).toEqual([{ secretId: arn, outcome: 'ok' }]);
    expect(options!.statusCode).toBe(200);
    expect(options!.headers?.['ms-asprotocolversions']).toContain('16.1');
    expect(folderSync).toMatchObject({ statusCode: 200, isBase64Encoded: true, headers: { 'content-type': WBXML } });
    const answer = decodeWbxml(new Uint8Array(Buffer.from(folderSync!.body, 'base64')));
    expect(childText(answer, 'Status')).toBe('1');
    expect(children(child(answer, 'Changes'), 'Add').map((a) => childText(a, 'DisplayName'))).toEqual(
      expect.arrayContaining(['Inbox', 'Sent', 'Trash']),
    );
  }, 60_000);
});
