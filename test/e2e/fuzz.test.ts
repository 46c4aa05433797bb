/**
 * Property-based fuzzing of whole requests through the app (issue 10 item 3): the real HTTP framing, WBXML decoder,
 * command handlers, the test Dovecot and Radicale, and SMTP into a local sink. One provisioned device of one user
 * sends every command with random and mutated WBXML bodies, random base64 query strings, random headers and random
 * trees of each command's own tags. Whatever arrives, the answer is a protocol answer: never HTTP 500, and no
 * promise rejected without a handler. More than 100,000 cases per run; most are refused before IMAP is touched.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { FolderType } from '../../src/backends/types.ts';
import { COMMAND_CODES } from '../../src/protocol/commands.ts';
import { CODE_PAGES, type Namespace } from '../../src/wbxml/codepages.ts';
import { encodeWbxml } from '../../src/wbxml/encoder.ts';
import { el, type WbxmlElement } from '../../src/wbxml/tree.ts';
import { TestDevice, testServer, WBXML, type TestServer } from '../device/device.ts';
import { createUser, seedMailbox } from '../services/seed.ts';
import { startSmtpSink, type SmtpSink } from '../services/smtp-sink.ts';
import type { TestUser } from '../services/types.ts';

const services = inject('services');
const ORIGIN = 'https://eas.example.test';
const COMMANDS = Object.keys(COMMAND_CODES);
/** FUZZ_SCALE=0.1 for a quick local run; the suite runs the full count. */
const SCALE = Number(process.env.FUZZ_SCALE ?? 1);
const VERSIONS = ['2.5', '12.0', '12.1', '14.0', '14.1', '16.0', '16.1'];

let server: TestServer;
let user: TestUser;
let device: TestDevice;
let sink: SmtpSink;
let inbox = '1';
let calendar = '2';
/** Every request sent, every HTTP 500 seen (with what caused it), every unhandled rejection. */
let cases = 0;
/** HTTP status → answers, for the property running now. */
const STATUSES = new Map<number, number>();
const failures: string[] = [];
const rejections: unknown[] = [];
const onRejection = (reason: unknown): void => {
  rejections.push(reason);
};

beforeAll(async () => {
  process.on('unhandledRejection', onRejection);
  // Mail the fuzzer composes goes to a sink, never anywhere else.
  sink = await startSmtpSink({ tls: 'none' });
  server = testServer(services, {
    SMTP_HOST: '127.0.0.1',
    SMTP_PORT: String(sink.port),
    SMTP_SECURE: 'false',
    SMTP_AUTH: 'none',
    // Pings and hanging Syncs that happen to be valid end within a second.
    PING_MIN_HEARTBEAT: '1',
    PING_MAX_HEARTBEAT: '1',
    PING_POLL_SECONDS: '0.1',
    MAX_REQUEST_BYTES: '65536',
    // Random Authorization headers must not lock the fuzzing user out (throttling has its own test).
    AUTH_FAIL_LIMIT: '0',
    AUTH_FAIL_IP_LIMIT: '0',
  });
  user = createUser(services);
  await seedMailbox(services, user, 'INBOX', [
    {
      message: {
        from: 'Bob <bob@example.test>',
        to: user.email,
        subject: 'Fuzz target',
        text: 'Body.\n',
        attachments: [{ filename: 'a.bin', contentType: 'application/octet-stream', content: Buffer.alloc(300, 7) }],
      },
    },
  ]);
  device = new TestDevice(server, user, 'FUZZDEVICE0001');
  await device.folderSync();
  inbox = device.folderByType(FolderType.Inbox).serverId;
  calendar = [...device.folders.values()].find((f) => f.type === FolderType.Calendar)?.serverId ?? calendar;
  await device.syncUntilDone(inbox);
}, 60_000);

afterAll(async () => {
  process.off('unhandledRejection', onRejection);
  await sink?.close();
});

function authorization(): string {
  return `Basic ${Buffer.from(`${user.email}:${user.password}`).toString('base64')}`;
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  return {
    Authorization: authorization(),
    'MS-ASProtocolVersion': '14.1',
    'Content-Type': WBXML,
    'X-MS-PolicyKey': device.policyKey ?? '0',
    ...extra,
  };
}

/** Sends one request; an HTTP 500 is recorded with what caused it (the property then fails on it). */
async function hit(what: string, url: string, init: RequestInit): Promise<number> {
  cases += 1;
  const res = await server.fetch(url, init);
  await res.arrayBuffer();
  STATUSES.set(res.status, (STATUSES.get(res.status) ?? 0) + 1);
  if (res.status >= 500 && res.status !== 501 && res.status !== 503) failures.push(`${res.status} ${what}`);
  return res.status;
}

function post(
  cmd: string,
  body: Uint8Array | undefined,
  extra: Record<string, string> = {},
  query = '',
): Promise<number> {
  const url = `${ORIGIN}/Microsoft-Server-ActiveSync?Cmd=${encodeURIComponent(cmd)}&User=${encodeURIComponent(user.name)}&DeviceId=FUZZDEVICE0001&DeviceType=iPhone${query}`;
  return hit(`${cmd} ${query} ${body ? Buffer.from(body).toString('hex').slice(0, 400) : ''}`, url, {
    method: 'POST',
    headers: headers(extra),
    body: body as BodyInit | undefined,
  });
}

/** Properties are asserted without shrinking: a failure is reported with its input by `hit`, and runs stay fast. */
/** Runs the property; returns how many answers had each HTTP status. */
async function check<T>(
  arb: fc.Arbitrary<T>,
  numRuns: number,
  run: (value: T) => Promise<unknown>,
): Promise<Map<number, number>> {
  const before = failures.length;
  await fc.assert(
    fc.asyncProperty(arb, async (value) => {
      await run(value);
    }),
    { numRuns: Math.ceil(numRuns * SCALE), endOnFailure: true },
  );
  expect(failures.slice(before)).toEqual([]);
  const seen = new Map(STATUSES);
  STATUSES.clear();
  return seen;
}

// A valid request body of each command: the seeds that mutations start from.
function seeds(): Record<string, WbxmlElement> {
  return {
    Sync: el('AirSync', 'Sync', [
      el('AirSync', 'Collections', [
        el('AirSync', 'Collection', [
          el('AirSync', 'SyncKey', device.collections.get(inbox)?.syncKey ?? '0'),
          el('AirSync', 'CollectionId', inbox),
          el('AirSync', 'GetChanges', '1'),
          el('AirSync', 'WindowSize', '5'),
          el('AirSync', 'Options', [
            el('AirSync', 'FilterType', '0'),
            el('AirSyncBase', 'BodyPreference', [
              el('AirSyncBase', 'Type', '2'),
              el('AirSyncBase', 'TruncationSize', '500'),
            ]),
          ]),
        ]),
      ]),
    ]),
    FolderSync: el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', device.hierarchyKey)]),
    FolderCreate: el('FolderHierarchy', 'FolderCreate', [
      el('FolderHierarchy', 'SyncKey', device.hierarchyKey),
      el('FolderHierarchy', 'ParentId', '0'),
      el('FolderHierarchy', 'DisplayName', 'Fuzz'),
      el('FolderHierarchy', 'Type', '12'),
    ]),
    FolderUpdate: el('FolderHierarchy', 'FolderUpdate', [
      el('FolderHierarchy', 'SyncKey', device.hierarchyKey),
      el('FolderHierarchy', 'ServerId', inbox),
      el('FolderHierarchy', 'ParentId', '0'),
      el('FolderHierarchy', 'DisplayName', 'X'),
    ]),
    FolderDelete: el('FolderHierarchy', 'FolderDelete', [
      el('FolderHierarchy', 'SyncKey', device.hierarchyKey),
      el('FolderHierarchy', 'ServerId', 'nope'),
    ]),
    GetItemEstimate: el('GetItemEstimate', 'GetItemEstimate', [
      el('GetItemEstimate', 'Collections', [
        el('GetItemEstimate', 'Collection', [
          el('AirSync', 'SyncKey', '1'),
          el('GetItemEstimate', 'CollectionId', inbox),
        ]),
      ]),
    ]),
    MoveItems: el('Move', 'MoveItems', [
      el('Move', 'Move', [
        el('Move', 'SrcMsgId', `${inbox}:1`),
        el('Move', 'SrcFldId', inbox),
        el('Move', 'DstFldId', inbox),
      ]),
    ]),
    Ping: el('Ping', 'Ping', [
      el('Ping', 'HeartbeatInterval', '1'),
      el('Ping', 'Folders', [el('Ping', 'Folder', [el('Ping', 'Id', inbox), el('Ping', 'Class', 'Email')])]),
    ]),
    ItemOperations: el('ItemOperations', 'ItemOperations', [
      el('ItemOperations', 'Fetch', [
        el('ItemOperations', 'Store', 'Mailbox'),
        el('AirSyncBase', 'FileReference', `${inbox}:1:0`),
        el('ItemOperations', 'Options', [el('ItemOperations', 'Range', '0-9')]),
      ]),
    ]),
    Search: el('Search', 'Search', [
      el('Search', 'Store', [
        el('Search', 'Name', 'Mailbox'),
        el('Search', 'Query', [
          el('Search', 'And', [
            el('AirSync', 'Class', 'Email'),
            el('AirSync', 'CollectionId', inbox),
            el('Search', 'FreeText', 'Fuzz'),
          ]),
        ]),
        el('Search', 'Options', [el('Search', 'Range', '0-4')]),
      ]),
    ]),
    Settings: el('Settings', 'Settings', [
      el('Settings', 'UserInformation', [el('Settings', 'Get')]),
      el('Settings', 'Oof', [el('Settings', 'Get', [el('Settings', 'BodyType', 'Text')])]),
    ]),
    Provision: el('Provision', 'Provision', [
      el('Provision', 'Policies', [
        el('Provision', 'Policy', [el('Provision', 'PolicyType', 'MS-EAS-Provisioning-WBXML')]),
      ]),
    ]),
    ResolveRecipients: el('ResolveRecipients', 'ResolveRecipients', [
      el('ResolveRecipients', 'To', 'bob@example.test'),
      el('ResolveRecipients', 'Options', [el('ResolveRecipients', 'MaxAmbiguousRecipients', '2')]),
    ]),
    MeetingResponse: el('MeetingResponse', 'MeetingResponse', [
      el('MeetingResponse', 'Request', [
        el('MeetingResponse', 'UserResponse', '1'),
        el('MeetingResponse', 'CollectionId', inbox),
        el('MeetingResponse', 'RequestId', `${inbox}:1`),
      ]),
    ]),
    SendMail: el('ComposeMail', 'SendMail', [
      el('ComposeMail', 'ClientId', 'fuzz-1'),
      el('ComposeMail', 'SaveInSentItems'),
      el('ComposeMail', 'Mime', `From: ${'x'}@example.test\r\nTo: sink@example.test\r\nSubject: fuzz\r\n\r\nbody\r\n`),
    ]),
    SmartReply: el('ComposeMail', 'SmartReply', [
      el('ComposeMail', 'ClientId', 'fuzz-2'),
      el('ComposeMail', 'Source', [el('ComposeMail', 'FolderId', inbox), el('ComposeMail', 'ItemId', `${inbox}:1`)]),
      el('ComposeMail', 'Mime', 'To: sink@example.test\r\nSubject: re\r\n\r\nreply\r\n'),
    ]),
    SmartForward: el('ComposeMail', 'SmartForward', [
      el('ComposeMail', 'ClientId', 'fuzz-3'),
      el('ComposeMail', 'Source', [el('ComposeMail', 'FolderId', inbox), el('ComposeMail', 'ItemId', `${inbox}:1`)]),
      el('ComposeMail', 'Mime', 'To: sink@example.test\r\nSubject: fw\r\n\r\nfwd\r\n'),
    ]),
    ValidateCert: el('ValidateCert', 'ValidateCert', [
      el('ValidateCert', 'Certificates', [el('ValidateCert', 'Certificate', 'AAAA')]),
    ]),
    Find: el('Find', 'Find', [
      el('Find', 'SearchId', 'x'),
      el('Find', 'ExecuteSearch', [
        el('Find', 'MailBoxSearchCriterion', [
          el('Find', 'Query', [el('AirSync', 'Class', 'Email'), el('Find', 'FreeText', 'Fuzz')]),
          el('Find', 'Options', [el('Find', 'Range', '0-4')]),
        ]),
      ]),
    ]),
  };
}

/** The namespaces whose tags a command's body may hold. */
const NAMESPACES: Record<string, Namespace[]> = {
  Sync: ['AirSync', 'AirSyncBase', 'Email', 'Email2', 'Calendar', 'Contacts', 'Tasks', 'Notes'],
  FolderSync: ['FolderHierarchy'],
  FolderCreate: ['FolderHierarchy'],
  FolderUpdate: ['FolderHierarchy'],
  FolderDelete: ['FolderHierarchy'],
  GetItemEstimate: ['GetItemEstimate', 'AirSync'],
  MoveItems: ['Move'],
  Ping: ['Ping'],
  ItemOperations: ['ItemOperations', 'AirSync', 'AirSyncBase', 'DocumentLibrary', 'Search'],
  Search: ['Search', 'AirSync', 'AirSyncBase', 'Gal'],
  Settings: ['Settings'],
  Provision: ['Provision', 'Settings'],
  ResolveRecipients: ['ResolveRecipients'],
  MeetingResponse: ['MeetingResponse', 'Search'],
  SendMail: ['ComposeMail'],
  SmartReply: ['ComposeMail'],
  SmartForward: ['ComposeMail'],
  ValidateCert: ['ValidateCert'],
  Find: ['Find', 'AirSync', 'AirSyncBase'],
};

const tagsOf = (namespaces: Namespace[]): { ns: Namespace; tag: string }[] =>
  CODE_PAGES.filter((p) => namespaces.includes(p.namespace as Namespace)).flatMap((p) =>
    Object.values(p.tags).map((tag: string) => ({ ns: p.namespace as Namespace, tag })),
  );

/** Values a device could send where ids, keys, numbers, dates and addresses go: the ordinary and the hostile. */
function valueArb(): fc.Arbitrary<string> {
  return fc.oneof(
    fc.constantFrom(
      '0',
      '1',
      '2',
      '-1',
      '4294967296',
      '99999999999999999999999',
      '1e400',
      'NaN',
      '',
      inbox,
      `${inbox}:1`,
      `${inbox}:999999`,
      `${inbox}:1:0`,
      `${inbox}:1:99`,
      calendar,
      `${calendar}:x`,
      '../../../../etc/passwd',
      `${inbox}/../Sent`,
      '..%2F..%2Fetc',
      '%00',
      '\u0000',
      '1:1:../../x',
      '0-4294967295',
      '9999999999-1',
      '5-2',
      '0-0',
      'Mailbox',
      'GAL',
      'DocumentLibrary',
      'Email',
      'Calendar',
      'Contacts',
      'Tasks',
      '2026-01-01T00:00:00.000Z',
      '20260101T000000Z',
      'not a date',
      'a@example.test',
      'x\r\nBcc: leak@example.test',
      'MS-EAS-Provisioning-WBXML',
      'A'.repeat(3000),
      '{{}}',
      '<![CDATA[x]]>',
    ),
    fc.string({ maxLength: 30 }),
    fc.integer({ min: -5, max: 2_000_000_000 }).map(String),
  );
}

function treeArb(command: string): fc.Arbitrary<WbxmlElement> {
  const tags = fc.constantFrom(...tagsOf(NAMESPACES[command] ?? ['AirSync']));
  const node: fc.Arbitrary<WbxmlElement> = fc.letrec<{ node: WbxmlElement }>((tie) => ({
    node: fc.oneof(
      { depthSize: 'small', maxDepth: 5 },
      fc.tuple(tags, valueArb()).map(([t, text]) => ({ ...t, children: [], text })),
      fc.tuple(tags, fc.array(tie('node'), { maxLength: 4 })).map(([t, children]) => ({ ...t, children })),
    ),
  })).node;
  const root = seeds()[command]!;
  return fc.array(node, { maxLength: 5 }).map((children) => ({ ns: root.ns, tag: root.tag, children }));
}

/** A valid body with bytes flipped, cut, inserted or repeated. */
function mutatedArb(body: Uint8Array): fc.Arbitrary<Uint8Array> {
  const at = fc.nat({ max: Math.max(0, body.length - 1) });
  return fc.oneof(
    fc.tuple(at, fc.integer({ min: 0, max: 255 })).map(([i, b]) => {
      const out = Uint8Array.from(body);
      out[i] = b;
      return out;
    }),
    at.map((i) => body.subarray(0, i)),
    fc
      .tuple(at, fc.uint8Array({ minLength: 1, maxLength: 8 }))
      .map(([i, bytes]) => Uint8Array.from([...body.subarray(0, i), ...bytes, ...body.subarray(i)])),
    fc
      .tuple(at, at)
      .map(([i, j]) => Uint8Array.from([...body.subarray(0, Math.max(i, j)), ...body.subarray(Math.min(i, j))])),
    fc.array(fc.tuple(at, fc.integer({ min: 0, max: 255 })), { minLength: 2, maxLength: 6 }).map((edits) => {
      const out = Uint8Array.from(body);
      for (const [i, b] of edits) out[i] = b;
      return out;
    }),
  );
}

describe('fuzzing whole requests', () => {
  it('random bytes as the body of every command (and of unknown ones): never a 500', async () => {
    await check(
      fc.tuple(fc.constantFrom(...COMMANDS, 'Nope', ''), fc.uint8Array({ minLength: 1, maxLength: 120 })),
      25_000,
      ([cmd, body]) => post(cmd, body),
    );
  }, 600_000);

  it('WBXML-shaped random bytes (a valid header, random tokens) for every command', async () => {
    const header = [3, 1, 106, 0];
    await check(fc.tuple(fc.constantFrom(...COMMANDS), fc.uint8Array({ maxLength: 80 })), 25_000, ([cmd, tail]) =>
      post(cmd, Uint8Array.from([...header, ...tail])),
    );
  }, 600_000);

  it('mutations of a valid body of each command', async () => {
    const bodies = Object.entries(seeds()).map(([cmd, tree]) => [cmd, encodeWbxml(tree)] as const);
    const arb = fc
      .constantFrom(...bodies)
      .chain(([cmd, body]) => mutatedArb(body).map((mutated) => [cmd, mutated] as const));
    const statuses = await check(arb, 25_000, ([cmd, body]) => post(cmd, body));
    // Some mutations still decode and reach the handlers.
    expect(statuses.get(200) ?? 0).toBeGreaterThan(0);
  }, 600_000);

  it('random base64 query strings, raw and with a valid prefix', async () => {
    const prefix = Uint8Array.from([
      141,
      9,
      9,
      4,
      16,
      ...Buffer.from('FUZZDEVICE000001'),
      4,
      1,
      2,
      3,
      4,
      6,
      ...Buffer.from('iPhone'),
    ]);
    const raw = fc.uint8Array({ minLength: 1, maxLength: 60 });
    const structured = fc
      .tuple(fc.constantFrom(...Object.values(COMMAND_CODES), 24, 200), fc.uint8Array({ maxLength: 40 }))
      .map(([code, tail]) => {
        const out = Uint8Array.from([...prefix, ...tail]);
        out[1] = code;
        return out;
      });
    await check(
      fc.tuple(fc.oneof(raw, structured), fc.option(fc.uint8Array({ maxLength: 40 }), { nil: undefined })),
      15_000,
      ([query, body]) =>
        hit(
          `base64 ${Buffer.from(query).toString('hex')}`,
          `${ORIGIN}/Microsoft-Server-ActiveSync?${Buffer.from(query).toString('base64')}`,
          {
            method: 'POST',
            headers: {
              Authorization: authorization(),
              'Content-Type': WBXML,
              'X-MS-PolicyKey': device.policyKey ?? '0',
            },
            body: body as BodyInit | undefined,
          },
        ),
    );
  }, 600_000);

  it('random headers and query parameters', async () => {
    const text = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.constantFrom('', ' ', '14.1', '16.1', '2.5', '0', '4294967296', 'T', 'F', 'message/rfc822', 'gzip', 'x\ty'),
    );
    const headerValue = text.map((s) => s.replace(/[\r\n\0]/g, ''));
    const arb = fc.record({
      cmd: fc.constantFrom(...COMMANDS),
      version: fc.oneof(fc.constantFrom(...VERSIONS), headerValue),
      policyKey: headerValue,
      contentType: fc.oneof(
        fc.constantFrom(WBXML, 'message/rfc822', 'text/plain', 'application/vnd.ms-sync.wbxml; charset=x'),
        headerValue,
      ),
      multipart: headerValue,
      userAgent: headerValue,
      query: fc.array(
        fc.tuple(
          fc.constantFrom(
            'CollectionId',
            'ItemId',
            'LongId',
            'AttachmentName',
            'Occurrence',
            'SaveInSent',
            'Cmd',
            'DeviceId',
            'User',
            'x',
          ),
          fc.oneof(text, valueArb()),
        ),
        { maxLength: 4 },
      ),
      body: fc.option(
        fc.constantFrom(...Object.values(seeds())).map((t) => encodeWbxml(t)),
        { nil: undefined },
      ),
    });
    await check(arb, 15_000, (r) =>
      post(
        r.cmd,
        r.body,
        {
          'MS-ASProtocolVersion': r.version,
          'X-MS-PolicyKey': r.policyKey,
          'Content-Type': r.contentType,
          'MS-ASAcceptMultiPart': r.multipart,
          'User-Agent': r.userAgent,
        },
        r.query.map(([k, v]) => `&${k}=${encodeURIComponent(v)}`).join(''),
      ),
    );
  }, 600_000);

  it('random trees of each command’s own tags, with hostile ids, ranges and values (these reach the handlers and IMAP)', async () => {
    const commands = Object.keys(seeds());
    const arb = fc.constantFrom(...commands).chain((cmd) => treeArb(cmd).map((tree) => [cmd, tree] as const));
    const statuses = await check(arb, 5_000, ([cmd, tree]) => post(cmd, encodeWbxml(tree)));
    // Most of these pass the framing and are answered by the command itself (with a Status inside a 200).
    expect(statuses.get(200) ?? 0).toBeGreaterThan(Math.ceil(5_000 * SCALE) * 0.5);
  }, 600_000);

  it('random Authorization headers and Autodiscover bodies', async () => {
    const auth = fc.oneof(
      fc.string({ maxLength: 60 }).map((s) => s.replace(/[\r\n\0]/g, '')),
      fc.uint8Array({ maxLength: 40 }).map((b) => `Basic ${Buffer.from(b).toString('base64')}`),
      fc.string({ maxLength: 40 }).map((s) => `Bearer ${Buffer.from(s).toString('base64url')}`),
    );
    await check(auth, 300, (a) => post('FolderSync', encodeWbxml(seeds().FolderSync!), { Authorization: a }));
    const xml = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc
        .tuple(fc.string({ maxLength: 40 }), fc.string({ maxLength: 40 }))
        .map(
          ([email, schema]) =>
            `<?xml version="1.0"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006"><Request><EMailAddress>${email}</EMailAddress><AcceptableResponseSchema>${schema}</AcceptableResponseSchema></Request></Autodiscover>`,
        ),
    );
    await check(xml, 4_000, (body) =>
      hit(`autodiscover ${body.slice(0, 200)}`, `${ORIGIN}/autodiscover/autodiscover.xml`, {
        method: 'POST',
        headers: { Authorization: authorization(), 'Content-Type': 'text/xml' },
        body,
      }),
    );
  }, 600_000);

  it('made more than 100,000 requests, with no HTTP 500 and no unhandled rejection', () => {
    expect(cases).toBeGreaterThanOrEqual(100_000 * SCALE);
    expect(failures).toEqual([]);
    expect(server.logs.filter((e) => e.http === 500)).toEqual([]);
    expect(rejections).toEqual([]);
  });
});
