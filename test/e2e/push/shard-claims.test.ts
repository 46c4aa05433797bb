/**
 * Several Node watcher processes on one DynamoDB table (dynalite here, with the real Dovecot): each IDLE watcher
 * watches only the lease shards it holds a claim on, the claims split the 16 shards between them, a stopped
 * instance hands its shards over at once, and a crashed one's (a claim nobody renews) are taken over on expiry.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, describe, expect, inject, it, vi } from 'vitest';
import { loadConfig } from '../../../src/config.ts';
import { PushHub } from '../../../src/push/feed.ts';
import { startIdleWatcher, type IdleWatcher, type ShardClaims } from '../../../src/push/idle-watcher.ts';
import { createStateTable, DynamoDbStateStore } from '../../../src/state/dynamodb/store.ts';
import { leaseShard } from '../../../src/state/shard.ts';
import { LEASE_SHARDS } from '../../../src/state/types.ts';
import { createUser } from '../../services/seed.ts';

const services = inject('services');
const { dynamodb } = services;
const client = new DynamoDBClient({
  endpoint: dynamodb.endpoint,
  region: dynamodb.region,
  credentials: dynamodb.credentials,
});
const table = `claims-${Date.now()}`;
await createStateTable(client, table);
const state = new DynamoDbStateStore({ client, table });
const push = loadConfig({
  IMAP_HOST: services.imap.host,
  IMAP_PORT: String(services.imap.port),
  IMAP_SECURE: 'false',
  IMAP_MASTER_USER: services.master.user,
  IMAP_MASTER_PASSWORD: services.master.password,
}).push;

const running: IdleWatcher[] = [];
afterAll(async () => {
  await Promise.all(running.map((w) => w.stop()));
  client.destroy();
});

/** One "instance": its own hub, as another process would have. */
function instance(tenant: string, claims: ShardClaims): IdleWatcher {
  const watcher = startIdleWatcher({
    state,
    tenant,
    imap: services.imap,
    push,
    hub: new PushHub(),
    leaseScanMs: 200,
    checkIntervalMs: 60_000,
    claims,
  });
  running.push(watcher);
  return watcher;
}

async function leaseAccounts(tenant: string, count: number): Promise<string[]> {
  const users = Array.from({ length: count }, () => createUser(services).email);
  for (const user of users) await state.putLease({ tenant, user, until: Date.now() + 120_000 });
  return users;
}

const all = Array.from({ length: LEASE_SHARDS }, (_, i) => i);

describe('shard claims of several watcher instances', () => {
  it('split the shards, watch each account once, and hand over the shards of a stopped instance', async () => {
    const tenant = 'claims-a';
    const users = await leaseAccounts(tenant, 10);
    const a = instance(tenant, { instance: 'node-a', maxShards: 8, ttlMs: 4_000 });
    await vi.waitFor(() => expect(a.shards).toHaveLength(8), { timeout: 10_000, interval: 100 });
    const b = instance(tenant, { instance: 'node-b', ttlMs: 4_000 });
    await vi.waitFor(() => expect(b.shards).toHaveLength(8), { timeout: 10_000, interval: 100 });
    expect([...a.shards, ...b.shards].sort((x, y) => x - y)).toEqual(all);

    const inA = users.filter((u) => a.shards.includes(leaseShard(u))).length;
    await vi.waitFor(
      () => {
        expect(a.watching).toBe(inA);
        expect(b.watching).toBe(users.length - inA);
      },
      { timeout: 10_000, interval: 100 },
    );

    // A stops: its claims go with it, and B (no limit) takes every shard and every account.
    await a.stop();
    await vi.waitFor(
      () => {
        expect(b.shards).toEqual(all);
        expect(b.watching).toBe(users.length);
      },
      { timeout: 10_000, interval: 100 },
    );
  });

  it("takes over a crashed instance's shard when its claim expires", async () => {
    const tenant = 'claims-b';
    const [user] = await leaseAccounts(tenant, 1);
    const shard = leaseShard(user!);
    // A claim of an instance that no longer renews it.
    await state.putMarker({ tenant, user: '#watcher', deviceId: '#shards' }, `shard:${shard}`, {
      value: 'crashed',
      expiresAt: Date.now() + 2_000,
    });
    const c = instance(tenant, { instance: 'node-c', ttlMs: 4_000 });
    await vi.waitFor(() => expect(c.shards).toHaveLength(LEASE_SHARDS - 1), { timeout: 10_000, interval: 100 });
    expect(c.shards).not.toContain(shard);
    expect(c.watching).toBe(0);
    await vi.waitFor(
      () => {
        expect(c.shards).toEqual(all);
        expect(c.watching).toBe(1);
      },
      { timeout: 10_000, interval: 100 },
    );
  });
});
