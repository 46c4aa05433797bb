/**
 * What "the device converged after a fault" means in test/faults/: the device syncs until the server has nothing
 * more, never receives an Add for an item it already holds, and ends with exactly the server's items (same count,
 * same subjects, no duplicates).
 */
import { expect } from 'vitest';
import type { SyncCollectionOptions, SyncRound, TestDevice } from '../device/device.ts';
import { subjects } from '../device/device.ts';
import { davRequest, listMessages } from '../services/seed.ts';
import type { TestServices, TestUser } from '../services/types.ts';

/** Statuses a Sync may answer after a fault: the ones a device recovers from by itself. */
export const RECOVERABLE_SYNC_STATUSES = [1, 3, 5, 16];

/**
 * Sync rounds until MoreAvailable is gone. Status 5 and 16 are retried as a phone does (same key); Status 3 starts
 * the collection over from key 0. Fails on an Add of a ServerId the device already has.
 */
export async function syncToEnd(
  device: TestDevice,
  collectionId: string,
  o: Omit<SyncCollectionOptions, 'lose'> = {},
  maxRounds = 200,
): Promise<SyncRound[]> {
  const rounds: SyncRound[] = [];
  for (let i = 0; i < maxRounds; i++) {
    const held = new Set(device.items(collectionId).keys());
    const round = await device.sync(collectionId, i === 0 ? o : { ...o, commands: [] });
    rounds.push(round);
    expect(round.response.status).toBe(200);
    expect(RECOVERABLE_SYNC_STATUSES).toContain(round.status);
    if (round.status === 1) {
      for (const id of round.added) expect(held.has(id), `Add of ${id}, which the device already has`).toBe(false);
      if (!round.moreAvailable && device.collections.get(collectionId)?.syncKey !== '0' && i > 0) return rounds;
      continue;
    }
    if (round.status === 3) device.collections.delete(collectionId);
  }
  throw new Error(`Sync of ${collectionId} did not settle in ${maxRounds} rounds`);
}

/** The device holds exactly the messages of the IMAP folder: same count, same subjects (each once). */
export async function expectMailConverged(
  services: TestServices,
  user: TestUser,
  device: TestDevice,
  collectionId: string,
  folder: string,
): Promise<void> {
  await syncToEnd(device, collectionId);
  const onServer = (await listMessages(services, user, folder)).map((m) => m.subject).sort();
  expect(subjects(device, collectionId)).toEqual(onServer);
  expect(new Set(onServer).size).toBe(onServer.length);
}

/** The SUMMARY of every event in a calendar collection on the DAV server, sorted. */
export async function eventSummaries(services: TestServices, user: TestUser, collectionUrl: string): Promise<string[]> {
  const res = await davRequest(services, user, 'REPORT', collectionUrl, {
    depth: '1',
    body: '<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>',
  });
  return [...(await res.text()).matchAll(/SUMMARY:([^\r\n]+)/g)].map((m) => m[1]!).sort();
}
