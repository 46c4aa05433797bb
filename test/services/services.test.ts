// Proves that the services started by global-setup.ts really work, and exercises the seed helpers.
// Note: no bad-password logins here: after one failed login Dovecot delays the next
// login from 127.0.0.1 by 2-4 s, which would slow every other test file.
import {
  CreateTableCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  ConditionalCheckFailedException,
} from '@aws-sdk/client-dynamodb';
import { describe, expect, inject, it } from 'vitest';
import {
  createMailbox,
  createUser,
  davRequest,
  deliverViaLmtp,
  imapConnect,
  listMessages,
  makeEvent,
  makeMessage,
  makeTodo,
  makeVCard,
  principalUrl,
  resetUser,
  sampleMessages,
  seedAddressBook,
  seedCalendar,
  seedMailbox,
  sendViaSmtp,
  waitForMessage,
  withImap,
} from './seed.ts';

const services = inject('services');

describe('Dovecot IMAP', () => {
  it('logs in every user with the email and with the bare name', async () => {
    for (const user of services.users) {
      for (const login of [user.email, user.name]) {
        const c = await imapConnect(services, user, { login });
        expect(c.authenticated).toBeTruthy();
        await c.logout();
      }
    }
  });

  it('maps both login forms to one mailbox', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'INBOX', [{ message: { subject: 'one account' } }]);
    const viaName = await withImap(services, user, (c) => c.status('INBOX', { messages: true }), { login: user.name });
    expect(viaName ? viaName.messages : undefined).toBe(1);
  });

  it('logs in as a user through the master user (alice*syncmaster)', async () => {
    const user = createUser(services);
    await seedMailbox(services, user, 'INBOX', [{ message: { subject: 'seen by master' } }]);
    for (const login of [user.name, user.email]) {
      const subjects = await withImap(
        services,
        user,
        async (c) => {
          await c.mailboxOpen('INBOX');
          const out: string[] = [];
          for await (const m of c.fetch('1:*', { envelope: true })) out.push(m.envelope?.subject ?? '');
          return out;
        },
        { asMaster: true, login },
      );
      expect(subjects).toEqual(['seen by master']);
    }
  });

  it('offers IDLE, CONDSTORE, QRESYNC, SPECIAL-USE, MOVE, UIDPLUS and enables QRESYNC', async () => {
    await withImap(services, 'alice', async (c) => {
      for (const cap of ['IDLE', 'CONDSTORE', 'QRESYNC', 'SPECIAL-USE', 'MOVE', 'UIDPLUS', 'ENABLE', 'NAMESPACE']) {
        expect(c.capabilities.has(cap), cap).toBe(true);
      }
      expect([...c.enabled]).toEqual(expect.arrayContaining(['CONDSTORE', 'QRESYNC']));
      const box = await c.mailboxOpen('INBOX');
      expect(typeof box.highestModseq).toBe('bigint');
    });
  });

  it('has subscribed special-use folders', async () => {
    const boxes = await withImap(services, createUser(services), (c) => c.list());
    const byUse = new Map(boxes.map((b) => [b.specialUse, b]));
    for (const [use, path] of [
      ['\\Inbox', 'INBOX'],
      ['\\Sent', 'Sent'],
      ['\\Drafts', 'Drafts'],
      ['\\Trash', 'Trash'],
      ['\\Junk', 'Junk'],
      ['\\Archive', 'Archive'],
    ]) {
      const box = byUse.get(use);
      expect(box?.path, use).toBe(path);
      expect(box?.subscribed, path).toBe(true);
      if (use !== '\\Inbox') expect(box?.specialUseSource, path).toBe('extension');
    }
    expect(boxes[0]?.delimiter).toBe('/');
  });

  it('stores seeded messages with flags, internal dates, MIME structure and encoded subjects', async () => {
    const user = createUser(services);
    const seeds = sampleMessages({ to: user.email });
    const seeded = await seedMailbox(services, user, 'INBOX', seeds);
    expect(seeded.map((s) => s.uid)).toEqual([1, 2, 3, 4, 5]);

    const list = await listMessages(services, user);
    expect(list.map((m) => m.subject)).toEqual([
      'Project kickoff',
      'Your weekly digest',
      'Quarterly report',
      'Grüße aus München – Übersicht für März 📅',
      'Re: Project kickoff',
    ]);
    expect(list[0]?.flags).toEqual(['\\Seen']);
    expect(list[1]?.flags).toEqual([]);
    expect(list[2]?.flags.sort()).toEqual(['\\Flagged', '\\Seen']);
    expect(list[4]?.flags.sort()).toEqual(['\\Answered', '\\Seen']);
    expect(list[0]?.internalDate?.getTime()).toBe(Math.floor((seeds[0]?.internalDate?.getTime() ?? 0) / 1000) * 1000);
    expect(list[0]?.messageId).toBe(seeded[0]?.messageId);

    await withImap(services, user, async (c) => {
      await c.mailboxOpen('INBOX');
      const m = await c.fetchOne('3', { bodyStructure: true, source: true });
      if (!m) throw new Error('message 3 missing');
      expect(m.bodyStructure?.type).toBe('multipart/mixed');
      const types: string[] = [];
      const walk = (n: NonNullable<typeof m.bodyStructure>): void => {
        types.push(n.type);
        n.childNodes?.forEach(walk);
      };
      if (m.bodyStructure) walk(m.bodyStructure);
      expect(types).toEqual([
        'multipart/mixed',
        'multipart/alternative',
        'text/plain',
        'multipart/related',
        'text/html',
        'image/png',
        'application/pdf',
      ]);
      expect(m.source?.toString()).toContain('Importance: high');
      const fourth = await c.fetchOne('4', { source: true });
      const raw = fourth ? (fourth.source?.toString() ?? '') : '';
      expect(raw).toMatch(/^Subject: =\?UTF-8\?B\?/m);
    });
  });

  it('creates folders and resetUser() empties the account again', async () => {
    const user = createUser(services);
    await createMailbox(services, user, 'Projects/2026');
    await seedMailbox(services, user, 'Projects/2026', [{ message: { subject: 'nested' } }]);
    await seedMailbox(services, user, 'Trash', [{ message: { subject: 'trashed' } }]);
    await seedMailbox(services, user, 'INBOX', sampleMessages());
    await seedCalendar(services, user, 'work', [makeEvent({ start: '2026-03-02T09:00:00' })]);

    const before = await withImap(services, user, (c) => c.list());
    expect(before.map((b) => b.path)).toEqual(expect.arrayContaining(['Projects', 'Projects/2026']));

    await resetUser(services, user);
    const after = await withImap(services, user, (c) => c.list());
    expect(after.map((b) => b.path).sort()).toEqual(['Archive', 'Drafts', 'INBOX', 'Junk', 'Sent', 'Trash']);
    expect(await listMessages(services, user)).toEqual([]);
    expect(await listMessages(services, user, 'Trash')).toEqual([]);
    const res = await davRequest(services, user, 'PROPFIND', new URL('work/', principalUrl(services, user)).href, {
      depth: '0',
    });
    expect(res.status).toBe(404);
  });

  it('delivers EXISTS to an IDLE connection when another connection appends', async () => {
    const user = createUser(services);
    const watcher = await imapConnect(services, user);
    try {
      await watcher.mailboxOpen('INBOX');
      const exists = new Promise<number>((resolve) => watcher.on('exists', (e) => resolve(e.count)));
      const idling = watcher.idle();
      const t0 = Date.now();
      await seedMailbox(services, user, 'INBOX', [{ message: makeMessage({ subject: 'wake up' }) }]);
      expect(await exists).toBe(1);
      expect(Date.now() - t0).toBeLessThan(5_000);
      await watcher.logout();
      await idling.catch(() => undefined);
    } finally {
      watcher.close();
    }
  });

  it('delivers over LMTP into the mailbox of the recipient', async () => {
    const user = createUser(services);
    const res = await deliverViaLmtp(services, 'carol@example.test', user.email, { subject: 'via lmtp' });
    expect(res.accepted).toEqual([user.email]);
    const m = await waitForMessage(services, user, (x) => x.subject === 'via lmtp', 5_000);
    expect(m.to).toEqual([user.email]);
  });
});

describe('Radicale CalDAV/CardDAV', () => {
  const propfindPrincipal =
    '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><current-user-principal/></prop></propfind>';

  it('answers current-user-principal, the same for the email and the bare login', async () => {
    const alice = services.users[0];
    if (!alice) throw new Error('no users');
    for (const login of [alice.email, alice.name]) {
      const res = await davRequest(services, alice, 'PROPFIND', services.caldavUrl, {
        depth: '0',
        body: propfindPrincipal,
        login,
      });
      expect(res.status).toBe(207);
      expect(await res.text()).toContain('<current-user-principal><href>/alice%40example.test/</href>');
    }
    expect(principalUrl(services, alice)).toBe(`${services.caldavUrl}alice%40example.test/`);
  });

  it('stores a recurring event with VTIMEZONE, RRULE, EXDATE and an override', async () => {
    const user = createUser(services);
    const ics = makeEvent({
      uid: 'weekly-standup',
      summary: 'Weekly stand-up; team, all',
      start: '2026-03-02T09:00:00',
      durationMinutes: 15,
      tz: 'Europe/Berlin',
      rrule: 'FREQ=WEEKLY;BYDAY=MO;COUNT=10',
      exdates: ['2026-03-16T09:00:00'],
      overrides: [{ recurrenceId: '2026-03-23T09:00:00', start: '2026-03-23T10:00:00', summary: 'Stand-up (moved)' }],
      organizer: { email: user.email, name: 'Owner' },
      attendees: [{ email: 'bob@example.test', name: 'Bob', partstat: 'ACCEPTED' }],
      alarmMinutes: 10,
    });
    const todo = makeTodo({ uid: 'task-1', summary: 'File report', due: '2026-03-10' });
    const cal = await seedCalendar(services, user, 'work', [ics]);
    const tasks = await seedCalendar(services, user, 'tasks', [todo], { components: ['VTODO'] });
    expect(cal.items[0]?.etag).toMatch(/^"/);

    const got = await davRequest(services, user, 'GET', cal.items[0]?.url ?? '');
    expect(got.status).toBe(200);
    const body = (await got.text()).replace(/\r\n[ \t]/g, '');
    for (const part of [
      'BEGIN:VTIMEZONE',
      'TZID:Europe/Berlin',
      'RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10',
      'EXDATE;TZID=Europe/Berlin:20260316T090000',
      'RECURRENCE-ID;TZID=Europe/Berlin:20260323T090000',
      'SUMMARY:Weekly stand-up\\; team\\, all',
    ]) {
      expect(body).toContain(part);
    }
    expect(await (await davRequest(services, user, 'GET', tasks.items[0]?.url ?? '')).text()).toContain('BEGIN:VTODO');
  });

  it('stores a vCard 3.0 in an address book', async () => {
    const user = createUser(services);
    const vcard = makeVCard({
      uid: 'contact-1',
      firstName: 'Jürgen',
      lastName: 'Müller',
      emails: [{ address: 'juergen@example.test', type: 'WORK' }],
      phones: [
        { number: '+49 89 1234567', type: 'WORK' },
        { number: '+49 170 7654321', type: 'CELL' },
      ],
      org: 'Example GmbH',
      title: 'Engineer',
      address: { street: 'Marienplatz 1', city: 'München', postalCode: '80331', country: 'Germany' },
      birthday: '1980-04-01',
      note: 'Met at the conference, likes coffee; prefers email.',
    });
    const book = await seedAddressBook(services, user, 'contacts', [vcard]);
    const res = await davRequest(services, user, 'GET', book.items[0]?.url ?? '');
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('FN:Jürgen Müller');
    expect(text).toContain('TEL;TYPE=CELL:+49 170 7654321');

    const props = await davRequest(services, user, 'PROPFIND', book.collectionUrl, {
      depth: '0',
      body: '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><resourcetype/></prop></propfind>',
    });
    expect(await props.text()).toMatch(/addressbook/);
  });

  it('answers sync-collection (RFC 6578) with a token and only the changes since it', async () => {
    const user = createUser(services);
    const cal = await seedCalendar(services, user, 'sync', [makeEvent({ uid: 'first', start: '2026-04-01T12:00:00' })]);
    const report = (token: string): Promise<Response> =>
      davRequest(services, user, 'REPORT', cal.collectionUrl, {
        depth: '1',
        body: `<?xml version="1.0"?><sync-collection xmlns="DAV:"><sync-token>${token}</sync-token><sync-level>1</sync-level><prop><getetag/></prop></sync-collection>`,
      });
    const first = await report('');
    expect(first.status).toBe(207);
    const firstBody = await first.text();
    const token = /<sync-token>([^<]+)<\/sync-token>/.exec(firstBody)?.[1];
    expect(token).toBeTruthy();
    expect(firstBody).toContain('first.ics');

    await seedCalendar(services, user, 'sync', [makeEvent({ uid: 'second', start: '2026-04-02T12:00:00', tz: 'UTC' })]);
    const delta = await (await report(token ?? '')).text();
    expect(delta).toContain('second.ics');
    expect(delta).not.toContain('first.ics');
  });
});

describe('Postfix SMTP -> LMTP -> Dovecot', () => {
  it('delivers a message sent over SMTP into bob’s INBOX', async () => {
    const subject = `SMTP delivery ${Date.now()}`;
    const t0 = Date.now();
    const sent = await sendViaSmtp(services, 'alice@example.test', 'bob@example.test', { subject, text: 'Hello Bob' });
    expect(sent.accepted).toEqual(['bob@example.test']);
    const m = await waitForMessage(services, 'bob', (x) => x.subject === subject, 5_000);
    expect(m.from).toEqual(['alice@example.test']);
    expect(m.messageId).toBe(sent.messageId);
    expect(Date.now() - t0).toBeLessThan(5_000);
  });
});

describe('dynalite', () => {
  it('creates a table, puts and gets an item, and enforces conditional writes', async () => {
    const db = new DynamoDBClient(services.dynamodb);
    const TableName = `t${Date.now()}`;
    await db.send(
      new CreateTableCommand({
        TableName,
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        AttributeDefinitions: [
          { AttributeName: 'pk', AttributeType: 'S' },
          { AttributeName: 'sk', AttributeType: 'S' },
        ],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    const Item = { pk: { S: 'tenant#alice' }, sk: { S: 'device#1' }, syncKey: { N: '1' } };
    await db.send(new PutItemCommand({ TableName, Item, ConditionExpression: 'attribute_not_exists(pk)' }));
    const got = await db.send(
      new GetItemCommand({ TableName, Key: { pk: Item.pk, sk: Item.sk }, ConsistentRead: true }),
    );
    expect(got.Item).toEqual(Item);
    await expect(
      db.send(new PutItemCommand({ TableName, Item, ConditionExpression: 'attribute_not_exists(pk)' })),
    ).rejects.toBeInstanceOf(ConditionalCheckFailedException);
    db.destroy();
  });
});
