/**
 * The FilterType window of email Sync against the real Dovecot: only messages that arrived (INTERNALDATE) within the
 * window are sent, a new FilterType resyncs the window, windows and MoreAvailable work together, and a message
 * that ages out of the window is SoftDeleted on the device while it stays on the server.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { decodeUidSet, encodeUidSet } from '../../../src/state/uidset.ts';
import { el, type WbxmlElement } from '../../../src/wbxml/tree.ts';
import { readyDevice, subjects, testServer, type TestServer } from '../../device/device.ts';
import { createUser, listMessages, makeMessage, seedMailbox, type SeedMessage } from '../../services/seed.ts';

const services = inject('services');
const DAY = 86_400_000;
let server: TestServer;

beforeAll(() => {
  server = testServer(services);
});

/** A message that arrived `daysAgo` days ago (INTERNALDATE), with that age in its subject. */
function aged(daysAgo: number, label = `${daysAgo} days old`): SeedMessage {
  const date = new Date(Date.now() - daysAgo * DAY);
  return {
    message: makeMessage({
      from: 'Bob <bob@example.test>',
      to: 'Alice <alice@example.test>',
      subject: label,
      text: `${label}\n`,
      date,
    }),
    internalDate: date,
  };
}

/** Sync Options with a FilterType, as a phone sends them on every Sync. */
function filter(type: number): WbxmlElement[] {
  return [
    el('AirSync', 'FilterType', String(type)),
    el('AirSyncBase', 'BodyPreference', [el('AirSyncBase', 'Type', '1'), el('AirSyncBase', 'TruncationSize', '512')]),
  ];
}

describe('FilterType', () => {
  it('3 (one week) sends only what arrived in the last week, also among new messages', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'INBOX', [
      aged(20),
      aged(2),
      aged(20, 'also 20 days old'),
      aged(2, 'also 2 days old'),
    ]);
    const { device, inbox } = await readyDevice(server, user);
    await device.syncUntilDone(inbox, { options: filter(3) });
    expect(subjects(device, inbox)).toEqual(['2 days old', 'also 2 days old']);

    // New in the folder, but one arrived (INTERNALDATE) 30 days ago, as an APPEND of an old message does.
    await seedMailbox(services, user, 'INBOX', [aged(30), aged(0.5, 'half a day old')]);
    const round = await device.sync(inbox, { options: filter(3) });
    expect(round.status).toBe(1);
    expect(round.added).toHaveLength(1);
    expect(subjects(device, inbox)).toEqual(['2 days old', 'also 2 days old', 'half a day old']);
    const quiet = await device.sync(inbox, { options: filter(3) });
    expect([...quiet.added, ...quiet.changed, ...quiet.deleted, ...quiet.softDeleted]).toEqual([]);
  });

  it('a different FilterType under the same key resyncs the window: SoftDelete out of it, Add into it', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'INBOX', [aged(40), aged(20), aged(2)]);
    const { device, inbox } = await readyDevice(server, user);
    await device.syncUntilDone(inbox, { options: filter(5) });
    expect(subjects(device, inbox)).toEqual(['2 days old', '20 days old']);

    // Narrower: what left the window goes as SoftDelete, under the same collection (no Status 3, as Exchange).
    const narrower = await device.sync(inbox, { options: filter(3) });
    expect(narrower.status).toBe(1);
    expect(narrower.softDeleted).toHaveLength(1);
    expect([...narrower.added, ...narrower.changed, ...narrower.deleted]).toEqual([]);
    expect(subjects(device, inbox)).toEqual(['2 days old']);

    // Wider: what entered the window is added; 0 is everything.
    const wider = await device.sync(inbox, { options: filter(0) });
    expect(wider.status).toBe(1);
    expect(wider.added).toHaveLength(2);
    expect(subjects(device, inbox)).toEqual(['2 days old', '20 days old', '40 days old']);
    const quiet = await device.sync(inbox, { options: filter(0) });
    expect([...quiet.added, ...quiet.changed, ...quiet.deleted, ...quiet.softDeleted]).toEqual([]);
  });

  it('windows and FilterType together: exactly the recent messages, two at a time', async () => {
    const user = createUser(services);
    const recent = [1, 2, 3, 4, 5].map((d) => aged(d / 4, `recent ${d}`));
    await seedMailbox(services, user, 'INBOX', [
      aged(20, 'old 1'),
      ...recent.slice(0, 3),
      aged(21, 'old 2'),
      ...recent.slice(3),
      aged(22, 'old 3'),
    ]);
    const { device, inbox } = await readyDevice(server, user);
    const rounds = await device.syncUntilDone(inbox, { options: filter(3), windowSize: 2 });
    // The first round is SyncKey 0 (no items).
    expect(rounds.map((r) => r.added.length)).toEqual([0, 2, 2, 1]);
    expect(rounds.map((r) => r.moreAvailable)).toEqual([false, true, true, false]);
    expect(subjects(device, inbox)).toEqual(['recent 1', 'recent 2', 'recent 3', 'recent 4', 'recent 5']);
  });

  it('SoftDeletes a message that leaves the window, and leaves it on the server', async () => {
    const user = createUser(services);
    const [old, , recent] = await seedMailbox(services, user, 'INBOX', [aged(40), aged(20), aged(2)]);
    const { device, inbox } = await readyDevice(server, user);
    await device.syncUntilDone(inbox, { options: filter(5) });
    expect(subjects(device, inbox)).toEqual(['2 days old', '20 days old']);

    // Time cannot pass in a test, so we put the collection into the state it would have reached had the device
    // synced with FilterType 5 thirty days ago, when the 40-day-old message was 10 days old: the window then started
    // 30 days before today's start, and the device got that message. That is the stored watermark with `windowStart`
    // 30 days earlier and the message's UID among the device's UIDs (and the item on the device), under the same
    // SyncKey, written by compare-and-set from that key as Sync itself writes it.
    const stored = await server.state.getCollection(device.scope, inbox);
    const wm = stored?.state.watermark;
    if (!stored || wm?.kind !== 'imap' || wm.windowStart === undefined)
      throw new Error('no windowed IMAP watermark stored');
    const earlierStart = wm.windowStart - 30 * DAY;
    expect(old!.uid).toBeGreaterThan(0);
    expect(earlierStart).toBeLessThan(Date.now() - 40 * DAY);
    const uids = decodeUidSet(wm.uids);
    expect(uids).not.toContain(old!.uid);
    await server.state.commitCollection(
      device.scope,
      inbox,
      { syncKey: stored.syncKey },
      {
        ...stored,
        state: {
          ...stored.state,
          watermark: { ...wm, windowStart: earlierStart, uids: encodeUidSet([...uids, old!.uid]) },
        },
      },
    );
    const oldId = `${inbox}:${old!.uid}`;
    device.items(inbox).set(oldId, el('AirSync', 'ApplicationData', [el('Email', 'Subject', '40 days old')]));

    const round = await device.sync(inbox, { options: filter(5) });
    expect(round.status).toBe(1);
    expect(round.softDeleted).toEqual([oldId]);
    expect([...round.added, ...round.changed, ...round.deleted]).toEqual([]);
    expect(subjects(device, inbox)).toEqual(['2 days old', '20 days old']);
    // Still on the server, unchanged.
    expect((await listMessages(services, user, 'INBOX')).map((m) => m.uid)).toContain(old!.uid);
    const after = (await server.state.getCollection(device.scope, inbox))?.state.watermark;
    expect(after?.kind === 'imap' ? decodeUidSet(after.uids) : []).not.toContain(old!.uid);
    expect(after?.kind === 'imap' ? after.windowStart : undefined).toBe(wm.windowStart);

    const quiet = await device.sync(inbox, { options: filter(5) });
    expect([...quiet.added, ...quiet.changed, ...quiet.deleted, ...quiet.softDeleted]).toEqual([]);
    expect(device.items(inbox).has(`${inbox}:${recent!.uid}`)).toBe(true);
  });
});
