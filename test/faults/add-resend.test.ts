/**
 * A device's Add resent after its answer was lost, once the device has synced again (same ClientId, the older
 * SyncKey), against the real Radicale, 50 rounds each for contacts and events: the server holds the item once, the
 * device holds what the server holds, and a second device's full sync right afterwards lists it exactly once.
 *
 * Every other round the server has news between the Add and the next Sync, so that Sync moves the key on and the
 * replay record no longer covers the older key: the resend gets Status 3 and the device, starting over, sends the Add
 * again under a new key. The item's DAV name is made from the ClientId and the ApplicationData, not the SyncKey
 * (src/sync/engine.ts addResourceName), so that Add finds the first item; with the SyncKey in the name it made a
 * second one.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { itemText, TestDevice, testServer, type TestServer } from '../device/device.ts';
import { el, type WbxmlElement } from '../../src/wbxml/tree.ts';
import { calendarAdd } from '../device/calendar.ts';
import { createUser, davRequest, makeEvent, makeVCard, seedAddressBook, seedCalendar } from '../services/seed.ts';
import type { TestUser } from '../services/types.ts';
import { syncToEnd } from './converge.ts';

const services = inject('services');
const ROUNDS = 50;
let server: TestServer;

beforeAll(() => {
  server = testServer(services);
});

function contactAdd(clientId: string, lastName: string): WbxmlElement {
  return el('AirSync', 'Add', [
    el('AirSync', 'ClientId', clientId),
    el('AirSync', 'ApplicationData', [el('Contacts', 'FirstName', 'Round'), el('Contacts', 'LastName', lastName)]),
  ]);
}

/** How many resources of the collection on the DAV server contain `marker` (one REPORT with every item's data). */
async function countOnServer(user: TestUser, collectionUrl: string, kind: 'contact' | 'event', marker: string) {
  const body =
    kind === 'contact'
      ? '<?xml version="1.0"?><R:addressbook-query xmlns:D="DAV:" xmlns:R="urn:ietf:params:xml:ns:carddav"><D:prop><R:address-data/></D:prop></R:addressbook-query>'
      : '<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>';
  const res = await davRequest(services, user, 'REPORT', collectionUrl, { depth: '1', body });
  const responses = (await res.text()).split(/<(?:\w+:)?response>/).slice(1);
  return responses.filter((r) => r.includes(marker)).length;
}

/** Deletes every item of the collection on the DAV server: each round starts from an empty folder, and stays quick. */
async function clearCollection(user: TestUser, collectionUrl: string): Promise<void> {
  const res = await davRequest(services, user, 'PROPFIND', collectionUrl, {
    depth: '1',
    body: '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><getetag/></prop></propfind>',
  });
  const hrefs = [...(await res.text()).matchAll(/<(?:\w+:)?href>([^<]+\.(?:vcf|ics))<\/(?:\w+:)?href>/g)].map(
    (m) => m[1]!,
  );
  for (const href of hrefs)
    await (await davRequest(services, user, 'DELETE', new URL(href, collectionUrl).href)).text();
}

/** An item written on the DAV server by someone else. */
async function putOther(
  user: TestUser,
  collectionUrl: string,
  kind: 'contact' | 'event',
  round: number,
): Promise<void> {
  const uid = `other-${round}-${Math.random().toString(36).slice(2, 8)}`;
  const text =
    kind === 'contact'
      ? makeVCard({ uid, firstName: 'Other', lastName: uid })
      : makeEvent({ uid, summary: uid, start: '2026-03-03T09:00:00' });
  const res = await davRequest(
    services,
    user,
    'PUT',
    new URL(`${uid}.${kind === 'contact' ? 'vcf' : 'ics'}`, collectionUrl).href,
    {
      body: text,
      contentType: kind === 'contact' ? 'text/vcard; charset=utf-8' : 'text/calendar; charset=utf-8',
    },
  );
  expect(res.status).toBeLessThan(300);
}

async function run(kind: 'contact' | 'event'): Promise<void> {
  const user = createUser(services);
  const seeded =
    kind === 'contact'
      ? await seedAddressBook(services, user, 'book', [], { displayName: 'Book' })
      : await seedCalendar(services, user, 'cal', [], { displayName: 'Cal' });
  const first = new TestDevice(server, user);
  const second = new TestDevice(server, user);
  await first.folderSync();
  await second.folderSync();
  // Folder ServerIds are each device's own: the first device's FolderSync created the Notes
  // folder after listing the others, so the two devices may number them differently.
  const folder = first.folderByName(kind === 'contact' ? 'Book' : 'Cal').serverId;
  const secondFolder = second.folderByName(kind === 'contact' ? 'Book' : 'Cal').serverId;
  await syncToEnd(first, folder);
  const tag = kind === 'contact' ? 'LastName' : 'Subject';
  const ns = kind === 'contact' ? 'Contacts' : 'Calendar';
  const outcomes: string[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const name = `Item${round}x${Math.random().toString(36).slice(2, 8)}`;
    const add = kind === 'contact' ? contactAdd(`c${round}`, name) : calendarAdd(`c${round}`, name);
    const olderKey = first.collections.get(folder)!.syncKey;
    const added = await first.sync(folder, { commands: [add] });
    expect(added.status).toBe(1);
    // Syncs once more (every other round the server has news, so that Sync moves the key on), then resends its
    // first Add under the older key, as after a lost answer.
    if (round % 2 === 1) await putOther(user, seeded.collectionUrl, kind, round);
    await first.sync(folder);
    const held = first.collections.get(folder)!;
    const currentKey = held.syncKey;
    held.syncKey = olderKey;
    const resent = await first.sync(folder, { commands: [add] });
    outcomes.push(String(resent.status));
    if (resent.status !== 1) held.syncKey = currentKey;
    if (resent.status === 3) {
      // Starts the folder over, then sends the Add it never saw answered again, with the same ClientId.
      first.collections.delete(folder);
      await first.sync(folder);
      const again = await first.sync(folder, { commands: [add] });
      outcomes.push(`again:${again.status}`);
    }
    await syncToEnd(first, folder);

    expect(await countOnServer(user, seeded.collectionUrl, kind, name), `round ${round}: on the server`).toBe(1);
    second.collections.delete(secondFolder);
    await syncToEnd(second, secondFolder);
    const listed = [...second.items(secondFolder).values()].filter((d) => itemText(d, tag, ns) === name);
    expect(listed.length, `round ${round}: in the second device's full sync`).toBe(1);
    // The first device holds what the server holds, nothing twice (its own Add under the ServerId it was answered).
    expect(first.items(folder).size, `round ${round}: on the first device`).toBe(
      await countOnServer(user, seeded.collectionUrl, kind, ''),
    );
    await clearCollection(user, seeded.collectionUrl);
  }
  // Both paths were taken: the resend answered from the replay record (the Sync in between moved nothing), and,
  // when the Sync in between moved the key on, Status 3 and the Add sent again after the folder started over.
  expect(outcomes.filter((o) => o === '1')).toHaveLength(ROUNDS / 2);
  expect(outcomes.filter((o) => o === '3')).toHaveLength(ROUNDS / 2);
  expect(outcomes.filter((o) => o === 'again:1')).toHaveLength(ROUNDS / 2);
}

describe('an Add resent under the older SyncKey after one more Sync', () => {
  it("contacts: one item on the server and in a second device's full sync, every round", () => run('contact'), 60_000);
  it("events: one item on the server and in a second device's full sync, every round", () => run('event'), 60_000);
});
