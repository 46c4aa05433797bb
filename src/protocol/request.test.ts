import { describe, expect, it } from 'vitest';
import { parseBasicAuth } from './auth.ts';
import { HttpError } from './errors.ts';
import { parseActiveSyncRequest } from './request.ts';

const parse = (query: string, headers: Record<string, string> = {}) =>
  parseActiveSyncRequest(
    new URL(`https://mail.example.com/Microsoft-Server-ActiveSync?${query}`),
    new Headers(headers),
  );

function httpError(fn: () => unknown): HttpError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(HttpError);
    return err as HttpError;
  }
  throw new Error('expected an HttpError');
}

/** Builds a base64 query as MS-ASHTTP §2.2.1.1.1.1 lays it out. */
function base64Query(o: {
  version: number;
  code: number;
  deviceId: string | Uint8Array;
  policyKey?: number;
  deviceType: string;
  params?: [number, Uint8Array | string][];
}): string {
  const id = typeof o.deviceId === 'string' ? Buffer.from(o.deviceId) : Buffer.from(o.deviceId);
  const parts: Buffer[] = [Buffer.from([o.version, o.code, 0x09, 0x04, id.length]), id];
  if (o.policyKey === undefined) parts.push(Buffer.from([0]));
  else {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(o.policyKey);
    parts.push(Buffer.from([4]), key);
  }
  parts.push(Buffer.from([o.deviceType.length]), Buffer.from(o.deviceType));
  for (const [tag, value] of o.params ?? []) {
    const v = Buffer.from(value);
    parts.push(Buffer.from([tag, v.length]), v);
  }
  return Buffer.concat(parts).toString('base64');
}

describe('parseActiveSyncRequest, plain query', () => {
  it('reads the parameters case-insensitively, and the version and policy key headers', () => {
    const r = parse('cmd=Sync&user=alice&DEVICEID=abc123&DeviceType=iPhone', {
      'MS-ASProtocolVersion': '16.1',
      'X-MS-PolicyKey': '3942919513',
      'User-Agent': 'Apple-iPhone11C8/2007.75',
    });
    expect(r).toMatchObject({
      command: 'Sync',
      user: 'alice',
      deviceId: 'abc123',
      deviceType: 'iPhone',
      version: '16.1',
      policyKey: '3942919513',
      queryForm: 'plain',
      userAgent: 'Apple-iPhone11C8/2007.75',
    });
  });

  it('reads the command parameters of protocol 12.x', () => {
    const r = parse('Cmd=SmartReply&User=a&DeviceId=d&DeviceType=t&ItemId=5%3A12&CollectionId=5&SaveInSent=T', {
      'MS-ASProtocolVersion': '12.1',
      'MS-ASAcceptMultiPart': 'T',
    });
    expect(r.params).toEqual({ itemId: '5:12', collectionId: '5', saveInSent: true, acceptMultiPart: true });
  });

  it('answers 400 for a missing Cmd, DeviceId or DeviceType', () => {
    const v = { 'MS-ASProtocolVersion': '14.1' };
    expect(httpError(() => parse('User=a&DeviceId=d&DeviceType=t', v)).status).toBe(400);
    expect(httpError(() => parse('Cmd=Sync&User=a&DeviceType=t', v)).status).toBe(400);
    expect(httpError(() => parse('Cmd=Sync&User=a&DeviceId=d', v)).status).toBe(400);
    expect(httpError(() => parse(`Cmd=Sync&DeviceId=${'x'.repeat(200)}&DeviceType=t`, v)).status).toBe(400);
  });

  it('answers 400 with the supported versions for a missing or unsupported version', () => {
    const missing = httpError(() => parse('Cmd=Sync&DeviceId=d&DeviceType=t'));
    expect(missing.status).toBe(400);
    expect(missing.headers['MS-ASProtocolVersions']).toBe('12.0,12.1,14.0,14.1,16.0,16.1');
    expect(httpError(() => parse('Cmd=Sync&DeviceId=d&DeviceType=t', { 'MS-ASProtocolVersion': '2.5' })).status).toBe(
      400,
    );
    expect(httpError(() => parse('Cmd=Sync&DeviceId=d&DeviceType=t', { 'MS-ASProtocolVersion': '17.0' })).status).toBe(
      400,
    );
  });
});

describe('parseActiveSyncRequest, base64 query', () => {
  it("decodes the brief's example: 14.0 Sync from v140Device, a SmartPhone", () => {
    const r = parse('jAAJBAp2MTQwRGV2aWNlAApTbWFydFBob25l');
    expect(r).toMatchObject({
      command: 'Sync',
      deviceId: 'v140Device',
      deviceType: 'SmartPhone',
      version: '14.0',
      policyKey: undefined,
      locale: 0x0409,
      queryForm: 'base64',
    });
  });

  it('reads the policy key (little-endian), parameters and the Options bits', () => {
    const q = base64Query({
      version: 161,
      code: 3,
      deviceId: 'ABCDEF0123456789',
      policyKey: 3942919513,
      deviceType: 'Android',
      params: [
        [1, '5'],
        [3, '5:20'],
        [4, 'RgAAAAB'],
        [8, 'alice@example.test'],
        [7, new Uint8Array([0x03])],
      ],
    });
    const r = parse(encodeURIComponent(q));
    expect(r).toMatchObject({
      command: 'SmartReply',
      version: '16.1',
      policyKey: '3942919513',
      user: 'alice@example.test',
    });
    expect(r.params).toEqual({
      collectionId: '5',
      itemId: '5:20',
      longId: 'RgAAAAB',
      saveInSent: true,
      acceptMultiPart: true,
    });
  });

  it('keeps a binary device id as upper-case hex', () => {
    const guid = new Uint8Array([0x01, 0x02, 0xfe, 0xff, 0, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
    expect(parse(base64Query({ version: 141, code: 9, deviceId: guid, deviceType: 'WP' })).deviceId).toBe(
      '0102FEFF00090A0B0C0D0E0F10111213',
    );
  });

  it('names a Windows device the same in both query forms (its plain DeviceId is upper-case hex)', () => {
    // Windows Mail's plain OPTIONS (tine20 #3705) and its base64 Sync carry the same GUID (MS-ASHTTP §2.2.1.1.1.1).
    const plainId = 'B7D9806C123E69F8850A2D30D3709A18';
    const plain = parseActiveSyncRequest(
      new URL(`https://h/Microsoft-Server-ActiveSync?Cmd=Sync&User=ast&DeviceId=${plainId}&DeviceType=WindowsMail`),
      new Headers({ 'MS-ASProtocolVersion': '14.0' }),
    );
    const packed = parse(
      base64Query({ version: 140, code: 0, deviceId: Buffer.from(plainId, 'hex'), deviceType: 'WindowsMail' }),
    );
    expect(packed.deviceId).toBe(plain.deviceId);
  });

  it('answers 400 for a truncated query, an unknown command code or an unsupported version', () => {
    const good = Buffer.from(base64Query({ version: 141, code: 9, deviceId: 'dev', deviceType: 'Phone' }), 'base64');
    expect(httpError(() => parse(good.subarray(0, good.length - 2).toString('base64'))).status).toBe(400);
    expect(httpError(() => parse(base64Query({ version: 141, code: 99, deviceId: 'd', deviceType: 't' }))).status).toBe(
      400,
    );
    expect(httpError(() => parse(base64Query({ version: 25, code: 0, deviceId: 'd', deviceType: 't' }))).status).toBe(
      400,
    );
    expect(httpError(() => parse(base64Query({ version: 141, code: 0, deviceId: '', deviceType: 't' }))).status).toBe(
      400,
    );
  });
});

describe('parseBasicAuth', () => {
  const basic = (s: string): string => `Basic ${Buffer.from(s).toString('base64')}`;

  it('accepts user, user@domain and DOMAIN\\user; the password may hold colons', () => {
    expect(parseBasicAuth(basic('alice:pw'))).toEqual({ login: 'alice', password: 'pw', domain: undefined });
    expect(parseBasicAuth(basic('alice@example.test:a:b'))).toEqual({
      login: 'alice@example.test',
      password: 'a:b',
      domain: undefined,
    });
    expect(parseBasicAuth(basic('CORP\\alice:pw'))).toEqual({ login: 'alice', password: 'pw', domain: 'CORP' });
    expect(parseBasicAuth(basic('Jürgen:pässwörd'))).toEqual({
      login: 'Jürgen',
      password: 'pässwörd',
      domain: undefined,
    });
  });

  it('refuses what is not Basic credentials', () => {
    expect(parseBasicAuth(undefined)).toBeUndefined();
    expect(parseBasicAuth('Bearer abc')).toBeUndefined();
    expect(parseBasicAuth(basic('nocolon'))).toBeUndefined();
    expect(parseBasicAuth(basic(':pw'))).toBeUndefined();
    expect(parseBasicAuth(basic('CORP\\:pw'))).toBeUndefined();
    expect(parseBasicAuth('Basic !!!')).toBeUndefined();
  });
});
