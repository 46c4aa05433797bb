/**
 * The state store fails a write (an injected error, test/faults/failing-store.ts), on SQLite and on DynamoDB
 * (dynalite): before the write (the store was unreachable) and after it (the store wrote, its answer was lost).
 * The device gets a status it recovers from, and its next requests converge: mail flags set once, no event twice,
 * moves not undone, the folder list whole.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../src/backends/types.ts';
import { createStateTable, DynamoDbStateStore } from '../../src/state/dynamodb/store.ts';
import { openSqliteStateStore } from '../../src/state/sqlite-node.ts';
import type { StateStore } from '../../src/state/types.ts';
import { child, children, childText, el } from '../../src/wbxml/tree.ts';
import { TestDevice, testServer, type TestServer } from '../device/device.ts';
import { createUser, listMessages, makeEvent, makeMessage, seedCalendar, seedMailbox } from '../services/seed.ts';
import type { TestUser } from '../services/types.ts';
import { eventSummaries, expectMailConverged, syncToEnd } from './converge.ts';
import { failingStore } from './failing-store.ts';

const services = inject('services');
const clients: DynamoDBClient[] = [];
afterAll(() => {
  for (const c of clients) c.destroy();
});

const STORES: [string, () => Promise<StateStore>][] = [
  ['SQLite', async () => openSqliteStateStore(':memory:').store],
  [
    'DynamoDB (dynalite)',
    async () => {
      const { endpoint, region, credentials } = services.dynamodb;
      const client = new DynamoDBClient({ endpoint, region, credentials });
      clients.push(client);
      const table = `faults-${Math.random().toString(36).slice(2, 10)}`;
      await createStateTable(client, table);
      return new DynamoDbStateStore({ client, table });
    },
  ],
];

describe.each(STORES)('the %s state store fails a write', (_name, open) => {
  async function setup(messages = 0): Promise<{
    user: TestUser;
    device: TestDevice;
    inbox: string;
    faults: ReturnType<typeof failingStore>;
    server: TestServer;
  }> {
    const faults = failingStore(await open());
    const server = testServer(services, {}, { state: faults.store });
    const user = createUser(services);
    if (messages)
      await seedMailbox(
        services,
        user,
        'INBOX',
        Array.from({ length: messages }, (_, i) => ({
          message: makeMessage({ to: user.email, subject: `m${i + 1}` }),
        })),
      );
    const device = new TestDevice(server, user);
    await device.folderSync();
    return { user, device, inbox: device.folderByType(FolderType.Inbox).serverId, faults, server };
  }

  for (const when of ['before', 'after'] as const) {
    it(`Sync: the commit fails ${when} writing: Status 5, the same request again converges, a device Change applied once`, async () => {
      const { user, device, inbox, faults } = await setup(6);
      await device.sync(inbox);
      await device.sync(inbox, { windowSize: 3 });
      const [first] = [...device.items(inbox).keys()];
      const change = el('AirSync', 'Change', [
        el('AirSync', 'ServerId', first!),
        el('AirSync', 'ApplicationData', [el('Email', 'Read', '0')]),
      ]);
      faults.failOn({ method: 'commitCollection', when });
      const failed = await device.sync(inbox, { windowSize: 3, commands: [change] });
      expect(faults.fired).toBe(1);
      expect(failed.response.status).toBe(200);
      expect(failed.status).toBe(5);
      const again = await device.sync(inbox, { windowSize: 3, commands: [change] });
      expect(again.status).toBe(1);
      await expectMailConverged(services, user, device, inbox, 'INBOX');
      expect(device.items(inbox).size).toBe(6);
      expect((await listMessages(services, user)).filter((m) => !m.flags.includes('\\Seen'))).toHaveLength(6);
    });
  }

  it('Sync of a calendar: the commit after a device Add fails: the retried Add does not make a second event', async () => {
    const { user, faults, server } = await setup();
    const seeded = await seedCalendar(
      services,
      user,
      'home',
      [makeEvent({ summary: 'Dentist', start: '2026-03-02T09:00:00' })],
      { displayName: 'Home' },
    );
    const device = new TestDevice(server, user);
    await device.folderSync();
    const home = device.folderByName('Home').serverId;
    await syncToEnd(device, home);
    const add = [
      el('AirSync', 'Add', [
        el('AirSync', 'ClientId', 'c-1'),
        el('AirSync', 'ApplicationData', [
          el('Calendar', 'Subject', 'Lunch'),
          el('Calendar', 'StartTime', '20260310T090000Z'),
          el('Calendar', 'EndTime', '20260310T100000Z'),
          el('Calendar', 'AllDayEvent', '0'),
        ]),
      ]),
    ];
    faults.failOn({ method: 'commitCollection' });
    expect((await device.sync(home, { commands: add })).status).toBe(5);
    const again = await device.sync(home, { commands: add });
    expect(again.addResponses).toEqual([expect.objectContaining({ clientId: 'c-1', status: 1 })]);
    await syncToEnd(device, home);
    expect(device.items(home).size).toBe(2);
    expect(await eventSummaries(services, user, seeded.collectionUrl)).toEqual(['Dentist', 'Lunch']);
  });

  it('FolderSync: the hierarchy commit fails: Status 6, then the same key again gets the whole folder list', async () => {
    const { user, faults, server } = await setup();
    const device = new TestDevice(server, user);
    faults.failOn({ method: 'commitHierarchy', when: 'after' });
    const failed = await device.folderSync();
    expect(childText(failed, 'Status')).toBe('6');
    expect(device.folders.size).toBe(0);
    await device.folderSync();
    expect(device.folders.size).toBeGreaterThanOrEqual(6);
    expect(new Set([...device.folders.values()].map((f) => f.displayName)).size).toBe(device.folders.size);
    // Nothing more to learn, and the key is good.
    const quiet = await device.folderSync();
    expect(childText(quiet, 'Status')).toBe('1');
    expect(children(child(quiet, 'Changes'), 'Add')).toEqual([]);
  });

  it('two Syncs of one device from one key, the first commit overtaken: Status 16 for it (StateConflictError), then convergence', async () => {
    const { user, device, inbox, faults } = await setup(4);
    await device.sync(inbox);
    const twin = new TestDevice(device.server, user, device.deviceId);
    twin.policyKey = device.policyKey;
    twin.collections.set(inbox, { syncKey: device.collections.get(inbox)!.syncKey, items: new Map() });
    // The first commit waits; the second request commits from the same key meanwhile.
    faults.failOn({ method: 'commitCollection', delayMs: 1_500 });
    const rounds = await Promise.all([
      device.sync(inbox),
      new Promise((r) => setTimeout(r, 100)).then(() => twin.sync(inbox)),
    ]);
    // Whichever reached its commit first waited, and lost.
    expect(rounds.map((r) => r.response.status)).toEqual([200, 200]);
    expect(rounds.map((r) => r.status).sort()).toEqual([1, 16]);
    const winner = rounds.find((r) => r.status === 1)!;
    const loser = rounds[0]!.status === 16 ? device : twin;
    expect(winner.added).toHaveLength(4);
    // The phone retries with its key: the answer the other request got, replayed.
    const retried = await loser.sync(inbox);
    expect(retried.status).toBe(1);
    expect(retried.added.sort()).toEqual(winner.added.sort());
    await expectMailConverged(services, user, loser, inbox, 'INBOX');
    expect(loser.items(inbox).size).toBe(4);
  });

  for (const when of ['before', 'after'] as const) {
    it(`MoveItems: recording the move in the source's state fails ${when} writing: the move stands, and the Syncs converge`, async () => {
      const { user, device, inbox, faults } = await setup(3);
      const archive = device.folderByName('Archive').serverId;
      await syncToEnd(device, inbox);
      await syncToEnd(device, archive);
      const [moved] = [...device.items(inbox).keys()];
      faults.failOn({ method: 'commitCollection', when });
      const res = await device.send(
        'MoveItems',
        el('Move', 'MoveItems', [
          el('Move', 'Move', [
            el('Move', 'SrcMsgId', moved!),
            el('Move', 'SrcFldId', inbox),
            el('Move', 'DstFldId', archive),
          ]),
        ]),
      );
      expect(faults.fired).toBe(1);
      expect(res.status).toBe(200);
      const response = child(res.body, 'Response');
      expect(await listMessages(services, user, 'Archive')).toHaveLength(1);
      if (when === 'before') {
        // Done on the server but not recorded: Status 5, so the device keeps its copy in the Inbox; Sync then tells it
        // (a Delete in the Inbox, an Add in Archive), and it never holds the message twice.
        expect(childText(response, 'Status')).toBe('5');
      } else {
        // Recorded, though the store's answer was lost (read back): Status 3, the device moves its copy.
        expect(childText(response, 'Status')).toBe('3');
        const data = device.items(inbox).get(moved!)!;
        device.items(inbox).delete(moved!);
        device.items(archive).set(childText(response, 'DstMsgId')!, data);
      }
      await expectMailConverged(services, user, device, inbox, 'INBOX');
      await expectMailConverged(services, user, device, archive, 'Archive');
      expect(device.items(archive).size).toBe(1);
    });
  }
});
