/**
 * The StateStore contract against the Durable Object store, inside workerd: the Worker of wrangler.toml, its
 * StateObject class and SQLite storage, as they run on Cloudflare.
 */
import { runInDurableObject } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import {
  durableObjectStateStore,
  tenantObjectName,
  userObjectName,
  type StateObject,
} from '../../src/state/durable-object.ts';
import { MIGRATIONS } from '../../src/state/sqlite.ts';
import { StateConflictError } from '../../src/state/types.ts';
import { stateStoreContract } from '../state/contract.ts';

stateStoreContract('SQLite (Durable Objects, workerd)', { open: async () => durableObjectStateStore(env.STATE) });

function objectNamed(name: string): DurableObjectStub<StateObject> {
  return env.STATE.get(env.STATE.idFromName(name));
}

/** Every row of `table` in the object's own SQLite database. */
function rowsOf(stub: DurableObjectStub<StateObject>, table: string): Promise<Record<string, SqlStorageValue>[]> {
  return runInDurableObject(stub, (_instance, state) => state.storage.sql.exec(`SELECT * FROM ${table}`).toArray());
}

describe('StateObject storage', () => {
  it('migrates its SQLite database to the newest schema', async () => {
    const store = durableObjectStateStore(env.STATE);
    const user = { tenant: 'schema-tenant', user: 'alice' };
    await store.readFeed(user);
    const versions = (await rowsOf(objectNamed(userObjectName(user)), 'schema_migrations')).map((r) => r.version);
    expect(versions).toEqual(MIGRATIONS.map((m) => m.version));
  });

  it("keeps a user's data in that user's object, and leases in the tenant's object", async () => {
    const store = durableObjectStateStore(env.STATE);
    const tenant = 'placement-tenant';
    const alice = { tenant, user: 'alice', deviceId: 'A1' };
    const bob = { tenant, user: 'bob', deviceId: 'B1' };
    await store.updateDevice(alice, { deviceType: 'iPhone', lastSeen: 1 });
    await store.commitCollection(alice, '5', 'absent', {
      syncKey: '1',
      state: { class: 'Email', watermark: { kind: 'none' }, options: {}, pending: [], clientIds: {} },
    });
    await store.updateDevice(bob, { deviceType: 'Android', lastSeen: 2 });
    await store.putLease({ tenant, user: 'alice', until: Date.now() + 60_000, credential: new Uint8Array([7, 8]) });

    const aliceObject = objectNamed(userObjectName(alice));
    expect((await rowsOf(aliceObject, 'devices')).map((r) => [r.user, r.device_id])).toEqual([['alice', 'A1']]);
    expect((await rowsOf(aliceObject, 'sync_states')).map((r) => [r.user, r.collection_id])).toEqual([['alice', '5']]);
    expect(await rowsOf(aliceObject, 'leases')).toEqual([]);

    const bobObject = objectNamed(userObjectName(bob));
    expect((await rowsOf(bobObject, 'devices')).map((r) => [r.user, r.device_id])).toEqual([['bob', 'B1']]);
    expect(await rowsOf(bobObject, 'sync_states')).toEqual([]);

    const tenantObject = objectNamed(tenantObjectName(tenant));
    const leases = await rowsOf(tenantObject, 'leases');
    expect(leases.map((r) => r.user)).toEqual(['alice']);
    // Blobs are stored as blobs, not as text or JSON.
    expect(leases[0]?.credential).toBeInstanceOf(ArrayBuffer);
    expect(await rowsOf(tenantObject, 'devices')).toEqual([]);
  });

  it('sends the calls issued together to one object as one RPC, each with its own outcome', async () => {
    // The namespace as the store sees it, counting the RPCs its stubs make.
    const rpcs: string[] = [];
    const counted = new Proxy(env.STATE, {
      get(target, property) {
        const value: unknown = Reflect.get(target, property, target);
        if (property !== 'get') return typeof value === 'function' ? value.bind(target) : value;
        return (id: DurableObjectId) => {
          const stub = target.get(id);
          return new Proxy(stub, {
            get(s, p) {
              const member: unknown = Reflect.get(s, p, s);
              if (p === 'invoke' || p === 'invokeAll') rpcs.push(p);
              return member;
            },
          });
        };
      },
    });
    const store = durableObjectStateStore(counted);
    const device = { tenant: 'batch-tenant', user: `u${crypto.randomUUID()}`, deviceId: 'D1' };
    await store.commitCollection(device, '5', 'absent', {
      syncKey: '1',
      state: { class: 'Email', watermark: { kind: 'none' }, options: {}, pending: [], clientIds: {} },
    });
    expect(rpcs).toEqual(['invoke']);
    rpcs.length = 0;
    const [collection, hierarchy, feed, conflict, rules] = await Promise.allSettled([
      store.getCollection(device, '5'),
      store.getHierarchy(device),
      store.readFeed(device),
      store.commitCollection(
        device,
        '5',
        { syncKey: 'stale' },
        {
          syncKey: '2',
          state: { class: 'Email', watermark: { kind: 'none' }, options: {}, pending: [], clientIds: {} },
        },
      ),
      store.getAccessRules(device.tenant),
    ]);
    // The user's object once for four calls, the tenant's once for its one.
    expect(rpcs.sort()).toEqual(['invoke', 'invokeAll']);
    expect(collection).toMatchObject({ status: 'fulfilled', value: { syncKey: '1' } });
    expect(hierarchy).toEqual({ status: 'fulfilled', value: undefined });
    expect(feed).toEqual({ status: 'fulfilled', value: [] });
    expect(conflict.status === 'rejected' && conflict.reason).toBeInstanceOf(StateConflictError);
    expect(rules).toEqual({ status: 'fulfilled', value: undefined });
  });
});
