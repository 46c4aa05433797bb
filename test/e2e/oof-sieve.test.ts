/**
 * Oof as a Sieve vacation script (RFC 5230) installed over ManageSieve (RFC 5804): a device turns automatic replies on
 * through Settings, Dovecot runs the script on LMTP delivery and the reply lands in the sender's INBOX; turning them
 * off removes the script, and a later message gets no reply. Settings Get reports what was set.
 */
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { child, childText, el, type WbxmlElement } from '../../src/wbxml/tree.ts';
import { createUser, deliverViaLmtp, listMessages, waitForMessage } from '../services/seed.ts';
import type { TestUser } from '../services/types.ts';
import { TestDevice, testServer, type TestServer } from '../device/device.ts';
import { withManageSieve } from '../../src/backends/sieve/managesieve.ts';

const services = inject('services');

let server: TestServer;

beforeAll(() => {
  server = testServer(services, {
    SIEVE: 'on',
    SIEVE_HOST: services.sieve.host,
    SIEVE_PORT: String(services.sieve.port),
    SIEVE_SECURE: 'false',
  });
});

const s = (tag: Parameters<typeof el<'Settings'>>[1], content?: Parameters<typeof el>[2]): WbxmlElement =>
  el('Settings', tag, content);

async function oof(device: TestDevice, request: WbxmlElement): Promise<WbxmlElement> {
  const body = await device.command('Settings', s('Settings', [s('Oof', [request])]));
  expect(childText(body, 'Status')).toBe('1');
  const part = child(body, 'Oof');
  expect(part).toBeDefined();
  return part!;
}

function internalMessage(enabled: boolean, reply: string): WbxmlElement {
  return s('OofMessage', [
    s('AppliesToInternal'),
    s('Enabled', enabled ? '1' : '0'),
    s('ReplyMessage', reply),
    s('BodyType', 'Text'),
  ]);
}

async function mailFrom(sender: TestUser, to: TestUser, subject: string): Promise<void> {
  const result = await deliverViaLmtp(services, sender.email, to.email, { subject, text: 'Are you around?' });
  expect(result.accepted).toEqual([to.email]);
}

describe('Oof through ManageSieve', () => {
  it('turns a Settings Oof Set into an active vacation script, and Oof off removes it', async () => {
    const user = createUser(services);
    const first = createUser(services);
    const later = createUser(services);
    const device = new TestDevice(server, user);
    const reply = 'Away until Monday.\nUrgent: call "the desk" \\ ext. 42';

    const set = await oof(device, s('Set', [s('OofState', '1'), internalMessage(true, reply)]));
    expect(childText(set, 'Status')).toBe('1');

    const get = child(await oof(device, s('Get', [s('BodyType', 'Text')])), 'Get');
    expect(childText(get, 'OofState')).toBe('1');
    const internal = child(get, 'OofMessage');
    expect(childText(internal, 'Enabled')).toBe('1');
    expect(childText(internal, 'ReplyMessage')).toBe(reply);

    // Dovecot runs the script during the LMTP delivery and sends the reply back over LMTP before answering.
    await mailFrom(first, user, 'Lunch?');
    const auto = await waitForMessage(services, first, (m) => m.subject === 'Automatic reply');
    expect(auto.from).toEqual([user.email]);
    expect(auto.to).toEqual([first.email]);
    const text = await fetchText(first, auto.uid);
    expect(text).toContain('Away until Monday.');
    expect(text).toContain('call "the desk" \\ ext. 42');

    const off = await oof(device, s('Set', [s('OofState', '0')]));
    expect(childText(off, 'Status')).toBe('1');
    expect(childText(child(await oof(device, s('Get', [s('BodyType', 'Text')])), 'Get'), 'OofState')).toBe('0');

    // A sender who has had no reply yet (vacation answers each sender once a day), after Oof is off: nothing.
    await mailFrom(later, user, 'Still away?');
    await waitForMessage(services, user, (m) => m.subject === 'Still away?');
    expect(await listMessages(services, later)).toEqual([]);
  });

  it('replies only inside the scheduled window (OofState 2)', async () => {
    const user = createUser(services);
    const inside = createUser(services);
    const device = new TestDevice(server, user);
    const now = Date.now();
    const window = [
      s('StartTime', new Date(now - 3_600_000).toISOString()),
      s('EndTime', new Date(now + 3_600_000).toISOString()),
    ];
    expect(
      childText(
        await oof(device, s('Set', [s('OofState', '2'), ...window, internalMessage(true, 'On leave this hour.')])),
        'Status',
      ),
    ).toBe('1');
    const get = child(await oof(device, s('Get', [s('BodyType', 'Text')])), 'Get');
    expect(childText(get, 'OofState')).toBe('2');
    expect(childText(get, 'StartTime')).toBeDefined();

    await mailFrom(inside, user, 'Now?');
    const auto = await waitForMessage(services, inside, (m) => m.subject === 'Automatic reply');
    expect(await fetchText(inside, auto.uid)).toContain('On leave this hour.');

    // A window that has ended: the script stays installed but its date test keeps it quiet.
    const past = createUser(services);
    const ended = [
      s('StartTime', new Date(now - 7_200_000).toISOString()),
      s('EndTime', new Date(now - 3_600_000).toISOString()),
    ];
    expect(childText(await oof(device, s('Set', [s('OofState', '2'), ...ended])), 'Status')).toBe('1');
    await mailFrom(past, user, 'Back yet?');
    expect(await listMessages(services, past)).toEqual([]);
  });
});

function oofMessage(audience: 'AppliesToInternal' | 'AppliesToExternalUnknown', reply: string): WbxmlElement {
  return s('OofMessage', [s(audience), s('Enabled', '1'), s('ReplyMessage', reply), s('BodyType', 'Text')]);
}

/** The user's scripts over ManageSieve as the user (STARTTLS, as the server does it). */
function userSieve<T>(user: TestUser, work: Parameters<typeof withManageSieve<T>>[2]): Promise<T> {
  return withManageSieve({ ...services.sieve, secure: false }, { login: user.email, password: user.password }, work);
}

describe("Oof with the user's own active Sieve script (RFC 6609 include)", () => {
  it("keeps the user's filing rule working while Oof is on, answers internal and external senders each with their own message, and makes the user's script active again when Oof is off", async () => {
    const user = createUser(services);
    const colleague = createUser(services);
    const partner = createUser(services);
    const later = createUser(services);
    const device = new TestDevice(server, user);
    const rules = [
      'require ["fileinto", "mailbox"];',
      'if header :contains "subject" "[report]" {',
      '  fileinto :create "Filed";',
      '}',
      '',
    ].join('\r\n');
    await userSieve(user, async (session) => {
      await session.putScript('my rules', rules);
      await session.setActive('my rules');
    });

    const set = await oof(
      device,
      s('Set', [
        s('OofState', '1'),
        oofMessage('AppliesToInternal', 'Internal: ask the team channel.'),
        oofMessage('AppliesToExternalUnknown', 'External: please write to the front desk.'),
      ]),
    );
    expect(childText(set, 'Status')).toBe('1');

    // Same domain as the user: filed by the user's own rule, and the internal reply.
    await mailFrom(colleague, user, '[report] weekly numbers');
    await waitForMessage(services, user, (m) => m.subject === '[report] weekly numbers', 10_000, 'Filed');
    const internal = await waitForMessage(services, colleague, (m) => m.subject === 'Automatic reply');
    const internalText = await fetchText(colleague, internal.uid);
    expect(internalText).toContain('Internal: ask the team channel.');
    expect(internalText).not.toContain('front desk');

    // From a partner's domain (the reply goes to the envelope sender, a local mailbox here): the external reply.
    const raw = [
      `From: Partner <${partner.name}@partner.example>`,
      `To: ${user.email}`,
      'Subject: Contract',
      `Message-ID: <${partner.name}@partner.example>`,
      'Date: Mon, 07 Dec 2026 10:00:00 +0000',
      '',
      'Can we talk?',
      '',
    ].join('\r\n');
    expect((await deliverViaLmtp(services, partner.email, user.email, raw)).accepted).toEqual([user.email]);
    const external = await waitForMessage(services, partner, (m) => m.subject === 'Automatic reply');
    const externalText = await fetchText(partner, external.uid);
    expect(externalText).toContain('External: please write to the front desk.');
    expect(externalText).not.toContain('team channel');

    const off = await oof(device, s('Set', [s('OofState', '0')]));
    expect(childText(off, 'Status')).toBe('1');
    const scripts = await userSieve(user, (session) => session.listScripts());
    expect(scripts).toEqual([{ name: 'my rules', active: true }]);

    // The user's rule still files, and no reply goes out.
    await mailFrom(later, user, '[report] after the holidays');
    await waitForMessage(services, user, (m) => m.subject === '[report] after the holidays', 10_000, 'Filed');
    expect(await listMessages(services, later)).toEqual([]);
  });
});

describe('Oof when ManageSieve cannot be reached', () => {
  it('answers Status 4, keeps Oof reported off, and logs no credentials', async () => {
    // Port 1 on loopback: nothing listens, the connection is refused.
    const unreachable = testServer(services, {
      SIEVE: 'on',
      SIEVE_HOST: '127.0.0.1',
      SIEVE_PORT: '1',
      SIEVE_SECURE: 'false',
    });
    const user = createUser(services);
    const device = new TestDevice(unreachable, user);
    const body = await device.command(
      'Settings',
      s('Settings', [s('Oof', [s('Set', [s('OofState', '1'), internalMessage(true, 'Away.')])])]),
    );
    expect(childText(body, 'Status')).toBe('1');
    expect(childText(child(body, 'Oof'), 'Status')).toBe('4');
    expect(childText(child(await oof(device, s('Get', [s('BodyType', 'Text')])), 'Get'), 'OofState')).toBe('0');
    const logged = JSON.stringify(unreachable.logs);
    expect(logged).toContain('oofSieveError');
    expect(logged).not.toContain(user.password);
    expect(logged).not.toContain(Buffer.from(`\0${user.email}\0${user.password}`).toString('base64'));
  });
});

async function fetchText(user: TestUser, uid: number): Promise<string> {
  const { withImap } = await import('../services/seed.ts');
  return withImap(services, user, async (c) => {
    await c.mailboxOpen('INBOX', { readOnly: true });
    const m = await c.fetchOne(String(uid), { source: true }, { uid: true });
    return m ? m.source!.toString('utf8') : '';
  });
}
