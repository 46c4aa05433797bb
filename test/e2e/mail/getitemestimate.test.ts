/** GetItemEstimate against Dovecot: the count a Sync would bring, and the statuses for bad collections and keys. */
import { describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../../src/backends/types.ts';
import { child, children, childText, el, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { TestDevice, testServer } from '../../device/device.ts';
import { createUser, seedMailbox, withImap, type SeedMessage } from '../../services/seed.ts';

const services = inject('services');
const server = testServer(services);

function messages(count: number, ageDays = 0): SeedMessage[] {
  return Array.from({ length: count }, (_, i) => ({
    message: { from: 'bob@example.test', to: 'alice@example.test', subject: `Estimate ${i}`, text: 'x\n' },
    internalDate: new Date(Date.now() - ageDays * 86_400_000 - i * 1000),
  }));
}

function estimateRequest(collections: { id: string; key: string; filterType?: number }[]): WbxmlElement {
  return el('GetItemEstimate', 'GetItemEstimate', [
    el(
      'GetItemEstimate',
      'Collections',
      collections.map((c) =>
        el('GetItemEstimate', 'Collection', [
          el('AirSync', 'SyncKey', c.key),
          el('GetItemEstimate', 'CollectionId', c.id),
          c.filterType !== undefined
            ? el('AirSync', 'Options', [el('AirSync', 'FilterType', String(c.filterType))])
            : undefined,
        ]),
      ),
    ),
  ]);
}

function results(
  body: WbxmlElement,
): { id: string | undefined; status: string | undefined; estimate: string | undefined }[] {
  return children(body, 'Response').map((r) => ({
    id: childText(child(r, 'Collection'), 'CollectionId'),
    status: childText(r, 'Status'),
    estimate: childText(child(r, 'Collection'), 'Estimate'),
  }));
}

describe('GetItemEstimate', () => {
  it('counts what the next Syncs would bring, and follows the device as it syncs', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'INBOX', [...messages(7), ...messages(4, 30)]);
    const device = new TestDevice(server, user);
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.sync(inbox);
    const key = (): string => device.collections.get(inbox)!.syncKey;

    expect(results(await device.command('GetItemEstimate', estimateRequest([{ id: inbox, key: key() }])))).toEqual([
      { id: inbox, status: '1', estimate: '11' },
    ]);
    expect(
      results(await device.command('GetItemEstimate', estimateRequest([{ id: inbox, key: key(), filterType: 3 }])))[0]
        ?.estimate,
    ).toBe('7');

    await device.sync(inbox, { windowSize: 5 });
    expect(
      results(await device.command('GetItemEstimate', estimateRequest([{ id: inbox, key: key() }])))[0]?.estimate,
    ).toBe('6');
    await device.syncUntilDone(inbox);
    expect(
      results(await device.command('GetItemEstimate', estimateRequest([{ id: inbox, key: key() }])))[0]?.estimate,
    ).toBe('0');

    await seedMailbox(services, user, 'INBOX', messages(2));
    await withImap(services, user, async (imap) => {
      await imap.mailboxOpen('INBOX');
      await imap.messageFlagsAdd('1', ['\\Seen'], { uid: true });
    });
    expect(
      results(await device.command('GetItemEstimate', estimateRequest([{ id: inbox, key: key() }])))[0]?.estimate,
    ).toBe('3');
  });

  it('answers 2 for an unknown collection, 3 for an unprimed one and 4 for a wrong key, one Response each', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'Other', messages(1));
    const device = new TestDevice(server, user);
    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    const other = device.folderByName('Other').serverId;
    await device.sync(inbox);
    const body = await device.command(
      'GetItemEstimate',
      estimateRequest([
        { id: '999', key: '1' },
        { id: other, key: '0' },
        { id: inbox, key: '{00000000-0000-0000-0000-000000000000}3' },
        { id: inbox, key: device.collections.get(inbox)!.syncKey },
      ]),
    );
    expect(results(body).map((r) => r.status)).toEqual(['2', '3', '4', '1']);
  });
});
