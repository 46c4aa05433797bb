/**
 * Workers' metrics and live feed inside workerd (issue 19 items 3 and 2): each request's figures go to the Analytics
 * Engine dataset bound as METRICS, or without it to a `metrics` log line; GET /admin/live (what `top` reads) answers
 * from the counters in the Durable Object state. No IMAP login here: the Node tests cover those figures.
 */
import { createExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { LiveSnapshot } from '../../src/admin/activity.ts';
import { INSTANCE_DOUBLES } from '../../src/runtimes/cloudflare/analytics.ts';
import worker from '../../src/runtimes/cloudflare/worker.ts';

const URL_ = 'https://eas.example.test/Microsoft-Server-ActiveSync';
const ADMIN_TOKEN = 'workers-admin-token-0123456789abcdef';
const IncomingRequest = Request<unknown, IncomingRequestCfProperties>;

interface DataPoint {
  indexes?: string[];
  blobs?: string[];
  doubles?: number[];
}

function settings(tenant: string): typeof env {
  return { ...env, IMAP_HOST: '127.0.0.1', IMAP_PORT: '1', IMAP_SECURE: 'false', TENANT: tenant, ADMIN_TOKEN };
}

function send(url: string, init: RequestInit<IncomingRequestCfProperties>, withEnv: typeof env): Promise<Response> {
  return worker.fetch(new IncomingRequest(url, init), withEnv, createExecutionContext());
}

const folderSync = (withEnv: typeof env) =>
  send(
    `${URL_}?Cmd=FolderSync&User=alice&DeviceId=D1&DeviceType=iPhone`,
    { method: 'POST', headers: { 'MS-ASProtocolVersion': '14.1' } },
    withEnv,
  );

afterEach(() => {
  vi.restoreAllMocks();
});

describe('Workers metrics', () => {
  it('writes a data point per request, and one for the instance, to the METRICS dataset', async () => {
    const points: DataPoint[] = [];
    const withEnv = { ...settings('metrics-ae'), METRICS: { writeDataPoint: (p: DataPoint) => points.push(p) } };
    expect((await send(URL_, { method: 'OPTIONS' }, withEnv)).status).toBe(401);
    expect((await folderSync(withEnv)).status).toBe(401);
    const requests = points.filter((p) => p.blobs?.[0] === 'request');
    expect(requests.map((p) => p.blobs)).toEqual([
      ['request', 'OPTIONS', '401'],
      ['request', 'FolderSync', '401'],
    ]);
    for (const p of requests) {
      expect(p.indexes).toEqual(['metrics-ae']);
      expect(p.doubles![0]).toBe(1);
      expect(p.doubles![1]).toBe(0);
      expect(p.doubles![2]).toBeGreaterThanOrEqual(0);
    }

    // The live feed reads the counters and leases from the Durable Objects: state operations of this request.
    points.length = 0;
    const live = await send(
      'https://eas.example.test/admin/live',
      { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } },
      withEnv,
    );
    expect(live.status).toBe(200);
    const instance = points.find((p) => p.blobs?.[0] === 'instance');
    expect(instance?.doubles).toHaveLength(INSTANCE_DOUBLES.length);
    expect(instance!.doubles![INSTANCE_DOUBLES.indexOf('stateOperations')]).toBeGreaterThan(16);
  });

  it('writes a metrics log line without the dataset', async () => {
    const lines: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((line: unknown) => void lines.push(String(line)));
    const withEnv = settings('metrics-log');
    expect((await folderSync(withEnv)).status).toBe(401);
    const metrics = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.event === 'metrics');
    expect(metrics).toHaveLength(1);
    expect(metrics[0]).toMatchObject({ tenant: 'metrics-log', requests: 1, failures: 0 });
  });
});

describe('the live feed on Workers', () => {
  it('GET /admin/live counts the requests from the Durable Object counters', async () => {
    const withEnv = settings('live-feed');
    for (let i = 0; i < 3; i++) expect((await folderSync(withEnv)).status).toBe(401);
    const res = await send(
      'https://eas.example.test/admin/live',
      { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } },
      withEnv,
    );
    expect(res.status).toBe(200);
    const live = (await res.json()) as LiveSnapshot;
    expect(live.tenant).toBe('live-feed');
    expect(live.commands).toEqual([expect.objectContaining({ command: 'FolderSync', requests: 3, errors: 0 })]);
    expect(live.commands[0]!.perSecond).toBeGreaterThan(0);
    expect(live.pings).toMatchObject({ leasedAccounts: 0, held: 0 });
    expect(live.failing).toEqual([]);
  });
});
