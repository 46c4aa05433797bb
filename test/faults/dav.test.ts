/**
 * A CalDAV PUT that times out (test/faults/proxy.ts in front of the real Radicale holds the answer): the device gets
 * a retryable Sync status, and its retry of the same Add does not create a second event.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { itemText, TestDevice, testServer, type TestServer } from '../device/device.ts';
import { calendarAdd } from '../device/calendar.ts';
import { createUser, makeEvent, seedCalendar } from '../services/seed.ts';
import { eventSummaries, syncToEnd } from './converge.ts';
import { startFaultProxy, type FaultProxy } from './proxy.ts';

const services = inject('services');
let proxy: FaultProxy;
let server: TestServer;

beforeAll(async () => {
  const radicale = new URL(services.caldavUrl);
  proxy = await startFaultProxy({ host: radicale.hostname, port: Number(radicale.port) }, { tls: true });
  const viaProxy = `https://${proxy.host}:${proxy.port}/`;
  // One second per DAV request: the stalled PUT fails fast.
  server = testServer(services, { CALDAV_URL: viaProxy, CARDDAV_URL: viaProxy, DAV_TIMEOUT_SECONDS: '1' });
});
afterAll(async () => {
  await proxy.close();
});

describe('a CalDAV PUT that times out', () => {
  it('answers Sync Status 5; the retried Add finds the event the PUT made instead of adding a second', async () => {
    const user = createUser(services);
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

    // Radicale stores the event; its answer never comes back.
    const fault = proxy.arm({ upstreamLine: /^PUT /m, deliver: true, action: 'stall', settleMs: 0 });
    const add = [calendarAdd('phone-7', 'Lunch')];
    const timedOut = await device.sync(home, { commands: add });
    expect(fault.hasFired).toBe(true);
    expect(timedOut.response.status).toBe(200);
    expect(timedOut.status).toBe(5);
    expect(await eventSummaries(services, user, seeded.collectionUrl)).toEqual(['Dentist', 'Lunch']);
    fault.release();

    // The phone sends the same request again: the Add is answered, the event stays single.
    const retried = await device.sync(home, { commands: add });
    expect(retried.status).toBe(1);
    expect(retried.addResponses).toEqual([expect.objectContaining({ clientId: 'phone-7', status: 1 })]);
    await syncToEnd(device, home);
    expect(await eventSummaries(services, user, seeded.collectionUrl)).toEqual(['Dentist', 'Lunch']);
    // The device holds Dentist (sent by the server) and its own Lunch (under the ServerId of the answer), nothing else.
    expect(device.items(home).size).toBe(2);
    expect(device.items(home).has(retried.addResponses[0]!.serverId!)).toBe(true);
    expect([...device.items(home).values()].map((d) => itemText(d, 'Subject', 'Calendar')).filter(Boolean)).toEqual([
      'Dentist',
    ]);
  });
});
