/**
 * Lambda's metrics (issue 19 item 3): the Function URL handler, invoked with Function URL events against Dovecot and
 * dynalite, writes CloudWatch embedded metric format lines; each is parsed and checked against the format (the
 * `_aws` member, every named metric and dimension present), and the figures against what the device did.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { createLambdaRuntime } from '../../../src/runtimes/lambda.ts';
import { EMF_NAMESPACE } from '../../../src/runtimes/metrics-emf.ts';
import { functionUrlFetch } from '../../device/function-url.ts';
import { TestDevice } from '../../device/device.ts';
import { createUser } from '../../services/seed.ts';

const services = inject('services');

interface EmfDocument {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[];
  };
  [member: string]: unknown;
}

/** A line as CloudWatch reads it: JSON with `_aws`, each metric a number (or numbers), each dimension a string. */
function parseEmf(line: string): EmfDocument {
  const document = JSON.parse(line) as EmfDocument;
  expect(Number.isInteger(document._aws.Timestamp)).toBe(true);
  expect(Math.abs(document._aws.Timestamp - Date.now())).toBeLessThan(600_000);
  for (const directive of document._aws.CloudWatchMetrics) {
    expect(directive.Namespace).toBe(EMF_NAMESPACE);
    for (const set of directive.Dimensions) for (const name of set) expect(typeof document[name]).toBe('string');
    for (const metric of directive.Metrics) {
      expect(['Count', 'Milliseconds', 'Seconds']).toContain(metric.Unit);
      const value = document[metric.Name];
      const values = Array.isArray(value) ? value : [value];
      expect(values.length).toBeGreaterThan(0);
      for (const v of values) expect(typeof v, metric.Name).toBe('number');
    }
  }
  return document;
}

describe('Lambda metrics as CloudWatch embedded metric format', () => {
  it('writes one document per request and one per invocation for the rest', { timeout: 60_000 }, async () => {
    const lines: string[] = [];
    const runtime = createLambdaRuntime({
      env: {
        IMAP_HOST: services.imap.host,
        IMAP_PORT: String(services.imap.port),
        IMAP_SECURE: 'false',
        TENANT: 'test',
        DYNAMODB_TABLE: `ase-emf-${randomBytes(4).toString('hex')}`,
        DYNAMODB_ENDPOINT: services.dynamodb.endpoint,
        AWS_REGION: services.dynamodb.region,
        AWS_ACCESS_KEY_ID: services.dynamodb.credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: services.dynamodb.credentials.secretAccessKey,
      },
      log: () => {},
      metricsOut: (line) => lines.push(line),
    });
    const sent: string[] = [];
    const fetchUrl = functionUrlFetch((event) => runtime.http(event));
    const server = {
      fetch: async (url: string, init?: RequestInit) => {
        const res = await fetchUrl(url, init);
        sent.push(`${new URL(url).searchParams.get('Cmd')} ${res.status}`);
        return res;
      },
      state: runtime.state,
      logs: [],
    };
    const user = createUser(services);
    const device = new TestDevice(server, user);
    await device.folderSync();
    await device.syncUntilDone(device.folderByType(FolderType.Inbox).serverId);
    const refused = await fetchUrl('https://eas.example.test/Microsoft-Server-ActiveSync', {
      method: 'OPTIONS',
      headers: { Authorization: `Basic ${Buffer.from(`${user.email}:wrong-password`).toString('base64')}` },
    });
    expect(refused.status).toBe(401);
    sent.push('OPTIONS 401');

    const documents = lines.map(parseEmf);
    const perRequest = documents.filter((d) => d.Command !== undefined);
    // One document per request, in order, with its command, status and latency.
    expect(perRequest.map((d) => `${d.Command} ${d.Status}`)).toEqual(sent);
    for (const d of perRequest) {
      expect(d._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([['Command'], ['Command', 'Status']]);
      expect(d).toMatchObject({ Requests: 1, Failures: 0, tenant: 'test' });
      expect(d.Latency as number).toBeGreaterThanOrEqual(0);
    }
    // The rest once per invocation: state operations always, the IMAP logins where a login happened.
    const summaries = documents.filter((d) => d.Command === undefined);
    expect(summaries.length).toBe(sent.length);
    const sum = (name: string) => summaries.reduce((n, d) => n + (d[name] as number), 0);
    expect(sum('StateOperations')).toBeGreaterThan(sent.length);
    expect(sum('ImapLogins')).toBeGreaterThanOrEqual(1);
    expect(sum('ImapLoginFailures')).toBe(1);
    expect(summaries.at(-1)).toMatchObject({ ImapLoginFailures: 1, PingsHeld: 0 });
    expect(summaries[0]!._aws.CloudWatchMetrics[0]!.Dimensions).toEqual([[]]);
  });
});
