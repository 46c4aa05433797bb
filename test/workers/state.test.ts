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
});
