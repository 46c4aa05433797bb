import { describe, expect, it } from 'vitest';
import { decodeWbxml } from '../wbxml/decoder.ts';
import { encodeWbxml } from '../wbxml/encoder.ts';
import { childText, el, type WbxmlElement } from '../wbxml/tree.ts';
import { fromXml, toXml } from '../wbxml/xml.ts';
import { ReplayMap } from './mapping.ts';
import { rewriteQuery } from './query.ts';
import { compareWithCaptured, compareWithExpected, statusesOf } from './verdict.ts';

const folderSync = (key: string, folders: [string, number, string][]): WbxmlElement =>
  el('FolderHierarchy', 'FolderSync', [
    el('FolderHierarchy', 'Status', '1'),
    el('FolderHierarchy', 'SyncKey', key),
    el(
      'FolderHierarchy',
      'Changes',
      folders.map(([id, type, name]) =>
        el('FolderHierarchy', 'Add', [
          el('FolderHierarchy', 'ServerId', id),
          el('FolderHierarchy', 'ParentId', '0'),
          el('FolderHierarchy', 'DisplayName', name),
          el('FolderHierarchy', 'Type', String(type)),
        ]),
      ),
    ),
  ]);

const syncAnswer = (collection: string, key: string, adds: [string, string[]][]): WbxmlElement =>
  el('AirSync', 'Sync', [
    el('AirSync', 'Collections', [
      el('AirSync', 'Collection', [
        el('AirSync', 'SyncKey', key),
        el('AirSync', 'CollectionId', collection),
        el('AirSync', 'Status', '1'),
        el(
          'AirSync',
          'Commands',
          adds.map(([id, refs]) =>
            el('AirSync', 'Add', [
              el('AirSync', 'ServerId', id),
              el('AirSync', 'ApplicationData', [
                el(
                  'AirSyncBase',
                  'Attachments',
                  refs.map((r) => el('AirSyncBase', 'Attachment', [el('AirSyncBase', 'FileReference', r)])),
                ),
              ]),
            ]),
          ),
        ),
      ]),
    ]),
  ]);

const syncRequest = (collection: string, key: string, commands: WbxmlElement[] = []): WbxmlElement =>
  el('AirSync', 'Sync', [
    el('AirSync', 'Collections', [
      el('AirSync', 'Collection', [
        el('AirSync', 'SyncKey', key),
        el('AirSync', 'CollectionId', collection),
        commands.length > 0 && el('AirSync', 'Commands', commands),
      ]),
    ]),
  ]);

describe('ReplayMap', () => {
  it('maps folders by type and name, keys per collection, items and attachments by order', () => {
    const map = new ReplayMap();
    map.learn(
      'FolderSync',
      undefined,
      folderSync('H1', [
        ['10', 2, 'Inbox'],
        ['11', 12, 'Projects'],
      ]),
      folderSync('{live}1', [
        ['a', 12, 'projects'],
        ['b', 2, 'Posteingang'],
      ]),
    );
    expect(map.folder('10')).toBe('b'); // Inbox by its type
    expect(map.folder('11')).toBe('a'); // a user folder by its name
    expect(map.folder('0')).toBe('0');
    expect(map.syncKey('H1', undefined)).toBe('{live}1');

    map.learn('Sync', syncRequest('10', '0'), syncAnswer('10', 'K1', []), syncAnswer('b', 'L1', []));
    map.learn(
      'Sync',
      syncRequest('10', 'K1'),
      syncAnswer('10', 'K2', [
        ['10:1', ['10:1:0']],
        ['10:2', []],
      ]),
      syncAnswer('b', 'L2', [
        ['b:7', ['att-7-0']],
        ['b:8', []],
      ]),
    );
    const rewritten = map.rewriteRequest(
      syncRequest('10', 'K1', [
        el('AirSync', 'Change', [el('AirSync', 'ServerId', '10:2')]),
        el('AirSync', 'Fetch', [el('AirSync', 'ServerId', '10:1')]),
      ]),
    );
    // A key the device sends again (it lost the answer) is the same live key again.
    expect(toXml(rewritten, { declaration: false, indent: '' })).toBe(
      toXml(
        syncRequest('b', 'L1', [
          el('AirSync', 'Change', [el('AirSync', 'ServerId', 'b:8')]),
          el('AirSync', 'Fetch', [el('AirSync', 'ServerId', 'b:7')]),
        ]),
        { declaration: false, indent: '' },
      ),
    );
    expect(map.syncKey('K2', '10')).toBe('L2');
    expect(map.syncKey('0', '10')).toBe('0');
    expect(map.fileReference('10:1:0')).toBe('att-7-0');
  });

  it('guesses what no captured answer gave (corpus sessions): the latest key, the next item, the folder hint', () => {
    const map = new ReplayMap({ '5': { type: 2, name: 'Inbox' } });
    map.learn('FolderSync', undefined, undefined, folderSync('F1', [['1', 2, 'Inbox']]));
    map.learn('Sync', syncRequest('5', '0'), undefined, syncAnswer('1', 'S1', []));
    map.learn(
      'Sync',
      syncRequest('5', 'X'),
      undefined,
      syncAnswer('1', 'S2', [
        ['1:1', ['r1']],
        ['1:2', []],
      ]),
    );
    expect(map.folder('5')).toBe('1');
    expect(map.syncKey('{published-key}', '5')).toBe('S2');
    expect(map.item('5:99', '5')).toBe('1:1');
    expect(map.item('5:42', '5')).toBe('1:2');
    expect(map.item('5:99', '5')).toBe('1:1');
    expect(map.item('5:43', '5')).toBe('5:43'); // none left
    expect(map.fileReference('5:99:1')).toBe('r1');

    // Where the captured answer refused the request, its stale key stays stale.
    map.guessUnknown = false;
    expect(map.syncKey('{stale}', '5')).toBe('{stale}');
  });

  it('pairs Provision policy keys, FolderCreate ids, client Adds and MoveItems destinations', () => {
    const map = new ReplayMap();
    const provision = (key: string) =>
      el('Provision', 'Provision', [
        el('Provision', 'Status', '1'),
        el('Provision', 'Policies', [el('Provision', 'Policy', [el('Provision', 'PolicyKey', key)])]),
      ]);
    map.learn('Provision', undefined, provision('111'), provision('999'));
    expect(map.policyKey('111')).toBe('999');
    expect(map.policyKey('0')).toBe('0');

    const create = el('FolderHierarchy', 'FolderCreate', [
      el('FolderHierarchy', 'DisplayName', 'Trips'),
      el('FolderHierarchy', 'Type', '12'),
    ]);
    const created = (id: string) => el('FolderHierarchy', 'FolderCreate', [el('FolderHierarchy', 'ServerId', id)]);
    map.learn('FolderCreate', create, created('c9'), created('L9'));
    expect(map.folder('c9')).toBe('L9');

    const moved = (src: string, dst: string) =>
      el('Move', 'MoveItems', [
        el('Move', 'Response', [el('Move', 'SrcMsgId', src), el('Move', 'Status', '3'), el('Move', 'DstMsgId', dst)]),
      ]);
    map.learn('MoveItems', undefined, moved('c:1', 'c9:1'), moved('x:1', 'L9:5'));
    expect(map.item('c9:1')).toBe('L9:5');

    const clientAdd = (id: string) =>
      el('AirSync', 'Sync', [
        el('AirSync', 'Collections', [
          el('AirSync', 'Collection', [
            el('AirSync', 'SyncKey', 'k'),
            el('AirSync', 'CollectionId', id === 'c:7' ? 'c9' : 'L9'),
            el('AirSync', 'Status', '1'),
            el('AirSync', 'Responses', [
              el('AirSync', 'Add', [
                el('AirSync', 'ClientId', 'new-1'),
                el('AirSync', 'ServerId', id),
                el('AirSync', 'Status', '1'),
              ]),
            ]),
          ]),
        ]),
      ]);
    map.learn('Sync', syncRequest('c9', 'k0'), clientAdd('c:7'), clientAdd('L9:6'));
    expect(map.item('c:7')).toBe('L9:6');
  });

  it('keeps every value it does not map, caps a heartbeat when asked, and survives the WBXML trip', () => {
    const map = new ReplayMap();
    const ping = fromXml(
      '<Ping xmlns="Ping"><HeartbeatInterval>480</HeartbeatInterval><Folders><Folder><Id>5</Id><Class>Email</Class></Folder></Folders></Ping>',
    );
    const out = decodeWbxml(encodeWbxml(map.rewriteRequest(ping, { maxHeartbeat: 5 })));
    expect(childText(out, 'HeartbeatInterval')).toBe('5');
    expect(toXml(out)).toContain('<Class>Email</Class>');
    expect(toXml(map.rewriteRequest(ping))).toBe(toXml(ping));
  });
});

describe('rewriteQuery', () => {
  const map = {
    user: 'new@example.test',
    deviceId: 'REPLAY1',
    folder: (id: string) => `F${id}`,
    item: (id: string) => `I${id}`,
    attachment: (name: string) => `A${name}`,
    policyKey: (key: string) => (key === '0' ? '0' : '4294967295'),
  };

  it('rewrites the plain form: User, DeviceId and the ids', () => {
    expect(
      rewriteQuery(
        'Cmd=SmartReply&User=old&DeviceId=DEV&DeviceType=Android&CollectionId=5&ItemId=5%3A1&SaveInSent=T',
        map,
      ),
    ).toEqual({
      query:
        'Cmd=SmartReply&User=new%40example.test&DeviceId=REPLAY1&DeviceType=Android&CollectionId=F5&ItemId=I5%3A1&SaveInSent=T',
      form: 'plain',
    });
  });

  it('rewrites the base64 form (MS-ASHTTP §2.2.1.1.1.1): device id, policy key, User and ItemId', () => {
    // 14.1, SmartReply (3), en-US, a 16-byte binary device id, policy key 1, "WP", User=old, ItemId=5:1, flags.
    const deviceId = Array.from({ length: 16 }, (_, i) => i);
    const packed = Uint8Array.from([
      141,
      3,
      0x09,
      0x04,
      16,
      ...deviceId,
      4,
      1,
      0,
      0,
      0,
      2,
      0x57,
      0x50,
      8,
      3,
      0x6f,
      0x6c,
      0x64,
      3,
      3,
      0x35,
      0x3a,
      0x31,
      7,
      1,
      0x01,
    ]);
    const result = rewriteQuery(Buffer.from(packed).toString('base64'), map);
    expect(result.form).toBe('base64');
    expect(result.version).toBe('14.1');
    const bytes = [...Buffer.from(result.query, 'base64')];
    const text = (s: string) => [...Buffer.from(s)];
    expect(bytes).toEqual([
      141,
      3,
      0x09,
      0x04,
      7,
      ...text('REPLAY1'),
      4,
      0xff,
      0xff,
      0xff,
      0xff,
      2,
      0x57,
      0x50,
      8,
      16,
      ...text('new@example.test'),
      3,
      4,
      ...text('I5:1'),
      7,
      1,
      0x01,
    ]);
  });
});

describe('verdict', () => {
  const answer = (collectionStatus: string) =>
    el('AirSync', 'Sync', [
      el('AirSync', 'Collections', [
        el('AirSync', 'Collection', [
          el('AirSync', 'Status', collectionStatus),
          el('AirSync', 'Commands', [
            el('AirSync', 'Add', [
              el('AirSync', 'ApplicationData', [el('Email', 'Flag', [el('Tasks', 'Complete', '1')])]),
            ]),
          ]),
        ]),
      ]),
    ]);

  it('compares command and collection statuses, not item content', () => {
    expect(statusesOf(answer('1'))).toEqual([{ path: 'Sync/Collections/Collection/Status', value: '1' }]);
    const captured = { httpStatus: 200, statuses: statusesOf(answer('1')) };
    expect(compareWithCaptured(captured, { httpStatus: 200, statuses: statusesOf(answer('1')) })).toEqual([]);
    expect(compareWithCaptured(captured, { httpStatus: 200, statuses: statusesOf(answer('3')) })).toEqual([
      'Sync/Collections/Collection/Status 3, captured 1',
    ]);
    expect(compareWithCaptured(captured, { httpStatus: 449, statuses: [] })).toEqual([
      'HTTP 449, captured 200',
      'Sync/Collections/Collection/Status (none), captured 1',
    ]);
  });

  it('without a captured answer: success, or the documented status', () => {
    const live = (s: string) => ({ httpStatus: 200, statuses: statusesOf(answer(s)) });
    expect(compareWithExpected(undefined, live('1'))).toEqual([]);
    expect(compareWithExpected(undefined, live('3'))).toEqual([
      'Sync/Collections/Collection/Status 3, expected success',
    ]);
    expect(compareWithExpected({ status: 3 }, live('3'))).toEqual([]);
    expect(compareWithExpected({ status: 3 }, live('1'))).toHaveLength(1);
    expect(compareWithExpected({ httpStatus: 449 }, { httpStatus: 449, statuses: [] })).toEqual([]);
    // MoveItems 3 and Ping 2 are success (MS-ASCMD §2.2.3.177.9, §2.2.3.177.11).
    expect(
      compareWithExpected(undefined, {
        httpStatus: 200,
        statuses: [{ path: 'MoveItems/Response/Status', value: '3' }],
      }),
    ).toEqual([]);
    expect(
      compareWithExpected(undefined, { httpStatus: 200, statuses: [{ path: 'Ping/Status', value: '2' }] }),
    ).toEqual([]);
  });

  it('checks the headers a corpus request expects (the 401 challenge of an anonymous OPTIONS)', () => {
    const expected = { httpStatus: 401, headers: { 'www-authenticate': 'Basic' } };
    const challenge = new Headers({ 'WWW-Authenticate': 'Basic realm="ActiveSync"' });
    expect(compareWithExpected(expected, { httpStatus: 401, statuses: [], headers: challenge })).toEqual([]);
    expect(compareWithExpected(expected, { httpStatus: 200, statuses: [], headers: new Headers() })).toEqual([
      'HTTP 200, expected 401',
      'www-authenticate: (none), expected Basic…',
    ]);
    const bearer = new Headers({ 'WWW-Authenticate': 'Bearer realm="x"' });
    expect(compareWithExpected(expected, { httpStatus: 401, statuses: [], headers: bearer })).toHaveLength(1);
  });
});
