/**
 * FolderCreate, FolderUpdate and FolderDelete against the real Dovecot, through the scripted device: each change
 * checked on the IMAP side and by a following FolderSync that has nothing new to say; the error statuses; lost answers.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import type { CollectionState } from '../../../src/state/types.ts';
import { child, childText, el, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { TestDevice, testServer, type TestServer } from '../../device/device.ts';
import { createUser, withImap } from '../../services/seed.ts';
import type { TestUser } from '../../services/types.ts';

const services = inject('services');
let server: TestServer;

beforeAll(() => {
  server = testServer(services);
});

type FolderCommand = 'FolderCreate' | 'FolderUpdate' | 'FolderDelete';

/**
 * Sends a folder command from the device's hierarchy key (or `key`). On Status 1 the device takes the new key, as a
 * phone does; with `lose` it drops the answer and keeps its key.
 */
async function folderCommand(
  device: TestDevice,
  command: FolderCommand,
  fields: (WbxmlElement | undefined)[],
  o: { lose?: boolean; key?: string } = {},
): Promise<WbxmlElement> {
  const body = await device.command(
    command,
    el('FolderHierarchy', command, [el('FolderHierarchy', 'SyncKey', o.key ?? device.hierarchyKey), ...fields]),
  );
  if (!o.lose && childText(body, 'Status') === '1') device.hierarchyKey = childText(body, 'SyncKey')!;
  return body;
}

const field = (
  tag: 'ServerId' | 'ParentId' | 'DisplayName' | 'Type',
  value: string | undefined,
): WbxmlElement | undefined => (value === undefined ? undefined : el('FolderHierarchy', tag, value));

function createFolder(
  device: TestDevice,
  parentId: string,
  name: string,
  type = String(FolderType.UserMail),
  o: { lose?: boolean } = {},
): Promise<WbxmlElement> {
  return folderCommand(
    device,
    'FolderCreate',
    [field('ParentId', parentId), field('DisplayName', name), field('Type', type)],
    o,
  );
}

function updateFolder(
  device: TestDevice,
  serverId: string,
  parentId: string,
  name: string,
  o: { lose?: boolean } = {},
): Promise<WbxmlElement> {
  return folderCommand(
    device,
    'FolderUpdate',
    [field('ServerId', serverId), field('ParentId', parentId), field('DisplayName', name)],
    o,
  );
}

function deleteFolder(device: TestDevice, serverId: string, o: { lose?: boolean } = {}): Promise<WbxmlElement> {
  return folderCommand(device, 'FolderDelete', [field('ServerId', serverId)], o);
}

const status = (body: WbxmlElement): number => Number(childText(body, 'Status'));

/** The number of changes a FolderSync from the device's key reports. */
async function folderSyncChanges(device: TestDevice): Promise<number> {
  const body = await device.folderSync();
  expect(childText(body, 'Status')).toBe('1');
  return Number(childText(child(body, 'Changes'), 'Count'));
}

/** The user's IMAP folders (paths), sorted. */
function imapFolders(user: TestUser): Promise<string[]> {
  return withImap(services, user, async (imap) =>
    (await imap.list())
      .filter((m) => !m.flags.has('\\NonExistent'))
      .map((m) => m.path)
      .sort(),
  );
}

/** A device that has done its first FolderSync. */
async function readyDevice(user: TestUser): Promise<TestDevice> {
  const device = new TestDevice(server, user);
  await device.folderSync();
  return device;
}

/** The device starts over from key 0, and so sees the whole hierarchy as the server keeps it. */
async function fromScratch(device: TestDevice): Promise<TestDevice> {
  device.hierarchyKey = '0';
  await device.folderSync();
  return device;
}

describe('FolderCreate', () => {
  it('creates a top-level folder and one under it; FolderSync has nothing new afterwards', async () => {
    const user = createUser(services);
    const device = await readyDevice(user);
    const keyBefore = device.hierarchyKey;

    const top = await createFolder(device, '0', 'Projects');
    expect(status(top)).toBe(1);
    expect(device.hierarchyKey).not.toBe(keyBefore);
    const projectsId = childText(top, 'ServerId')!;
    expect([...device.folders.keys()]).not.toContain(projectsId);

    const sub = await createFolder(device, projectsId, '2026');
    expect(status(sub)).toBe(1);
    const subId = childText(sub, 'ServerId')!;
    expect(subId).not.toBe(projectsId);

    expect(await imapFolders(user)).toEqual(expect.arrayContaining(['Projects', 'Projects/2026']));
    expect(await folderSyncChanges(device)).toBe(0);

    // The ServerIds handed out are the ones the hierarchy keeps.
    const fresh = await fromScratch(device);
    expect(fresh.folders.get(projectsId)).toMatchObject({
      displayName: 'Projects',
      parentId: '0',
      type: FolderType.UserMail,
    });
    expect(fresh.folders.get(subId)).toMatchObject({
      displayName: '2026',
      parentId: projectsId,
      type: FolderType.UserMail,
    });
  });

  it('creates a generic folder (type 1) as a mail folder, also under the Inbox', async () => {
    const user = createUser(services);
    const device = await readyDevice(user);
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    const body = await createFolder(device, inbox, 'Receipts', String(FolderType.UserGeneric));
    expect(status(body)).toBe(1);
    expect(await imapFolders(user)).toContain('INBOX/Receipts');
    expect(await folderSyncChanges(device)).toBe(0);
  });

  it('still reports a folder another client created before the FolderCreate', async () => {
    const user = createUser(services);
    const device = await readyDevice(user);
    await withImap(services, user, (imap) => imap.mailboxCreate('From elsewhere'));
    expect(status(await createFolder(device, '0', 'Mine'))).toBe(1);
    const body = await device.folderSync();
    const added = (child(body, 'Changes')?.children ?? [])
      .filter((c) => c.tag === 'Add')
      .map((c) => childText(c, 'DisplayName'));
    expect(added).toEqual(['From elsewhere']);
  });

  it('answers 2 when the name exists under the parent, the Inbox in any letter case included', async () => {
    const user = createUser(services);
    await withImap(services, user, (imap) => imap.mailboxCreate('Taken'));
    const device = await readyDevice(user);
    for (const name of ['Taken', 'Sent', 'inbox', 'INBOX'])
      expect(status(await createFolder(device, '0', name)), name).toBe(2);
    // The same name elsewhere is fine.
    expect(status(await createFolder(device, device.folderByName('Taken').serverId, 'Taken'))).toBe(1);
  });

  it('answers 3 for user journals and notes, which no backend holds; user calendars, contacts and tasks are DAV collections, not mailboxes', async () => {
    const user = createUser(services);
    const device = await readyDevice(user);
    for (const type of [FolderType.UserJournal, FolderType.UserNotes]) {
      expect(status(await createFolder(device, '0', `Type ${type}`, String(type)))).toBe(3);
    }
    // CalDAV/CardDAV (src/commands/folder-dav.ts, test/e2e/dav/folders.test.ts).
    for (const type of [FolderType.UserCalendar, FolderType.UserContacts, FolderType.UserTasks]) {
      expect(status(await createFolder(device, '0', `Type ${type}`, String(type)))).toBe(1);
    }
    expect((await imapFolders(user)).filter((f) => f.startsWith('Type '))).toEqual([]);
  });

  it('answers 5 for an unknown parent, 9 for a bad or missing key, 10 for a malformed request', async () => {
    const user = createUser(services);
    const device = await readyDevice(user);
    const keyBefore = device.hierarchyKey;
    expect(status(await createFolder(device, '999', 'Orphan'))).toBe(5);

    expect(
      status(
        await folderCommand(
          device,
          'FolderCreate',
          [field('ParentId', '0'), field('DisplayName', 'X'), field('Type', '12')],
          { key: '{00000000-0000-0000-0000-000000000000}1' },
        ),
      ),
    ).toBe(9);
    expect(
      status(
        await folderCommand(
          device,
          'FolderCreate',
          [field('ParentId', '0'), field('DisplayName', 'X'), field('Type', '12')],
          { key: '0' },
        ),
      ),
    ).toBe(9);
    // A device that never did a FolderSync has no key the server could accept.
    const newcomer = new TestDevice(server, user);
    expect(status(await createFolder(newcomer, '0', 'X'))).toBe(9);

    expect(status(await folderCommand(device, 'FolderCreate', [field('ParentId', '0'), field('Type', '12')]))).toBe(10);
    expect(
      status(
        await device.command(
          'FolderCreate',
          el('FolderHierarchy', 'FolderCreate', [
            field('ParentId', '0')!,
            field('DisplayName', 'X')!,
            field('Type', '12')!,
          ]),
        ),
      ),
    ).toBe(10);
    expect(status(await createFolder(device, '0', 'a/b'))).toBe(10);
    expect(status(await createFolder(device, '0', '   '))).toBe(10);
    expect(status(await createFolder(device, '0', 'Another Inbox', String(FolderType.Inbox)))).toBe(10);
    expect(status(await createFolder(device, '0', 'No type', 'twelve'))).toBe(10);

    expect(device.hierarchyKey).toBe(keyBefore);
    expect(await folderSyncChanges(device)).toBe(0);
  });
});

describe('FolderUpdate', () => {
  it('renames a folder; its subfolders keep their ServerIds under the new path', async () => {
    const user = createUser(services);
    await withImap(services, user, async (imap) => {
      await imap.mailboxCreate('Old');
      await imap.mailboxCreate('Old/Child');
      await imap.mailboxCreate('Old/Child/Grandchild');
    });
    const device = await readyDevice(user);
    const old = device.folderByName('Old').serverId;
    const childId = device.folderByName('Child').serverId;
    const grandchild = device.folderByName('Grandchild').serverId;

    const body = await updateFolder(device, old, '0', 'New');
    expect(status(body)).toBe(1);
    expect(childText(body, 'SyncKey')).toBe(device.hierarchyKey);
    expect(await imapFolders(user)).toEqual(expect.arrayContaining(['New', 'New/Child', 'New/Child/Grandchild']));
    expect(await imapFolders(user)).not.toContain('Old');
    expect(await folderSyncChanges(device)).toBe(0);

    const fresh = await fromScratch(device);
    expect(fresh.folders.get(old)).toMatchObject({ displayName: 'New', parentId: '0' });
    expect(fresh.folders.get(childId)).toMatchObject({ displayName: 'Child', parentId: old });
    expect(fresh.folders.get(grandchild)).toMatchObject({ displayName: 'Grandchild', parentId: childId });

    // The subfolders are known under their new paths: they can be renamed and deleted in turn.
    expect(status(await updateFolder(device, grandchild, childId, 'Renamed grandchild'))).toBe(1);
    expect(await imapFolders(user)).toContain('New/Child/Renamed grandchild');
    expect(status(await deleteFolder(device, childId))).toBe(1);
    expect(await folderSyncChanges(device)).toBe(0);
  });

  it('moves a folder under another parent and back to the top level', async () => {
    const user = createUser(services);
    await withImap(services, user, async (imap) => {
      await imap.mailboxCreate('Mover');
      await imap.mailboxCreate('Mover/Inner');
      await imap.mailboxCreate('Home');
    });
    const device = await readyDevice(user);
    const mover = device.folderByName('Mover').serverId;
    const inner = device.folderByName('Inner').serverId;
    const home = device.folderByName('Home').serverId;

    expect(status(await updateFolder(device, mover, home, 'Mover'))).toBe(1);
    expect(await imapFolders(user)).toEqual(expect.arrayContaining(['Home/Mover', 'Home/Mover/Inner']));
    expect(await folderSyncChanges(device)).toBe(0);
    expect((await fromScratch(device)).folders.get(mover)).toMatchObject({ parentId: home });

    expect(status(await updateFolder(device, mover, '0', 'Moved back'))).toBe(1);
    expect(await imapFolders(user)).toEqual(expect.arrayContaining(['Moved back', 'Moved back/Inner']));
    expect(await imapFolders(user)).not.toContain('Home/Mover');
    expect(await folderSyncChanges(device)).toBe(0);
    expect((await fromScratch(device)).folders.get(inner)).toMatchObject({ parentId: mover, displayName: 'Inner' });
  });

  it('answers 3 for special folders, 4 for unknown ones, 5 for a bad parent, 2 for a taken name, 9 and 10', async () => {
    const user = createUser(services);
    await withImap(services, user, async (imap) => {
      await imap.mailboxCreate('A');
      await imap.mailboxCreate('A/Sub');
      await imap.mailboxCreate('B');
      await imap.mailboxCreate('Gone');
    });
    const device = await readyDevice(user);
    const a = device.folderByName('A').serverId;
    const sub = device.folderByName('Sub').serverId;
    const gone = device.folderByName('Gone').serverId;
    const keyBefore = device.hierarchyKey;

    for (const type of [FolderType.Inbox, FolderType.Drafts, FolderType.DeletedItems, FolderType.SentItems]) {
      const special = device.folderByType(type);
      expect(status(await updateFolder(device, special.serverId, '0', `Renamed ${type}`)), special.displayName).toBe(3);
    }
    expect(status(await updateFolder(device, '999', '0', 'Nothing'))).toBe(4);
    // Deleted by another client since the device's FolderSync.
    await withImap(services, user, (imap) => imap.mailboxDelete('Gone'));
    expect(status(await updateFolder(device, gone, '0', 'Back'))).toBe(4);

    expect(status(await updateFolder(device, a, '999', 'A'))).toBe(5);
    expect(status(await updateFolder(device, a, a, 'A'))).toBe(5);
    expect(status(await updateFolder(device, a, sub, 'A'))).toBe(5);

    expect(status(await updateFolder(device, a, '0', 'B'))).toBe(2);
    expect(status(await updateFolder(device, sub, '0', 'Sent'))).toBe(2);

    expect(
      status(
        await folderCommand(
          device,
          'FolderUpdate',
          [field('ServerId', a), field('ParentId', '0'), field('DisplayName', 'C')],
          { key: '{00000000-0000-0000-0000-000000000000}3' },
        ),
      ),
    ).toBe(9);
    expect(
      status(await folderCommand(device, 'FolderUpdate', [field('ParentId', '0'), field('DisplayName', 'C')])),
    ).toBe(10);
    expect(status(await updateFolder(device, a, '0', 'C/D'))).toBe(10);

    expect(device.hierarchyKey).toBe(keyBefore);
    expect(await imapFolders(user)).toEqual(expect.arrayContaining(['A', 'A/Sub', 'B']));
  });
});

describe('FolderDelete', () => {
  it('deletes a folder with its subfolders, and their collection states', async () => {
    const user = createUser(services);
    await withImap(services, user, async (imap) => {
      await imap.mailboxCreate('Doomed');
      await imap.mailboxCreate('Doomed/Child');
      await imap.mailboxCreate('Doomed/Child/Grandchild');
      await imap.mailboxCreate('Kept');
    });
    const device = await readyDevice(user);
    const doomed = device.folderByName('Doomed').serverId;
    const grandchild = device.folderByName('Grandchild').serverId;
    const kept = device.folderByName('Kept').serverId;
    const collection: CollectionState = {
      class: 'Email',
      watermark: { kind: 'none' },
      options: {},
      pending: [],
      clientIds: {},
    };
    for (const id of [grandchild, kept])
      await server.state.commitCollection(device.scope, id, 'absent', {
        syncKey: '{00000000-0000-0000-0000-000000000000}1',
        state: collection,
      });

    const body = await deleteFolder(device, doomed);
    expect(status(body)).toBe(1);
    expect(childText(body, 'SyncKey')).toBe(device.hierarchyKey);
    const left = await imapFolders(user);
    expect(left.filter((p) => p.startsWith('Doomed'))).toEqual([]);
    expect(left).toContain('Kept');
    expect(await folderSyncChanges(device)).toBe(0);
    expect(await server.state.getCollection(device.scope, grandchild)).toBeUndefined();
    expect(await server.state.getCollection(device.scope, kept)).toBeDefined();
  });

  it('answers 3 for special folders, 4 for unknown ones, 9 and 10', async () => {
    const user = createUser(services);
    await withImap(services, user, (imap) => imap.mailboxCreate('Gone'));
    const device = await readyDevice(user);
    const keyBefore = device.hierarchyKey;
    for (const type of [FolderType.Inbox, FolderType.Drafts, FolderType.DeletedItems, FolderType.SentItems]) {
      expect(status(await deleteFolder(device, device.folderByType(type).serverId))).toBe(3);
    }
    expect(status(await deleteFolder(device, '999'))).toBe(4);
    const gone = device.folderByName('Gone').serverId;
    await withImap(services, user, (imap) => imap.mailboxDelete('Gone'));
    expect(status(await deleteFolder(device, gone))).toBe(4);
    expect(status(await folderCommand(device, 'FolderDelete', [field('ServerId', gone)], { key: 'not-a-key' }))).toBe(
      9,
    );
    expect(status(await folderCommand(device, 'FolderDelete', []))).toBe(10);
    expect(device.hierarchyKey).toBe(keyBefore);
    expect(await imapFolders(user)).toEqual(expect.arrayContaining(['INBOX', 'Drafts', 'Sent', 'Trash']));
  });
});

describe('a lost answer to a folder command', () => {
  it('FolderCreate resent with the old key gets the same answer, and the folder is created once', async () => {
    const user = createUser(services);
    const device = await readyDevice(user);
    const countBefore = (await imapFolders(user)).length;
    const first = await createFolder(device, '0', 'Once', undefined, { lose: true });
    expect(status(first)).toBe(1);
    const again = await createFolder(device, '0', 'Once');
    expect(again).toEqual(first);
    expect((await imapFolders(user)).length).toBe(countBefore + 1);
    expect(await folderSyncChanges(device)).toBe(0);
  });

  it('FolderUpdate and FolderDelete are replayed too, and only to the same command', async () => {
    const user = createUser(services);
    await withImap(services, user, (imap) => imap.mailboxCreate('Subject'));
    const device = await readyDevice(user);
    const id = device.folderByName('Subject').serverId;

    const renamed = await updateFolder(device, id, '0', 'Renamed', { lose: true });
    expect(status(renamed)).toBe(1);
    // Another folder command from the old key is not the lost one: its answer is not this one.
    expect(status(await deleteFolder(device, id))).toBe(9);
    expect(await updateFolder(device, id, '0', 'Renamed')).toEqual(renamed);
    expect(await imapFolders(user)).toContain('Renamed');

    const deleted = await deleteFolder(device, id, { lose: true });
    expect(status(deleted)).toBe(1);
    expect(await deleteFolder(device, id)).toEqual(deleted);
    expect(await imapFolders(user)).not.toContain('Renamed');
    expect(await folderSyncChanges(device)).toBe(0);
  });
});
