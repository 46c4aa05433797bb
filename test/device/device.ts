/**
 * A scripted ActiveSync device: it speaks WBXML over HTTP to the app as a phone does, and keeps what a phone
 * keeps (sync keys, the folder list, the items of each collection), so tests can compare both sides.
 *
 * It follows the protocol, not our server: keys are opaque, ServerIds are whatever the server says, commands from
 * the server are applied as a phone applies them. `lose: true` drops a response, as a broken connection does: the
 * device keeps its old key and sends the same request again next time.
 */
import { buildApp } from '../../src/app/build.ts';
import { pooledImapSessions } from '../../src/backends/imap/sessions.ts';
import { loadConfig } from '../../src/config.ts';
import type { LogEntry } from '../../src/log.ts';
import { openSqliteStateStore } from '../../src/state/sqlite-node.ts';
import type { StateStore } from '../../src/state/types.ts';
import type { MailSubmitter } from '../../src/backends/smtp/types.ts';
import { FolderType } from '../../src/backends/types.ts';
import { decodeWbxml } from '../../src/wbxml/decoder.ts';
import { encodeWbxml } from '../../src/wbxml/encoder.ts';
import { child, children, childText, el, textOf, type WbxmlElement } from '../../src/wbxml/tree.ts';
import type { TestServices, TestUser } from '../services/types.ts';

export const WBXML = 'application/vnd.ms-sync.wbxml';

export interface TestServer {
  fetch(url: string, init?: RequestInit): Promise<Response>;
  state: StateStore;
  logs: LogEntry[];
}

/**
 * The app with the shipped commands, against the test Dovecot, with its own in-memory state store (or `options.state`,
 * to run two configurations over the same state).
 */
export function testServer(
  services: TestServices,
  env: Record<string, string> = {},
  options: { state?: StateStore; mailSubmitter?: MailSubmitter } = {},
): TestServer {
  const config = loadConfig({
    IMAP_HOST: services.imap.host,
    IMAP_PORT: String(services.imap.port),
    IMAP_SECURE: 'false',
    ...(services.smtp
      ? { SMTP_HOST: services.smtp.host, SMTP_PORT: String(services.smtp.port), SMTP_SECURE: 'false' }
      : {}),
    CALDAV_URL: services.caldavUrl,
    CARDDAV_URL: services.carddavUrl,
    TENANT: 'test',
    ...env,
  });
  const state = options.state ?? openSqliteStateStore(':memory:').store;
  const logs: LogEntry[] = [];
  const { mailSubmitter } = options;
  const { app } = buildApp({
    settings: config,
    state,
    imapSessions: (imap) => pooledImapSessions(imap),
    ...(mailSubmitter ? { submitter: () => mailSubmitter } : {}),
    log: (e) => logs.push(e),
  });
  return { fetch: async (url, init) => app.request(url, init), state, logs };
}

export interface DeviceResponse {
  status: number;
  headers: Headers;
  bytes: Uint8Array;
  /** The decoded body, when it was WBXML. */
  body: WbxmlElement | undefined;
}

export interface DeviceFolder {
  serverId: string;
  parentId: string;
  displayName: string;
  type: number;
}

export interface DeviceCollection {
  syncKey: string;
  /** ServerId → the ApplicationData the server sent (Adds, with Changes merged in). */
  items: Map<string, WbxmlElement>;
}

export interface SyncRound {
  response: DeviceResponse;
  collection: WbxmlElement | undefined;
  status: number | undefined;
  moreAvailable: boolean;
  added: string[];
  changed: string[];
  deleted: string[];
  softDeleted: string[];
  /** Responses/Add: ClientId → ServerId, with status. */
  addResponses: { clientId: string; serverId: string | undefined; status: number }[];
}

export interface SyncCollectionOptions {
  windowSize?: number;
  options?: WbxmlElement[];
  /** Options blocks sent before `options`, each with its airsync:Class (an SMS block, as Android clients send). */
  classOptions?: WbxmlElement[][];
  commands?: WbxmlElement[];
  deletesAsMoves?: boolean;
  getChanges?: boolean;
  /** airsync:ConversationMode in the Collection (14.0+, MS-ASCMD §2.2.3.36.2), before Options as Windows Mail puts it. */
  conversationMode?: boolean;
  /** Drop the response, as a broken connection would: keys and items stay as they were. */
  lose?: boolean;
  /**
   * Refuse the response after reading it, as a client that chokes on an item does: keys and items stay as they were.
   */
  reject?: (round: SyncRound) => boolean;
}

export interface ProvisionRound {
  /** The answer to the initial request (the policy document and the temporary key). */
  initial: DeviceResponse;
  /** The answer to the acknowledgement (the final key); undefined when the initial request did not give a key. */
  ack: DeviceResponse | undefined;
}

export class TestDevice {
  readonly folders = new Map<string, DeviceFolder>();
  readonly collections = new Map<string, DeviceCollection>();
  hierarchyKey = '0';
  /** The policy key the device sends in X-MS-PolicyKey (the final key of its last Provision). */
  policyKey: string | undefined;
  /** Provision before the first other command, as phones do; false to script provisioning (or its absence) by hand. */
  autoProvision = true;
  /** Where the device sends its requests (the Host decides the tenant, src/tenants/resolve.ts). */
  origin = 'https://eas.example.test';
  /** The Authorization header, when not the user's Basic credentials (e.g. `Bearer <token>`). */
  authorization: string | undefined;

  constructor(
    readonly server: TestServer,
    readonly user: TestUser,
    readonly deviceId = `DEV${Math.random().toString(36).slice(2, 10).toUpperCase()}`,
    readonly version = '14.1',
    readonly deviceType = 'iPhone',
  ) {}

  get scope(): { tenant: string; user: string; deviceId: string } {
    return { tenant: 'test', user: this.user.email.toLowerCase(), deviceId: this.deviceId };
  }

  /**
   * The two-phase Provision handshake (MS-ASPROV): the initial request (with settings:DeviceInformation from 14.1
   * on), then the acknowledgement of the temporary key with `ackStatus`. Keeps the final key for later requests.
   */
  async provision(o: { ackStatus?: string; deviceInformation?: boolean } = {}): Promise<ProvisionRound> {
    const withInformation = o.deviceInformation ?? ['14.1', '16.0', '16.1'].includes(this.version);
    const initial = await this.send(
      'Provision',
      el('Provision', 'Provision', [
        withInformation ? deviceInformation(this.deviceType) : undefined,
        el('Provision', 'Policies', [
          el('Provision', 'Policy', [el('Provision', 'PolicyType', 'MS-EAS-Provisioning-WBXML')]),
        ]),
      ]),
      { headers: { 'X-MS-PolicyKey': '0' } },
    );
    const temporary = childText(child(child(initial.body, 'Policies'), 'Policy'), 'PolicyKey');
    if (initial.status !== 200 || temporary === undefined) return { initial, ack: undefined };
    const ack = await this.send(
      'Provision',
      el('Provision', 'Provision', [
        el('Provision', 'Policies', [
          el('Provision', 'Policy', [
            el('Provision', 'PolicyType', 'MS-EAS-Provisioning-WBXML'),
            el('Provision', 'PolicyKey', temporary),
            el('Provision', 'Status', o.ackStatus ?? '1'),
          ]),
        ]),
      ]),
      { headers: { 'X-MS-PolicyKey': temporary } },
    );
    const policy = child(child(ack.body, 'Policies'), 'Policy');
    if (childText(ack.body, 'Status') === '1' && childText(policy, 'Status') === '1')
      this.policyKey = childText(policy, 'PolicyKey');
    return { initial, ack };
  }

  /** One request: the command, a body (tree or raw bytes), extra query parameters and headers. */
  async send(
    cmd: string,
    body?: WbxmlElement | Uint8Array,
    extra: { query?: string; headers?: Record<string, string> } = {},
  ): Promise<DeviceResponse> {
    if (this.autoProvision && this.policyKey === undefined && cmd.toLowerCase() !== 'provision') {
      await this.provision();
      if (this.policyKey === undefined) throw new Error('the device could not provision');
    }
    const url = `${this.origin}/Microsoft-Server-ActiveSync?Cmd=${cmd}&User=${encodeURIComponent(this.user.name)}&DeviceId=${this.deviceId}&DeviceType=${this.deviceType}${extra.query ?? ''}`;
    const bytes = body === undefined ? undefined : body instanceof Uint8Array ? body : encodeWbxml(body);
    const res = await this.server.fetch(url, {
      method: 'POST',
      body: bytes as BodyInit | undefined,
      headers: {
        Authorization:
          this.authorization ?? `Basic ${Buffer.from(`${this.user.email}:${this.user.password}`).toString('base64')}`,
        'MS-ASProtocolVersion': this.version,
        'Content-Type': WBXML,
        'User-Agent': 'TestDevice/1.0',
        ...(this.policyKey !== undefined ? { 'X-MS-PolicyKey': this.policyKey } : {}),
        ...extra.headers,
      },
    });
    const out = new Uint8Array(await res.arrayBuffer());
    const isWbxml = (res.headers.get('content-type') ?? '').startsWith(WBXML) && out.length > 0;
    return { status: res.status, headers: res.headers, bytes: out, body: isWbxml ? decodeWbxml(out) : undefined };
  }

  /** A request that must succeed with a WBXML body. */
  async command(cmd: string, body?: WbxmlElement): Promise<WbxmlElement> {
    const res = await this.send(cmd, body);
    if (res.status !== 200 || !res.body)
      throw new Error(`${cmd} answered HTTP ${res.status} with ${res.bytes.length} bytes`);
    return res.body;
  }

  /** FolderSync from the device's key, applying the changes to its folder list. */
  async folderSync(options: { lose?: boolean } = {}): Promise<WbxmlElement> {
    const body = await this.command(
      'FolderSync',
      el('FolderHierarchy', 'FolderSync', [el('FolderHierarchy', 'SyncKey', this.hierarchyKey)]),
    );
    if (options.lose || childText(body, 'Status') !== '1') return body;
    if (this.hierarchyKey === '0') this.folders.clear();
    this.hierarchyKey = childText(body, 'SyncKey') ?? this.hierarchyKey;
    const changes = child(body, 'Changes');
    for (const c of changes?.children ?? []) {
      const serverId = childText(c, 'ServerId')!;
      if (c.tag === 'Delete') this.folders.delete(serverId);
      else if (c.tag === 'Add' || c.tag === 'Update') {
        this.folders.set(serverId, {
          serverId,
          parentId: childText(c, 'ParentId')!,
          displayName: childText(c, 'DisplayName')!,
          type: Number(childText(c, 'Type')),
        });
      }
    }
    return body;
  }

  folderByType(type: number): DeviceFolder {
    const found = [...this.folders.values()].find((f) => f.type === type);
    if (!found) throw new Error(`the device has no folder of type ${type}`);
    return found;
  }

  folderByName(displayName: string): DeviceFolder {
    const found = [...this.folders.values()].find((f) => f.displayName === displayName);
    if (!found) throw new Error(`the device has no folder ${displayName}`);
    return found;
  }

  /** One Sync round for one collection; SyncKey 0 first if the device has none. */
  async sync(collectionId: string, o: SyncCollectionOptions = {}): Promise<SyncRound> {
    const known = this.collections.get(collectionId) ?? { syncKey: '0', items: new Map<string, WbxmlElement>() };
    const collection = el('AirSync', 'Collection', [
      el('AirSync', 'SyncKey', known.syncKey),
      el('AirSync', 'CollectionId', collectionId),
      o.deletesAsMoves === false ? el('AirSync', 'DeletesAsMoves', '0') : undefined,
      known.syncKey !== '0' && o.getChanges !== false ? el('AirSync', 'GetChanges', '1') : undefined,
      o.windowSize !== undefined ? el('AirSync', 'WindowSize', String(o.windowSize)) : undefined,
      o.conversationMode !== undefined ? el('AirSync', 'ConversationMode', o.conversationMode ? '1' : '0') : undefined,
      ...(o.classOptions ?? []).map((block) => el('AirSync', 'Options', block)),
      o.options ? el('AirSync', 'Options', o.options) : undefined,
      o.commands?.length ? el('AirSync', 'Commands', o.commands) : undefined,
    ]);
    const response = await this.send('Sync', el('AirSync', 'Sync', [el('AirSync', 'Collections', [collection])]));
    const round = readSyncRound(response, collectionId);
    if (o.lose || round.status !== 1 || o.reject?.(round)) return round;

    known.syncKey = childText(round.collection, 'SyncKey') ?? known.syncKey;
    for (const c of child(round.collection, 'Commands')?.children ?? []) {
      const serverId = childText(c, 'ServerId')!;
      const data = child(c, 'ApplicationData');
      if (c.tag === 'Add' && data) known.items.set(serverId, data);
      else if (c.tag === 'Change' && data)
        known.items.set(serverId, mergeApplicationData(known.items.get(serverId), data));
      else if (c.tag === 'Delete' || c.tag === 'SoftDelete') known.items.delete(serverId);
    }
    for (const a of round.addResponses)
      if (a.serverId && a.status === 1) known.items.set(a.serverId, el('AirSync', 'ApplicationData', []));
    // What the device deleted itself is gone from it, whatever the server answers.
    // (A 16.x Delete with InstanceId removes one occurrence: the series stays.)
    for (const c of o.commands ?? [])
      if (c.tag === 'Delete' && childText(c, 'InstanceId', 'AirSyncBase') === undefined)
        known.items.delete(childText(c, 'ServerId') ?? '');
    this.collections.set(collectionId, known);
    return round;
  }

  /** Sync rounds until the server has nothing more (MoreAvailable absent); returns every round. */
  async syncUntilDone(
    collectionId: string,
    o: Omit<SyncCollectionOptions, 'commands' | 'lose'> = {},
    maxRounds = 10_000,
  ): Promise<SyncRound[]> {
    const rounds: SyncRound[] = [];
    if ((this.collections.get(collectionId)?.syncKey ?? '0') === '0') rounds.push(await this.sync(collectionId, o));
    for (let i = 0; i < maxRounds; i++) {
      const round = await this.sync(collectionId, o);
      rounds.push(round);
      if (round.status !== 1) throw new Error(`Sync of ${collectionId} answered Status ${round.status}`);
      if (!round.moreAvailable) return rounds;
    }
    throw new Error(`Sync of ${collectionId} did not finish in ${maxRounds} rounds`);
  }

  items(collectionId: string): Map<string, WbxmlElement> {
    return this.collections.get(collectionId)?.items ?? new Map();
  }
}

/** What a phone says about itself in its first Provision (14.1+) or in Settings. */
export function deviceInformation(deviceType: string): WbxmlElement {
  return el('Settings', 'DeviceInformation', [
    el('Settings', 'Set', [
      el('Settings', 'Model', `${deviceType} Test`),
      el('Settings', 'FriendlyName', 'Scripted test device'),
      el('Settings', 'OS', 'TestOS 1.0'),
      el('Settings', 'OSLanguage', 'en'),
      el('Settings', 'UserAgent', 'TestDevice/1.0'),
    ]),
  ]);
}

function readSyncRound(response: DeviceResponse, collectionId: string): SyncRound {
  const collection = children(child(response.body, 'Collections'), 'Collection').find(
    (c) => childText(c, 'CollectionId') === collectionId,
  );
  const statusText = childText(collection, 'Status') ?? childText(response.body, 'Status');
  const commands = child(collection, 'Commands')?.children ?? [];
  const ids = (tag: string): string[] => commands.filter((c) => c.tag === tag).map((c) => childText(c, 'ServerId')!);
  return {
    response,
    collection,
    status: statusText === undefined ? undefined : Number(statusText),
    moreAvailable: child(collection, 'MoreAvailable') !== undefined,
    added: ids('Add'),
    changed: ids('Change'),
    deleted: ids('Delete'),
    softDeleted: ids('SoftDelete'),
    addResponses: children(child(collection, 'Responses'), 'Add').map((a) => ({
      clientId: childText(a, 'ClientId')!,
      serverId: childText(a, 'ServerId'),
      status: Number(childText(a, 'Status')),
    })),
  };
}

/** A Change replaces the properties it carries and keeps the rest, as a phone does for Email. */
function mergeApplicationData(before: WbxmlElement | undefined, change: WbxmlElement): WbxmlElement {
  const kept = (before?.children ?? []).filter((c) => !change.children.some((n) => n.tag === c.tag && n.ns === c.ns));
  return { ...change, children: [...kept, ...change.children] };
}

/** The text of an item property, e.g. itemText(data, 'Subject', 'Email'). */
export function itemText(data: WbxmlElement | undefined, tag: string, ns: WbxmlElement['ns']): string | undefined {
  const found = data?.children.find((c) => c.tag === tag && c.ns === ns);
  return found ? textOf(found) : undefined;
}

/** A new device of `user` that has done its first FolderSync, and its Inbox's ServerId. */
export async function readyDevice(server: TestServer, user: TestUser): Promise<{ device: TestDevice; inbox: string }> {
  const device = new TestDevice(server, user);
  await device.folderSync();
  return { device, inbox: device.folderByType(FolderType.Inbox).serverId };
}

/** The sorted Subjects of the items the device has in a collection. */
export function subjects(device: TestDevice, collectionId: string): string[] {
  return [...device.items(collectionId).values()].map((d) => itemText(d, 'Subject', 'Email') ?? '').sort();
}
