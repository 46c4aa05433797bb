/**
 * The StateStore contract: one suite, run against every implementation (better-sqlite3 in Node, the Durable Object
 * driver inside workerd, DynamoDB on dynalite). A store that passes keeps sync state the way DESIGN §4 requires.
 */
import { describe, expect, it } from 'vitest';
import { decodeUidSet, encodeUidSet } from '../../src/state/uidset.ts';
import { leaseShard } from '../../src/state/shard.ts';
import {
  mailFolderKey,
  StateConflictError,
  type CaptureRecord,
  type CaptureRule,
  type CapturedExchange,
  type CollectionState,
  type DeviceScope,
  type HierarchyState,
  type KeyedState,
  type StateStore,
} from '../../src/state/types.ts';

export interface ContractOptions {
  /** A fresh store, or one on shared storage: every test uses its own tenant, so stores may be shared. */
  open(): Promise<StateStore>;
}

let counter = 0;
/** A tenant no other test uses, so tests may share a store and run in any order. */
function freshTenant(): string {
  counter += 1;
  return `t${Date.now().toString(36)}${counter}${Math.random().toString(36).slice(2, 6)}`;
}

function device(tenant = freshTenant(), user = 'alice@example.test', deviceId = 'DEV1'): DeviceScope {
  return { tenant, user, deviceId };
}

const HOUR = 3_600_000;

function hierarchy(syncKey: string, names: string[] = ['Inbox']): KeyedState<HierarchyState> {
  return {
    syncKey,
    state: {
      folders: names.map((displayName, i) => ({
        serverId: String(i + 1),
        parentId: '0',
        displayName,
        type: i === 0 ? 2 : 12,
        source: { backend: 'imap', ref: i === 0 ? 'INBOX' : displayName },
      })),
    },
  };
}

function collection(syncKey: string, uids: number[] = [1, 2, 3]): KeyedState<CollectionState> {
  return {
    syncKey,
    state: {
      class: 'Email',
      watermark: { kind: 'imap', uidValidity: 1700000000, highestModSeq: '123456789012', uids: encodeUidSet(uids) },
      options: {
        filterType: 3,
        bodyPreferences: [{ type: 2, truncationSize: 51200 }],
        mimeSupport: 0,
        conflict: 1,
        windowSize: 25,
      },
      pending: [
        { kind: 'add', serverId: '5:44' },
        { kind: 'softdelete', serverId: '5:2' },
      ],
      clientIds: { 'client-1': '5:45' },
    },
  };
}

async function expectConflict(p: Promise<unknown>): Promise<void> {
  await expect(p).rejects.toBeInstanceOf(StateConflictError);
}

export function stateStoreContract(name: string, options: ContractOptions): void {
  describe(`StateStore contract: ${name}`, () => {
    const open = options.open;

    describe('devices', () => {
      it('creates a device on first update, then changes only the fields given', async () => {
        const store = await open();
        const d = device();
        expect(await store.getDevice(d)).toBeUndefined();
        const created = await store.updateDevice(d, {
          deviceType: 'iPhone',
          userAgent: 'Apple-iPhone/1',
          protocolVersion: '14.1',
          lastSeen: 1000,
        });
        expect(created).toMatchObject({
          deviceId: 'DEV1',
          deviceType: 'iPhone',
          provisioning: 'none',
          wipe: 'none',
          firstSeen: 1000,
          lastSeen: 1000,
        });

        await store.updateDevice(d, {
          deviceType: 'iPhone',
          model: 'iPhone15,2',
          policyKey: '1234',
          provisioning: 'provisioned',
          lastSeen: 2000,
        });
        const read = await store.getDevice(d);
        expect(read).toEqual({
          deviceId: 'DEV1',
          deviceType: 'iPhone',
          userAgent: 'Apple-iPhone/1',
          protocolVersion: '14.1',
          model: 'iPhone15,2',
          policyKey: '1234',
          provisioning: 'provisioned',
          wipe: 'none',
          firstSeen: 1000,
          lastSeen: 2000,
        });
      });

      it('keeps the provisioning and wipe fields (policy hash, wipe kind, acknowledgement) as given', async () => {
        const store = await open();
        const d = device();
        await store.updateDevice(d, { deviceType: 'iPhone', lastSeen: 1 });
        await store.updateDevice(d, {
          deviceType: 'iPhone',
          policyKey: '3942919513',
          provisioning: 'provisioned',
          policyHash: 'ab12',
          lastSeen: 2,
        });
        await store.updateDevice(d, {
          deviceType: 'iPhone',
          wipe: 'requested',
          wipeKind: 'account',
          wipeRequestedAt: 3,
        });
        await store.updateDevice(d, {
          deviceType: 'iPhone',
          wipe: 'acknowledged',
          wipeAcknowledgedAt: 4,
          wipeAckStatus: 1,
        });
        expect(await store.getDevice(d)).toMatchObject({
          policyKey: '3942919513',
          provisioning: 'provisioned',
          policyHash: 'ab12',
          wipe: 'acknowledged',
          wipeKind: 'account',
          wipeRequestedAt: 3,
          wipeAcknowledgedAt: 4,
          wipeAckStatus: 1,
          lastSeen: 2,
        });
      });

      it('lists the devices of a user, and of that user only', async () => {
        const store = await open();
        const tenant = freshTenant();
        await store.updateDevice(device(tenant, 'alice', 'A1'), { deviceType: 'iPhone', lastSeen: 1 });
        await store.updateDevice(device(tenant, 'alice', 'A2'), { deviceType: 'Android', lastSeen: 2 });
        await store.updateDevice(device(tenant, 'bob', 'B1'), { deviceType: 'iPad', lastSeen: 3 });
        const alices = await store.listDevices({ tenant, user: 'alice' });
        expect(alices.map((x) => x.deviceId).sort()).toEqual(['A1', 'A2']);
        expect(await store.listDevices({ tenant, user: 'carol' })).toEqual([]);
      });

      it('deletes a device with all its state, and nothing of its siblings', async () => {
        const store = await open();
        const tenant = freshTenant();
        const gone = device(tenant, 'alice', 'GONE');
        const kept = device(tenant, 'alice', 'KEPT');
        for (const d of [gone, kept]) {
          await store.updateDevice(d, { deviceType: 'iPhone', lastSeen: 1 });
          await store.commitHierarchy(d, 'absent', hierarchy('1'));
          await store.commitCollection(d, '5', 'absent', collection('1'));
          await store.putPingCache(d, {
            heartbeatInterval: 480,
            folders: [{ id: '5', class: 'Email' }],
            expiresAt: Date.now() + HOUR,
          });
          await store.putSyncRequestCache(d, {
            collections: [{ collectionId: '5', syncKey: '1' }],
            expiresAt: Date.now() + HOUR,
          });
        }
        await store.deleteDevice(gone);
        expect(await store.getDevice(gone)).toBeUndefined();
        expect(await store.getHierarchy(gone)).toBeUndefined();
        expect(await store.getCollection(gone, '5')).toBeUndefined();
        expect(await store.listCollections(gone)).toEqual([]);
        expect(await store.getPingCache(gone)).toBeUndefined();
        expect(await store.getSyncRequestCache(gone)).toBeUndefined();

        expect(await store.getDevice(kept)).toBeDefined();
        expect((await store.getHierarchy(kept))?.syncKey).toBe('1');
        expect((await store.getCollection(kept, '5'))?.syncKey).toBe('1');
        expect(await store.getPingCache(kept)).toBeDefined();
        expect(await store.getSyncRequestCache(kept)).toBeDefined();
      });
    });

    describe('user settings', () => {
      it("stores a user's settings whole, per user, and replaces them whole", async () => {
        const store = await open();
        const tenant = freshTenant();
        const alice = { tenant, user: 'alice' };
        expect(await store.getUserSettings(alice)).toBeUndefined();
        const oof = {
          state: 2,
          startTime: '2026-05-01T00:00:00.000Z',
          endTime: '2026-05-24T00:00:00.000Z',
          messages: [
            {
              audience: 'internal' as const,
              enabled: true,
              replyMessage: 'Bis 24.05. nicht im Büro',
              bodyType: 'Text',
            },
            { audience: 'externalKnown' as const, enabled: false, replyMessage: '', bodyType: 'HTML' },
          ],
          applied: false,
        };
        await store.putUserSettings(alice, { oof, updatedAt: 1000 });
        expect(await store.getUserSettings(alice)).toEqual({ oof, updatedAt: 1000 });
        expect(await store.getUserSettings({ tenant, user: 'bob' })).toBeUndefined();
        expect(await store.getUserSettings({ tenant: freshTenant(), user: 'alice' })).toBeUndefined();

        await store.putUserSettings(alice, { updatedAt: 2000 });
        expect(await store.getUserSettings(alice)).toEqual({ updatedAt: 2000 });
      });

      it('keeps mail flag details per user, folder and UID', async () => {
        const store = await open();
        const tenant = freshTenant();
        const alice = { tenant, user: 'alice' };
        const folder = mailFolderKey('INBOX', 1700000000);
        expect(await store.getMailFlags(alice, folder)).toEqual({});
        const active = {
          status: '2' as const,
          fields: [
            ['Email', 'Status', '2'],
            ['Tasks', 'DueDate', '2026-02-24T08:00:00.000Z'],
          ] as ['Email' | 'Tasks', string, string][],
        };
        const complete = { status: '1' as const, fields: [['Email', 'Status', '1']] as ['Email', string, string][] };
        await store.putMailFlags(alice, folder, { '7': active, '9': complete });
        expect(await store.getMailFlags(alice, folder)).toEqual({ '7': active, '9': complete });
        // Another folder, the same mailbox after a new UIDVALIDITY, another user, another tenant: nothing.
        expect(await store.getMailFlags(alice, mailFolderKey('Archive', 1700000000))).toEqual({});
        expect(await store.getMailFlags(alice, mailFolderKey('INBOX', 1700000001))).toEqual({});
        expect(await store.getMailFlags({ tenant, user: 'bob' }, folder)).toEqual({});
        expect(await store.getMailFlags({ tenant: freshTenant(), user: 'alice' }, folder)).toEqual({});
        await store.putMailFlags(alice, folder, { '7': null, '9': active });
        expect(await store.getMailFlags(alice, folder)).toEqual({ '9': active });
        // A device of the user going does not take them.
        const d = { ...alice, deviceId: 'DEV1' };
        await store.updateDevice(d, { deviceType: 'iPhone', lastSeen: 1 });
        await store.deleteDevice(d);
        expect(await store.getMailFlags(alice, folder)).toEqual({ '9': active });
      });

      it('keeps conversation rules per user until they expire', async () => {
        const store = await open();
        const tenant = freshTenant();
        const alice = { tenant, user: 'alice' };
        expect(await store.listConversationRules(alice)).toEqual([]);
        const now = Date.now();
        const rule = {
          conversationId: '0a1b2c',
          destination: 'Archive',
          deviceId: 'DEV1',
          createdAt: now,
          until: now + 60_000,
        };
        await store.putConversationRule(alice, rule);
        await store.putConversationRule(alice, { ...rule, conversationId: 'ffee', until: now - 1 });
        expect(await store.listConversationRules(alice)).toEqual([rule]);
        expect(await store.listConversationRules({ tenant, user: 'bob' })).toEqual([]);
        const moved = { ...rule, destination: 'Deleted Items', until: now + 120_000 };
        await store.putConversationRule(alice, moved);
        expect(await store.listConversationRules(alice)).toEqual([moved]);
        await store.deleteConversationRule(alice, '0a1b2c');
        expect(await store.listConversationRules(alice)).toEqual([]);
      });

      it('keeps user settings when a device of the user is deleted, and lists no device for them', async () => {
        const store = await open();
        const d = device();
        const user = { tenant: d.tenant, user: d.user };
        await store.updateDevice(d, { deviceType: 'iPhone', lastSeen: 1 });
        await store.putUserSettings(user, { updatedAt: 5 });
        expect((await store.listDevices(user)).map((x) => x.deviceId)).toEqual(['DEV1']);
        await store.deleteDevice(d);
        expect(await store.getUserSettings(user)).toEqual({ updatedAt: 5 });
        expect(await store.listDevices(user)).toEqual([]);
      });
    });

    describe('folder hierarchy', () => {
      it('stores the folder list under its key and advances the key only from the current one', async () => {
        const store = await open();
        const d = device();
        expect(await store.getHierarchy(d)).toBeUndefined();
        await store.commitHierarchy(d, 'absent', hierarchy('1', ['Inbox', 'Archive']));
        expect(await store.getHierarchy(d)).toEqual(hierarchy('1', ['Inbox', 'Archive']));

        await expectConflict(store.commitHierarchy(d, 'absent', hierarchy('1')));
        await expectConflict(store.commitHierarchy(d, { syncKey: '0' }, hierarchy('2')));
        await store.commitHierarchy(d, { syncKey: '1' }, hierarchy('2', ['Inbox', 'Archive', 'Projects']));
        expect((await store.getHierarchy(d))?.state.folders.map((f) => f.displayName)).toEqual([
          'Inbox',
          'Archive',
          'Projects',
        ]);
        await expectConflict(store.commitHierarchy(d, { syncKey: '1' }, hierarchy('3')));

        // FolderSync with key 0 starts over whatever is stored.
        await store.commitHierarchy(d, 'any', hierarchy('1'));
        expect((await store.getHierarchy(d))?.syncKey).toBe('1');
      });

      it("keeps the previous key's response for a replay, until it expires", async () => {
        const store = await open();
        const d = device();
        const response = new Uint8Array([0x03, 0x01, 0x6a, 0x00, 0x00, 0x07, 0x56, 0x01]);
        await store.commitHierarchy(d, 'absent', {
          ...hierarchy('1'),
          replay: { syncKey: '0', response, expiresAt: Date.now() + HOUR },
        });
        const read = await store.getHierarchy(d);
        expect(read?.replay?.syncKey).toBe('0');
        expect(read?.replay?.response).toEqual(response);

        await store.commitHierarchy(
          d,
          { syncKey: '1' },
          { ...hierarchy('2'), replay: { syncKey: '1', response, expiresAt: Date.now() - 1 } },
        );
        const later = await store.getHierarchy(d);
        expect(later?.syncKey).toBe('2');
        expect(later?.replay).toBeUndefined();
      });
    });

    describe('collections', () => {
      it('round-trips every part of a collection state', async () => {
        const store = await open();
        const d = device();
        const replay = { syncKey: '0', response: new Uint8Array([1, 2, 3, 0, 255]), expiresAt: Date.now() + HOUR };
        const first = { ...collection('1'), replay };
        await store.commitCollection(d, '5', 'absent', first);
        expect(await store.getCollection(d, '5')).toEqual(first);

        const dav: KeyedState<CollectionState> = {
          syncKey: '{1b4e28ba-2fa1-11d2-883f-0016d3cca427}1',
          state: {
            class: 'Calendar',
            watermark: {
              kind: 'dav',
              syncToken: 'http://radicale.org/ns/sync/abc',
              etags: { '/alice/cal/e1.ics': '"e1"', '/alice/cal/e2.ics': '"e2"' },
            },
            options: { filterType: 4 },
            pending: [],
            clientIds: {},
          },
        };
        await store.commitCollection(d, 'cal', 'absent', dav);
        expect(await store.getCollection(d, 'cal')).toEqual(dav);
        expect((await store.listCollections(d)).sort()).toEqual(['5', 'cal']);
      });

      it('advances a Sync key only by compare-and-set', async () => {
        const store = await open();
        const d = device();
        await store.commitCollection(d, '5', 'absent', collection('1'));
        await expectConflict(store.commitCollection(d, '5', 'absent', collection('1')));
        await expectConflict(store.commitCollection(d, '5', { syncKey: '7' }, collection('8')));
        await store.commitCollection(d, '5', { syncKey: '1' }, collection('2', [1, 2, 3, 4]));
        const read = await store.getCollection(d, '5');
        expect(read?.syncKey).toBe('2');
        expect(decodeUidSet(read!.state.watermark.kind === 'imap' ? read!.state.watermark.uids : '')).toEqual([
          1, 2, 3, 4,
        ]);
        // A conflict leaves the winner's state untouched.
        await expectConflict(store.commitCollection(d, '5', { syncKey: '1' }, collection('2', [9])));
        expect((await store.getCollection(d, '5'))?.state).toEqual(read!.state);
      });

      it('keeps the replay a state was read with when that state is committed again (a resend counted)', async () => {
        const store = await open();
        const d = device();
        const response = new Uint8Array(300_000).map((_, i) => (i * 31) % 251);
        await store.commitCollection(d, '5', 'absent', {
          ...collection('2'),
          replay: { syncKey: '1', response, expiresAt: Date.now() + HOUR },
        });
        const read = (await store.getCollection(d, '5'))!;
        await store.commitCollection(d, '5', { syncKey: '2' }, { ...read, state: collection('2', [7]).state });
        const again = (await store.getCollection(d, '5'))!;
        expect(again.state.watermark).toMatchObject({ uids: encodeUidSet([7]) });
        expect(again.replay?.syncKey).toBe('1');
        expect(again.replay?.response).toEqual(response);
        // A commit from a state read before another moved the key on loses, and stores nothing.
        await store.commitCollection(d, '5', { syncKey: '2' }, collection('3'));
        await expectConflict(store.commitCollection(d, '5', { syncKey: '2' }, { ...again, state: read.state }));
        expect(await store.getCollection(d, '5')).toEqual(collection('3'));
      });

      it('gives exactly one of many concurrent commits from one key the win', async () => {
        const store = await open();
        const d = device();
        await store.commitCollection(d, '5', 'absent', collection('1'));
        const attempts = Array.from({ length: 12 }, (_, i) =>
          store.commitCollection(d, '5', { syncKey: '1' }, collection(`2-${i}`, [i + 100])),
        );
        const results = await Promise.allSettled(attempts);
        const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
        expect(winners).toHaveLength(1);
        for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(StateConflictError);
        const stored = await store.getCollection(d, '5');
        expect(stored?.syncKey).toBe(`2-${winners[0]}`);
        expect(stored?.state.watermark).toMatchObject({ uids: encodeUidSet([winners[0]! + 100]) });
      });

      it('lets concurrent first syncs of one collection race with one winner, too', async () => {
        const store = await open();
        const d = device();
        const results = await Promise.allSettled(
          Array.from({ length: 8 }, (_, i) => store.commitCollection(d, '9', 'absent', collection(`1-${i}`))),
        );
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      });

      it('does not make commits to different collections conflict', async () => {
        const store = await open();
        const d = device();
        const ids = ['1', '2', '3', '4', '5', '6'];
        await Promise.all(ids.map((id) => store.commitCollection(d, id, 'absent', collection('1'))));
        await Promise.all(ids.map((id) => store.commitCollection(d, id, { syncKey: '1' }, collection('2'))));
        for (const id of ids) expect((await store.getCollection(d, id))?.syncKey).toBe('2');
      });

      it('deletes one collection', async () => {
        const store = await open();
        const d = device();
        await store.commitCollection(d, '5', 'absent', collection('1'));
        await store.commitCollection(d, '6', 'absent', collection('1'));
        await store.deleteCollection(d, '5');
        expect(await store.getCollection(d, '5')).toBeUndefined();
        expect(await store.listCollections(d)).toEqual(['6']);
        await store.commitCollection(d, '5', 'absent', collection('1'));
      });

      it('round-trips a 100,000-message folder state and a 100,000-item address book', async () => {
        const store = await open();
        const d = device();
        // Every other message deleted: the worst case for range compression.
        const uids = Array.from({ length: 100_000 }, (_, i) => 2 * i + 1);
        const mail = collection('1', uids);
        mail.replay = {
          syncKey: '0',
          response: new Uint8Array(600_000).map((_, i) => (i * 7919) % 251),
          expiresAt: Date.now() + HOUR,
        };
        await store.commitCollection(d, 'big', 'absent', mail);
        const readMail = await store.getCollection(d, 'big');
        expect(readMail?.state.watermark.kind === 'imap' && decodeUidSet(readMail.state.watermark.uids)).toEqual(uids);
        expect(readMail?.replay?.response).toEqual(mail.replay.response);

        const etags = Object.fromEntries(
          Array.from({ length: 100_000 }, (_, i) => [
            `/dav/alice/contacts/${i.toString(16).padStart(8, '0')}.vcf`,
            `"${(i * 2654435761) >>> 0}"`,
          ]),
        );
        const book: KeyedState<CollectionState> = {
          syncKey: '1',
          state: {
            class: 'Contacts',
            watermark: { kind: 'dav', syncToken: 'tok', etags },
            options: {},
            pending: [],
            clientIds: {},
          },
        };
        await store.commitCollection(d, 'book', 'absent', book);
        expect(await store.getCollection(d, 'book')).toEqual(book);

        // And it moves on from there: the big state is replaced, not appended to.
        await store.commitCollection(
          d,
          'book',
          { syncKey: '1' },
          {
            ...book,
            syncKey: '2',
            state: { ...book.state, watermark: { kind: 'dav', syncToken: 't2', etags: { a: 'b' } } },
          },
        );
        expect((await store.getCollection(d, 'book'))?.state.watermark).toEqual({
          kind: 'dav',
          syncToken: 't2',
          etags: { a: 'b' },
        });
      });
    });

    describe('caches', () => {
      it('keeps the last Ping and the last full Sync request until they expire', async () => {
        const store = await open();
        const d = device();
        expect(await store.getPingCache(d)).toBeUndefined();
        const ping = {
          heartbeatInterval: 900,
          folders: [
            { id: '5', class: 'Email' },
            { id: 'cal', class: 'Calendar' },
          ],
          expiresAt: Date.now() + HOUR,
        };
        await store.putPingCache(d, ping);
        expect(await store.getPingCache(d)).toEqual(ping);

        const sync = {
          windowSize: 100,
          wait: 5,
          collections: [
            { collectionId: '5', syncKey: '3', windowSize: 25, getChanges: true, options: { filterType: 3 } },
          ],
          expiresAt: Date.now() + HOUR,
        };
        await store.putSyncRequestCache(d, sync);
        expect(await store.getSyncRequestCache(d)).toEqual(sync);

        await store.putPingCache(d, { ...ping, expiresAt: Date.now() - 1 });
        await store.putSyncRequestCache(d, { ...sync, expiresAt: Date.now() - 1 });
        expect(await store.getPingCache(d)).toBeUndefined();
        expect(await store.getSyncRequestCache(d)).toBeUndefined();
      });
    });

    describe('change feed', () => {
      it("keeps each folder's newest marker, and drops expired entries from reads", async () => {
        const store = await open();
        const user = { tenant: freshTenant(), user: 'alice' };
        expect(await store.readFeed(user)).toEqual([]);
        await store.putFeedEntry(user, { folder: 'INBOX', marker: '100', changedAt: 1, expiresAt: Date.now() + HOUR });
        await store.putFeedEntry(user, { folder: 'INBOX', marker: '101', changedAt: 2, expiresAt: Date.now() + HOUR });
        await store.putFeedEntry(user, { folder: 'Sent', marker: '7', changedAt: 3, expiresAt: Date.now() + HOUR });
        await store.putFeedEntry(user, { folder: 'Old', marker: '1', changedAt: 4, expiresAt: Date.now() - 1 });
        const feed = await store.readFeed(user);
        expect(feed.sort((a, b) => a.folder.localeCompare(b.folder))).toEqual([
          { folder: 'INBOX', marker: '101', changedAt: 2, expiresAt: expect.any(Number) },
          { folder: 'Sent', marker: '7', changedAt: 3, expiresAt: expect.any(Number) },
        ]);
      });
    });

    describe('markers', () => {
      it('claims a name once until the marker expires; put replaces, delete frees it', async () => {
        const store = await open();
        const d = device();
        const other = { ...d, deviceId: 'DEV2' };
        const sending = { value: 'sending', expiresAt: Date.now() + HOUR };
        expect(await store.claimMarker(d, 'compose:c1', sending)).toBeUndefined();
        expect(await store.claimMarker(d, 'compose:c1', { value: 'other', expiresAt: Date.now() + 2 * HOUR })).toEqual(
          sending,
        );
        // Names are per device.
        expect(await store.claimMarker(other, 'compose:c1', sending)).toBeUndefined();

        const sent = { value: 'sent', expiresAt: Date.now() + 3 * HOUR };
        await store.putMarker(d, 'compose:c1', sent);
        expect(await store.claimMarker(d, 'compose:c1', sending)).toEqual(sent);
        await store.deleteMarker(d, 'compose:c1');
        expect(await store.claimMarker(d, 'compose:c1', sending)).toBeUndefined();

        // An expired marker is as good as absent.
        await store.putMarker(d, 'compose:c2', { value: 'sent', expiresAt: Date.now() - 1 });
        expect(await store.claimMarker(d, 'compose:c2', sending)).toBeUndefined();
        expect(await store.claimMarker(d, 'compose:c2', sent)).toEqual(sending);
      });

      it('lets exactly one of concurrent claims win, keeps names with separators apart, and goes with the device', async () => {
        const store = await open();
        const d = device();
        const results = await Promise.all(
          Array.from({ length: 8 }, (_, i) =>
            store.claimMarker(d, 'compose:race', { value: `v${i}`, expiresAt: Date.now() + HOUR }),
          ),
        );
        expect(results.filter((r) => r === undefined)).toHaveLength(1);
        const winner = results.find((r) => r !== undefined)!.value;
        for (const r of results) if (r !== undefined) expect(r.value).toBe(winner);

        for (const name of ['a#b', 'a%23b', 'a:b', 'ping', 'sync-request']) {
          expect(await store.claimMarker(d, name, { value: name, expiresAt: Date.now() + HOUR })).toBeUndefined();
        }
        expect((await store.claimMarker(d, 'a#b', { value: 'x', expiresAt: Date.now() + HOUR }))?.value).toBe('a#b');
        // Marker names do not meet the caches.
        expect(await store.getPingCache(d)).toBeUndefined();

        await store.updateDevice(d, { deviceType: 'iPhone', lastSeen: 1 });
        await store.deleteDevice(d);
        expect(
          await store.claimMarker(d, 'compose:race', { value: 'new', expiresAt: Date.now() + HOUR }),
        ).toBeUndefined();
      });
    });

    describe('failed logins', () => {
      it('counts failures per tenant and key within a window, and clears a key', async () => {
        const store = await open();
        const tenant = freshTenant();
        const other = freshTenant();
        expect(await store.getAuthFailures(tenant, 'user:alice')).toBeUndefined();
        const first = await store.addAuthFailure(tenant, 'user:alice', HOUR);
        expect(first.count).toBe(1);
        expect(first.resetAt).toBeGreaterThan(Date.now());
        // Concurrent failures are all counted, and the window stays the first one's.
        await Promise.all(Array.from({ length: 5 }, () => store.addAuthFailure(tenant, 'user:alice', HOUR)));
        expect(await store.getAuthFailures(tenant, 'user:alice')).toEqual({ count: 6, resetAt: first.resetAt });
        // Keys and tenants are apart; keys with separators too.
        expect(await store.getAuthFailures(tenant, 'ip:alice')).toBeUndefined();
        expect(await store.getAuthFailures(other, 'user:alice')).toBeUndefined();
        expect((await store.addAuthFailure(tenant, 'user:a#b', HOUR)).count).toBe(1);
        expect(await store.getAuthFailures(tenant, 'user:a%23b')).toBeUndefined();

        await store.clearAuthFailures(tenant, 'user:alice');
        expect(await store.getAuthFailures(tenant, 'user:alice')).toBeUndefined();
        expect((await store.addAuthFailure(tenant, 'user:alice', HOUR)).count).toBe(1);
      });

      it('refunds one counted failure while the window lasts, never below zero, and never starts a window', async () => {
        const store = await open();
        const tenant = freshTenant();
        const first = await store.addAuthFailure(tenant, 'pair:bob|192.0.2.7', HOUR);
        await Promise.all(Array.from({ length: 4 }, () => store.addAuthFailure(tenant, 'pair:bob|192.0.2.7', HOUR)));
        // Concurrent refunds are all taken back, and the window stays.
        await Promise.all(Array.from({ length: 3 }, () => store.refundAuthFailure(tenant, 'pair:bob|192.0.2.7')));
        expect(await store.getAuthFailures(tenant, 'pair:bob|192.0.2.7')).toEqual({ count: 2, resetAt: first.resetAt });
        await Promise.all(Array.from({ length: 4 }, () => store.refundAuthFailure(tenant, 'pair:bob|192.0.2.7')));
        expect((await store.getAuthFailures(tenant, 'pair:bob|192.0.2.7'))?.count ?? 0).toBe(0);
        await store.refundAuthFailure(tenant, 'user:nobody');
        expect(await store.getAuthFailures(tenant, 'user:nobody')).toBeUndefined();
        expect((await store.addAuthFailure(tenant, 'pair:bob|192.0.2.7', HOUR)).count).toBe(1);
      });

      it('keeps a known sign-in until its time, per tenant and key', async () => {
        const store = await open();
        const tenant = freshTenant();
        const until = Date.now() + HOUR;
        expect(await store.getKnownLogin(tenant, 'pair:bob|192.0.2.7')).toBeUndefined();
        await store.putKnownLogin(tenant, 'pair:bob|192.0.2.7', until);
        expect(await store.getKnownLogin(tenant, 'pair:bob|192.0.2.7')).toBe(until);
        expect(await store.getKnownLogin(freshTenant(), 'pair:bob|192.0.2.7')).toBeUndefined();
        expect(await store.getKnownLogin(tenant, 'pair:bob|192.0.2.8')).toBeUndefined();
        await store.putKnownLogin(tenant, 'pair:bob|192.0.2.7', Date.now() + 1);
        await new Promise((resolve) => setTimeout(resolve, 5));
        expect(await store.getKnownLogin(tenant, 'pair:bob|192.0.2.7')).toBeUndefined();
      });

      it('starts a new window once the last one has ended', async () => {
        const store = await open();
        const tenant = freshTenant();
        await store.addAuthFailure(tenant, 'ip:192.0.2.1', 1);
        await store.addAuthFailure(tenant, 'ip:192.0.2.1', 1);
        await new Promise((resolve) => setTimeout(resolve, 5));
        expect(await store.getAuthFailures(tenant, 'ip:192.0.2.1')).toBeUndefined();
        const next = await store.addAuthFailure(tenant, 'ip:192.0.2.1', HOUR);
        expect(next.count).toBe(1);
        expect(next.resetAt).toBeGreaterThan(Date.now() + HOUR / 2);
      });
    });

    describe('watch leases', () => {
      it('extends a lease but never shortens it, and replaces the credential', async () => {
        const store = await open();
        const tenant = freshTenant();
        const now = Date.now();
        await store.putLease({
          tenant,
          user: 'alice',
          until: now + 10 * 60_000,
          credential: new Uint8Array([1, 2, 3]),
        });
        await store.putLease({ tenant, user: 'alice', until: now + 5 * 60_000, credential: new Uint8Array([4, 5]) });
        expect(await store.getLease({ tenant, user: 'alice' })).toEqual({
          tenant,
          user: 'alice',
          until: now + 10 * 60_000,
          credential: new Uint8Array([4, 5]),
        });
        await store.putLease({ tenant, user: 'alice', until: now + 20 * 60_000 });
        expect((await store.getLease({ tenant, user: 'alice' }))?.until).toBe(now + 20 * 60_000);
        await store.deleteLease({ tenant, user: 'alice' });
        expect(await store.getLease({ tenant, user: 'alice' })).toBeUndefined();
      });

      it('replaces an expired lease whole, credential included', async () => {
        const store = await open();
        const tenant = freshTenant();
        await store.putLease({ tenant, user: 'bob', until: Date.now() - 1000, credential: new Uint8Array([9]) });
        const until = Date.now() + 60_000;
        await store.putLease({ tenant, user: 'bob', until });
        expect(await store.getLease({ tenant, user: 'bob' })).toEqual({ tenant, user: 'bob', until });
      });

      it('lists the unexpired leases of one shard', async () => {
        const store = await open();
        const tenant = freshTenant();
        const now = Date.now();
        const users = Array.from({ length: 40 }, (_, i) => `user${i}@example.test`);
        for (const user of users) await store.putLease({ tenant, user, until: now + HOUR });
        await store.putLease({ tenant, user: 'expired@example.test', until: now - 1 });
        let seen = 0;
        for (let shard = 0; shard < 16; shard++) {
          const leases = await store.listLeases(tenant, shard, now);
          for (const l of leases) expect(leaseShard(l.user)).toBe(shard);
          expect(leases.map((l) => l.user).sort()).toEqual(users.filter((u) => leaseShard(u) === shard).sort());
          seen += leases.length;
        }
        expect(seen).toBe(40);
        expect(await store.getLease({ tenant, user: 'expired@example.test' })).toBeUndefined();
      });
    });

    describe('tenant-wide records (admin)', () => {
      it('indexes every device of a tenant across users, and drops a deleted one', async () => {
        const store = await open();
        const tenant = freshTenant();
        const other = freshTenant();
        await store.updateDevice(device(tenant, 'alice', 'A1'), { deviceType: 'iPhone', lastSeen: 1 });
        await store.updateDevice(device(tenant, 'alice', 'A1'), { deviceType: 'iPhone', lastSeen: 2 });
        await store.updateDevice(device(tenant, 'bob', 'B#1'), { deviceType: 'Android', lastSeen: 3 });
        await store.updateDevice(device(tenant, 'carol', 'C1'), { deviceType: 'iPad' });
        await store.updateDevice(device(other, 'alice', 'X1'), { deviceType: 'iPhone', lastSeen: 4 });
        const sorted = (list: { user: string; deviceId: string }[]): string[] =>
          list.map((d) => `${d.user}/${d.deviceId}`).sort();
        expect(sorted(await store.listTenantDevices(tenant))).toEqual(['alice/A1', 'bob/B#1', 'carol/C1']);
        expect((await store.listTenantDevices(tenant)).every((d) => d.tenant === tenant)).toBe(true);

        await store.deleteDevice(device(tenant, 'bob', 'B#1'));
        expect(sorted(await store.listTenantDevices(tenant))).toEqual(['alice/A1', 'carol/C1']);
        expect(sorted(await store.listTenantDevices(other))).toEqual(['alice/X1']);
        expect(await store.listTenantDevices(freshTenant())).toEqual([]);
      });

      it('keeps the admin fields of a device record', async () => {
        const store = await open();
        const d = device();
        await store.updateDevice(d, {
          deviceType: 'iPhone',
          lastSeen: 1,
          accessState: 'quarantined',
          accessReason: 'rule r1',
        });
        await store.updateDevice(d, {
          deviceType: 'iPhone',
          accessOverride: 'allow',
          accessState: 'allowed',
          accessReason: 'admin',
        });
        expect(await store.getDevice(d)).toMatchObject({
          accessOverride: 'allow',
          accessState: 'allowed',
          accessReason: 'admin',
          firstSeen: 1,
        });
      });

      it('stores the access rules of a tenant whole, per tenant', async () => {
        const store = await open();
        const tenant = freshTenant();
        expect(await store.getAccessRules(tenant)).toBeUndefined();
        const rules = {
          defaultAccess: 'quarantine' as const,
          rules: [
            {
              id: 'r1',
              action: 'allow' as const,
              deviceType: '^iPhone$',
              model: 'iPhone1[45].*',
              userAgent: 'Apple-.*',
              user: 'ceo@example.test',
            },
          ],
          updatedAt: 5,
        };
        await store.putAccessRules(tenant, rules);
        expect(await store.getAccessRules(tenant)).toEqual(rules);
        await store.putAccessRules(tenant, { defaultAccess: 'allow', rules: [], updatedAt: 6 });
        expect(await store.getAccessRules(tenant)).toEqual({ defaultAccess: 'allow', rules: [], updatedAt: 6 });
        expect(await store.getAccessRules(freshTenant())).toBeUndefined();
      });

      it('adds up command counters per minute and command, keeping the largest duration', async () => {
        const store = await open();
        const tenant = freshTenant();
        const minute = Math.floor(Date.now() / 60_000);
        await store.addCommandStats(tenant, {
          minute,
          command: 'Sync',
          requests: 1,
          errors: 0,
          totalMs: 30,
          maxMs: 30,
        });
        await store.addCommandStats(tenant, {
          minute,
          command: 'Sync',
          requests: 1,
          errors: 1,
          totalMs: 70,
          maxMs: 70,
        });
        await store.addCommandStats(tenant, {
          minute,
          command: 'Sync',
          requests: 1,
          errors: 0,
          totalMs: 10,
          maxMs: 10,
        });
        await store.addCommandStats(tenant, { minute, command: 'Ping', requests: 1, errors: 0, totalMs: 5, maxMs: 5 });
        await store.addCommandStats(tenant, {
          minute: minute - 10,
          command: 'Sync',
          requests: 4,
          errors: 0,
          totalMs: 40,
          maxMs: 20,
        });
        await store.addCommandStats(freshTenant(), {
          minute,
          command: 'Sync',
          requests: 9,
          errors: 9,
          totalMs: 9,
          maxMs: 9,
        });

        expect(await store.readCommandStats(tenant, minute)).toEqual([
          { minute, command: 'Ping', requests: 1, errors: 0, totalMs: 5, maxMs: 5 },
          { minute, command: 'Sync', requests: 3, errors: 1, totalMs: 110, maxMs: 70 },
        ]);
        const all = await store.readCommandStats(tenant, minute - 60);
        expect(all.map((s) => `${s.minute - minute}:${s.command}:${s.requests}`)).toEqual([
          '-10:Sync:4',
          '0:Ping:1',
          '0:Sync:3',
        ]);
      });
    });

    describe('protocol capture', () => {
      const exchange = (time: number, command: string, xml = '<Sync xmlns="AirSync"/>'): CapturedExchange => ({
        time,
        ms: 12,
        method: 'POST',
        command,
        query: `Cmd=${command}&User=alice&DeviceId=DEV1&DeviceType=iPhone`,
        request: {
          headers: { 'ms-asprotocolversion': '16.1' },
          body: { contentType: 'application/vnd.ms-sync.wbxml', bytes: 20, xml },
        },
        response: {
          status: 200,
          headers: {},
          body: { contentType: 'text/plain', bytes: 3, base64: 'AAEC', cut: true },
        },
        commandStatus: 1,
      });

      it('keeps rules per user and device until they end, and replaces or removes one', async () => {
        const store = await open();
        const tenant = freshTenant();
        const until = Date.now() + HOUR;
        const all = { user: 'alice', startedAt: 1, until, maxBodyBytes: 1024 };
        const one = { user: 'alice', deviceId: 'DEV1', startedAt: 2, until, maxBodyBytes: 0 };
        await store.putCaptureRule(tenant, all);
        await store.putCaptureRule(tenant, one);
        await store.putCaptureRule(tenant, { user: 'bob', startedAt: 3, until: Date.now() - 1, maxBodyBytes: 1 });
        await store.putCaptureRule(freshTenant(), { user: 'carol', startedAt: 4, until, maxBodyBytes: 1 });
        const byKey = (rules: CaptureRule[]): CaptureRule[] =>
          [...rules].sort((a, b) => (a.deviceId ?? '').localeCompare(b.deviceId ?? ''));
        expect(byKey(await store.listCaptureRules(tenant))).toEqual([all, one]);

        await store.putCaptureRule(tenant, { ...one, until: until + 1 });
        expect(byKey(await store.listCaptureRules(tenant))).toEqual([all, { ...one, until: until + 1 }]);
        await store.deleteCaptureRule(tenant, 'alice', undefined);
        expect(await store.listCaptureRules(tenant)).toEqual([{ ...one, until: until + 1 }]);
        await store.deleteCaptureRule(tenant, 'alice', 'DEV1');
        expect(await store.listCaptureRules(tenant)).toEqual([]);
      });

      it("keeps a device's records in time order until they expire, apart from other devices, and with the device", async () => {
        const store = await open();
        const d = device();
        const sibling = { ...d, deviceId: 'DEV2' };
        const expiresAt = Date.now() + HOUR;
        const large = `<Sync xmlns="AirSync">${'x'.repeat(250_000)}</Sync>`;
        const records: CaptureRecord[] = [
          { at: 2_000, id: 'b', expiresAt, exchange: exchange(2_000, 'Sync', large) },
          { at: 1_000, id: 'z', expiresAt, exchange: exchange(1_000, 'Provision') },
          { at: 2_000, id: 'a', expiresAt, exchange: exchange(2_000, 'Ping') },
          { at: 10_000, id: 'old', expiresAt: Date.now() - 1, exchange: exchange(10_000, 'FolderSync') },
        ];
        for (const r of records) await store.addCaptureRecord(d, r);
        await store.addCaptureRecord(sibling, { at: 500, id: 's', expiresAt, exchange: exchange(500, 'Settings') });

        const listed = await store.listCaptureRecords(d);
        expect(listed.map((r) => `${r.at}/${r.id}/${r.exchange.command}`)).toEqual([
          '1000/z/Provision',
          '2000/a/Ping',
          '2000/b/Sync',
        ]);
        expect(listed[0]).toEqual(records[1]);
        expect(listed[2]!.exchange.request.body?.xml).toBe(large);
        expect((await store.listCaptureRecords(sibling)).map((r) => r.id)).toEqual(['s']);
        expect(await store.listCaptureRecords({ ...d, tenant: freshTenant() })).toEqual([]);

        await store.deleteCaptureRecords(sibling);
        expect(await store.listCaptureRecords(sibling)).toEqual([]);
        expect(await store.listCaptureRecords(d)).toHaveLength(3);
        await store.updateDevice(d, { deviceType: 'iPhone' });
        await store.deleteDevice(d);
        expect(await store.listCaptureRecords(d)).toEqual([]);
      });
    });

    describe('tenant isolation', () => {
      it('keeps two tenants with the same user and device ids apart in every record', async () => {
        const store = await open();
        const a = device(freshTenant(), 'alice', 'SAME');
        const b = { ...a, tenant: freshTenant() };
        const expiresAt = Date.now() + HOUR;
        await store.updateDevice(a, { deviceType: 'iPhone', lastSeen: 1 });
        await store.commitHierarchy(a, 'absent', hierarchy('1', ['A-Inbox']));
        await store.commitCollection(a, '5', 'absent', collection('1', [1]));
        await store.putPingCache(a, { heartbeatInterval: 480, folders: [], expiresAt });
        await store.putSyncRequestCache(a, { collections: [], expiresAt });
        await store.putFeedEntry(a, { folder: 'INBOX', marker: '1', changedAt: 1, expiresAt });
        await store.putLease({ tenant: a.tenant, user: a.user, until: expiresAt });

        expect(await store.getDevice(b)).toBeUndefined();
        expect(await store.listDevices(b)).toEqual([]);
        expect(await store.getHierarchy(b)).toBeUndefined();
        expect(await store.getCollection(b, '5')).toBeUndefined();
        expect(await store.listCollections(b)).toEqual([]);
        expect(await store.getPingCache(b)).toBeUndefined();
        expect(await store.getSyncRequestCache(b)).toBeUndefined();
        expect(await store.readFeed(b)).toEqual([]);
        expect(await store.getLease(b)).toBeUndefined();
        expect(await store.listLeases(b.tenant, leaseShard(b.user))).toEqual([]);

        // The same keys in tenant b start from scratch, and do not disturb tenant a.
        await store.commitCollection(b, '5', 'absent', collection('1', [2]));
        await store.deleteDevice(b);
        expect((await store.getCollection(a, '5'))?.state.watermark).toMatchObject({ uids: encodeUidSet([1]) });
        expect((await store.getHierarchy(a))?.state.folders[0]?.displayName).toBe('A-Inbox');
      });

      it('keeps ids that contain separators apart', async () => {
        const store = await open();
        const tenant = freshTenant();
        const tricky = [
          device(tenant, 'a#b', 'c'),
          device(tenant, 'a', 'b#c'),
          device(tenant, 'a%23b', 'c'),
          device(tenant, 'a', 'b\u0000c'),
        ];
        for (const [i, d] of tricky.entries()) await store.commitCollection(d, '1', 'absent', collection(String(i)));
        for (const [i, d] of tricky.entries()) expect((await store.getCollection(d, '1'))?.syncKey).toBe(String(i));
        expect(await store.listDevices({ tenant, user: 'a' })).toEqual([]);
      });
    });
  });
}
