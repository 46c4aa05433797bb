/**
 * IMAP connections dropped at chosen points (test/faults/proxy.ts between the app and the real Dovecot): in the
 * middle of a Sync window, of MoveItems, of SendMail's Sent copy, and under the push watcher's IDLE. After each
 * fault the device's next requests converge with the server: nothing lost, nothing twice, no collection stuck.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../src/backends/types.ts';
import type { LogEntry } from '../../src/log.ts';
import { loadConfig } from '../../src/config.ts';
import { startIdleWatcher } from '../../src/push/idle-watcher.ts';
import { buildApp } from '../../src/app/build.ts';
import { pooledImapSessions, type ImapSessions } from '../../src/backends/imap/sessions.ts';
import { child, children, childText, el } from '../../src/wbxml/tree.ts';
import { subjects, TestDevice, testServer, type TestServer } from '../device/device.ts';
import { compose, composeStatus } from '../e2e/mail/compose-helpers.ts';
import { createUser, listMessages, makeMessage, seedMailbox, waitForMessage, withImap } from '../services/seed.ts';
import { expectMailConverged, syncToEnd } from './converge.ts';
import { startFaultProxy, type FaultProxy } from './proxy.ts';

const services = inject('services');
const PUSH_ENV = { PING_MIN_HEARTBEAT: '1', PING_MAX_HEARTBEAT: '10', PING_POLL_SECONDS: '1' };
const MASTER_ENV = { IMAP_MASTER_USER: services.master.user, IMAP_MASTER_PASSWORD: services.master.password };

let proxy: FaultProxy;
let server: TestServer;

beforeAll(async () => {
  proxy = await startFaultProxy(services.imaps, { tls: true });
  server = testServer(services, {
    IMAP_HOST: proxy.host,
    IMAP_PORT: String(proxy.port),
    IMAP_SECURE: 'true',
    ...PUSH_ENV,
    ...MASTER_ENV,
  });
});
afterAll(async () => {
  await proxy.close();
});

/** `count` messages of about 3 KB each, subjects `${prefix} 1…count`. */
function messages(prefix: string, count: number, to: string): { message: Buffer }[] {
  return Array.from({ length: count }, (_, i) => ({
    message: makeMessage({
      to,
      subject: `${prefix} ${i + 1}`,
      text: `Message ${i + 1}.\n${'lorem ipsum '.repeat(250)}`,
    }),
  }));
}

async function readyUser(
  count: number,
): Promise<{ user: ReturnType<typeof createUser>; device: TestDevice; inbox: string }> {
  const user = createUser(services);
  if (count) await seedMailbox(services, user, 'INBOX', messages('msg', count, user.email));
  const device = new TestDevice(server, user);
  await device.folderSync();
  return { user, device, inbox: device.folderByType(FolderType.Inbox).serverId };
}

/**
 * The FETCH that reads a window's contents (backends/imap/mail.ts fetchMessageParts): the one for the parts the device
 * gets (`BODY.PEEK[1.2]<0.7168>`), or for whole messages (`BODY.PEEK[]`), which in a window of a few small messages
 * is the first FETCH, the one for structures and header fields, too (`BODY.PEEK[]<0.16384>`).
 */
const WINDOW_FETCH = /UID FETCH [^\r\n]*BODY\.PEEK\[[\d.]*\]/;

describe('IMAP dropped during Sync', () => {
  it('a window whose FETCH reached Dovecot but whose answer was lost: Status 5, then the retry converges', async () => {
    const { user, device, inbox } = await readyUser(12);
    await device.sync(inbox); // key 0
    expect((await device.sync(inbox, { windowSize: 4 })).added).toHaveLength(4);
    const keyBefore = device.collections.get(inbox)!.syncKey;
    const fault = proxy.arm({
      upstreamLine: WINDOW_FETCH,
      deliver: true,
      action: 'reset',
      settleMs: 100,
    });
    const broken = await device.sync(inbox, { windowSize: 4 });
    expect(fault.hasFired).toBe(true);
    expect(broken.response.status).toBe(200);
    expect(broken.status).toBe(5);
    // Nothing was recorded: the device's key is still the current one.
    expect(device.collections.get(inbox)!.syncKey).toBe(keyBefore);
    await expectMailConverged(services, user, device, inbox, 'INBOX');
    expect(device.items(inbox).size).toBe(12);
  });

  it('a connection cut in the middle of the FETCH answer (half a message received): Status 5, then the retry converges', async () => {
    const { user, device, inbox } = await readyUser(8);
    await device.sync(inbox);
    const fault = proxy.arm({
      upstreamLine: WINDOW_FETCH,
      deliver: true,
      answerBytes: 5_000,
      action: 'drop',
    });
    const broken = await device.sync(inbox, { windowSize: 4 });
    expect(fault.hasFired).toBe(true);
    expect(broken.response.status).toBe(200);
    expect(broken.status).toBe(5);
    await expectMailConverged(services, user, device, inbox, 'INBOX');
    expect(device.items(inbox).size).toBe(8);
  });

  it('a connection closed before the FETCH reached Dovecot, on a device Change: the Change is applied once', async () => {
    const { user, device, inbox } = await readyUser(6);
    await syncToEnd(device, inbox);
    const [first] = [...device.items(inbox).keys()];
    // Something new to fetch, so the Sync with the Change also fetches a window.
    await seedMailbox(services, user, 'INBOX', messages('late', 2, user.email));
    const fault = proxy.arm({ upstreamLine: WINDOW_FETCH, action: 'drop' });
    const change = el('AirSync', 'Change', [
      el('AirSync', 'ServerId', first!),
      el('AirSync', 'ApplicationData', [el('Email', 'Flag', [el('Email', 'Status', '2')])]),
    ]);
    const broken = await device.sync(inbox, { commands: [change] });
    expect(fault.hasFired).toBe(true);
    expect(broken.status).toBe(5);
    // The phone sends the same request again (same key, same Change).
    const retried = await device.sync(inbox, { commands: [change] });
    expect(retried.status).toBe(1);
    // Applied once, and not answered as a conflict with itself.
    expect(children(child(retried.collection, 'Responses'), 'Change').map((r) => childText(r, 'Status'))).toEqual([]);
    await expectMailConverged(services, user, device, inbox, 'INBOX');
    const flagged = (await listMessages(services, user)).filter((m) => m.flags.includes('\\Flagged'));
    expect(flagged).toHaveLength(1);
  });
});

describe('IMAP dropped during MoveItems', () => {
  async function moveItems(
    device: TestDevice,
    moves: { srcMsgId: string; srcFldId: string; dstFldId: string }[],
  ): Promise<{ status: number; dstMsgId: string | undefined }[]> {
    const res = await device.send(
      'MoveItems',
      el(
        'Move',
        'MoveItems',
        moves.map((m) =>
          el('Move', 'Move', [
            el('Move', 'SrcMsgId', m.srcMsgId),
            el('Move', 'SrcFldId', m.srcFldId),
            el('Move', 'DstFldId', m.dstFldId),
          ]),
        ),
      ),
    );
    expect(res.status).toBe(200);
    return children(res.body, 'Response').map((r) => ({
      status: Number(childText(r, 'Status')),
      dstMsgId: childText(r, 'DstMsgId'),
    }));
  }

  it('the MOVE happened but its answer was lost: Status 5, the retry and the Syncs of both folders converge', async () => {
    const { user, device, inbox } = await readyUser(4);
    const archive = device.folderByName('Archive').serverId;
    await syncToEnd(device, inbox);
    await syncToEnd(device, archive);
    const ids = [...device.items(inbox).keys()].slice(0, 2);
    const moves = ids.map((srcMsgId) => ({ srcMsgId, srcFldId: inbox, dstFldId: archive }));
    const fault = proxy.arm({ upstreamLine: /UID MOVE/, deliver: true, action: 'reset', settleMs: 100 });
    const first = await moveItems(device, moves);
    expect(fault.hasFired).toBe(true);
    // MoveItems Status 5: the move failed for now, the device may retry.
    expect(first.map((r) => r.status)).toEqual([5, 5]);
    // The retry, as a phone does: the first message is already gone from the Inbox (Status 1, the device drops its
    // copy and learns the rest from Sync); the second moves now.
    const again = await moveItems(device, moves);
    expect(again.map((r) => r.status)).toEqual([1, 3]);
    for (const [i, r] of again.entries()) {
      const data = device.items(inbox).get(ids[i]!)!;
      device.items(inbox).delete(ids[i]!);
      if (r.status === 3) device.items(archive).set(r.dstMsgId!, data);
    }
    await expectMailConverged(services, user, device, inbox, 'INBOX');
    await expectMailConverged(services, user, device, archive, 'Archive');
    expect(device.items(inbox).size).toBe(2);
    expect(device.items(archive).size).toBe(2);
  });
});

describe('IMAP unreachable when MoveItems opens its connection', () => {
  it('answers Status 5 for each move (the device retries later), not HTTP 500', async () => {
    const config = loadConfig({
      IMAP_HOST: proxy.host,
      IMAP_PORT: String(proxy.port),
      IMAP_SECURE: 'true',
      TENANT: 'test',
    });
    const pool = pooledImapSessions(config.imap);
    let refuse = false;
    // The login that authenticates the request works, then its connection drops (so the command cannot take it
    // over) and the connection the command opens instead is refused.
    const sessions: ImapSessions = {
      acquire: async (login) => {
        if (refuse) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
        const client = await pool.acquire(login);
        if (armed) {
          client.close();
          refuse = true;
        }
        return client;
      },
      release: (client) => pool.release(client, false),
    };
    let armed = false;
    const { app } = buildApp({ settings: config, imapSessions: () => sessions, state: server.state, log: () => {} });
    const { user, device: ready, inbox } = await readyUser(1);
    const device = new TestDevice(
      { fetch: async (url, init) => app.request(url, init), state: server.state, logs: [] },
      user,
      ready.deviceId,
    );
    device.policyKey = ready.policyKey;
    await syncToEnd(ready, inbox);
    const [id] = [...ready.items(inbox).keys()];
    const archive = ready.folderByName('Archive').serverId;
    armed = true;
    const res = await device.send(
      'MoveItems',
      el('Move', 'MoveItems', [
        el('Move', 'Move', [
          el('Move', 'SrcMsgId', id!),
          el('Move', 'SrcFldId', inbox),
          el('Move', 'DstFldId', archive),
        ]),
      ]),
    );
    expect(refuse).toBe(true);
    expect(res.status).toBe(200);
    expect(childText(child(res.body, 'Response'), 'Status')).toBe('5');
    expect(await listMessages(services, user)).toHaveLength(1);
  });
});

describe('IMAP dropped during SendMail', () => {
  it('the Sent copy was appended but its answer was lost: sent once, one copy in Sent, Sent converges', async () => {
    const { user, device } = await readyUser(0);
    const sent = device.folderByType(FolderType.SentItems).serverId;
    await syncToEnd(device, sent);
    const recipient = createUser(services);
    const subject = `fault ${Math.random().toString(36).slice(2)}`;
    const mime = makeMessage({ from: user.email, to: recipient.email, subject }).toString();
    const fault = proxy.arm({ upstreamLine: /APPEND/, deliver: true, action: 'reset', settleMs: 100 });
    const res = await compose(device, 'SendMail', mime, { saveInSent: true });
    expect(fault.hasFired).toBe(true);
    // The message went out: success, so that the device does not send it again.
    expect(composeStatus(res)).toBeUndefined();
    await waitForMessage(services, recipient, (m) => m.subject === subject);
    await expectMailConverged(services, user, device, sent, 'Sent');
    expect(subjects(device, sent)).toEqual([subject]);
    // Delivered once (Postfix → LMTP is quick; a duplicate would be there by now).
    await new Promise((r) => setTimeout(r, 500));
    expect((await listMessages(services, recipient)).filter((m) => m.subject === subject)).toHaveLength(1);
  });
});

describe("IMAP dropped under the watcher's IDLE", () => {
  it('the watcher reconnects and a later change still ends the Ping with Status 2', async () => {
    const { user, device, inbox } = await readyUser(1);
    await syncToEnd(device, inbox);
    const logs: LogEntry[] = [];
    const push = loadConfig({
      IMAP_HOST: proxy.host,
      IMAP_PORT: String(proxy.port),
      IMAP_SECURE: 'true',
      ...PUSH_ENV,
      ...MASTER_ENV,
    }).push;
    const watcher = startIdleWatcher({
      state: server.state,
      tenant: 'test',
      imap: { host: proxy.host, port: proxy.port, secure: true },
      push,
      checkIntervalMs: 60_000,
      leaseScanMs: 200,
      log: (e) => logs.push(e),
    });
    try {
      // The first IDLE of this test reaches Dovecot, then the connection is reset under it.
      const fault = proxy.arm({ upstreamLine: /^\S+ IDLE\r\n/m, deliver: true, action: 'reset', settleMs: 200 });
      const ping = device.send(
        'Ping',
        el('Ping', 'Ping', [
          el('Ping', 'HeartbeatInterval', '10'),
          el('Ping', 'Folders', [el('Ping', 'Folder', [el('Ping', 'Id', inbox), el('Ping', 'Class', 'Email')])]),
        ]),
      );
      await fault.fired;
      // After the reconnect (1 s back-off): a new message, which only the watcher can report to this Ping.
      await new Promise((r) => setTimeout(r, 2_000));
      await withImap(services, user, (imap) =>
        imap.append('INBOX', makeMessage({ to: user.email, subject: 'after the drop' })),
      );
      const res = await ping;
      expect(res.status).toBe(200);
      expect(childText(res.body, 'Status')).toBe('2');
      expect(children(child(res.body, 'Folders'), 'Folder').map((f) => f.text)).toEqual([inbox]);
      await expectMailConverged(services, user, device, inbox, 'INBOX');
      expect(device.items(inbox).size).toBe(2);
    } finally {
      await watcher.stop();
    }
  });
});
