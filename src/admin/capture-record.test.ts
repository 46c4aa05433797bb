import { describe, expect, it } from 'vitest';
import { openSqliteStateStore } from '../state/sqlite-node.ts';
import { CAPTURE_RECORD_MAX_CHARS } from '../state/types.ts';
import { encodeWbxml } from '../wbxml/encoder.ts';
import { el } from '../wbxml/tree.ts';
import { captureExchange, RULES_CACHE_MS, startCapture, stopCapture } from './capture.ts';
import { captureBody, captureExchangeRecord, keptHeaders } from './capture-record.ts';

const WBXML = 'application/vnd.ms-sync.wbxml';

function exchange(requestBody: Uint8Array, response: Response, headers: Record<string, string> = {}) {
  return {
    started: Date.UTC(2026, 11, 7, 14, 0, 0),
    entry: { cmd: 'Sync', status: 1, ms: 42 },
    request: new Request('https://eas.example.test/Microsoft-Server-ActiveSync?Cmd=Sync&User=alice&DeviceId=D1', {
      method: 'POST',
      headers: { 'Content-Type': WBXML, ...headers },
    }),
    body: requestBody,
    response,
  };
}

describe('what a capture keeps of an exchange', () => {
  it('keeps no header that authenticates, whatever its name', () => {
    const kept = keptHeaders(
      new Headers({
        Authorization: 'Basic YWxpY2U6aHVudGVyMg==',
        'Proxy-Authorization': 'Basic eA==',
        Cookie: 'session=1',
        'X-Auth-Token': 't',
        'X-Api-Key': 'k',
        'MS-ASProtocolVersion': '16.1',
        'X-MS-PolicyKey': '123',
        'User-Agent': 'Apple-iPhone',
      }),
    );
    expect(kept).toEqual({ 'ms-asprotocolversion': '16.1', 'user-agent': 'Apple-iPhone', 'x-ms-policykey': '123' });
  });

  it('renders both bodies as XML, passwords redacted, bodies cut, the answer left readable', async () => {
    const request = el('Settings', 'Settings', [
      el('Settings', 'DevicePassword', [el('Settings', 'Set', [el('Settings', 'Password', 'hunter2')])]),
    ]);
    const answer = el('AirSync', 'Sync', [
      el('AirSync', 'Status', '1'),
      el('AirSyncBase', 'Body', [el('AirSyncBase', 'Data', 'secret body '.repeat(100))]),
    ]);
    const response = new Response(encodeWbxml(answer) as Uint8Array<ArrayBuffer>, {
      headers: { 'Content-Type': WBXML, 'Set-Cookie': 'a=b' },
    });
    const record = await captureExchangeRecord(
      exchange(encodeWbxml(request), response, { Authorization: 'Basic x' }),
      16,
    );
    expect(record).toMatchObject({
      time: Date.UTC(2026, 11, 7, 14, 0, 0),
      ms: 42,
      method: 'POST',
      command: 'Sync',
      query: 'Cmd=Sync&User=alice&DeviceId=D1',
      commandStatus: 1,
      request: { headers: { 'content-type': WBXML } },
      response: { status: 200, headers: { 'content-type': WBXML } },
    });
    expect(JSON.stringify(record)).not.toMatch(/hunter2|Basic|Set-Cookie|a=b/i);
    expect(record.request.body?.xml).toContain('<Password>***</Password>');
    expect(record.response.body?.xml).toContain('<airsyncbase:Data>secret body secr<!--cut: 1200 chars-->');
    expect(record.response.body?.cut).toBe(true);
    // The answer is still readable by the caller.
    expect((await response.arrayBuffer()).byteLength).toBeGreaterThan(1200);
  });

  it('reads multipart answers part by part, and keeps other bodies as text or base64, cut', () => {
    const wbxml = encodeWbxml(el('ItemOperations', 'ItemOperations', [el('ItemOperations', 'Status', '1')]));
    const attachment = new Uint8Array(100).fill(7);
    const header = new DataView(new ArrayBuffer(20));
    header.setInt32(0, 2, true);
    header.setInt32(4, 20, true);
    header.setInt32(8, wbxml.length, true);
    header.setInt32(12, 20 + wbxml.length, true);
    header.setInt32(16, attachment.length, true);
    const multipart = new Uint8Array([...new Uint8Array(header.buffer), ...wbxml, ...attachment]);
    const body = captureBody(multipart, 'application/vnd.ms-sync.multipart', 8);
    expect(body.parts?.[0]?.xml).toContain('<Status>1</Status>');
    expect(body.parts?.[1]).toEqual({
      contentType: 'application/octet-stream',
      bytes: 100,
      base64: 'BwcHBwcH',
      cut: true,
    });
    expect(body.cut).toBe(true);

    const mime = new TextEncoder().encode('Subject: hi\r\n\r\nthe whole message');
    expect(captureBody(mime, 'message/rfc822', 11)).toEqual({
      contentType: 'message/rfc822',
      bytes: mime.length,
      text: 'Subject: hi',
      cut: true,
    });
    expect(captureBody(new Uint8Array([1, 2]), WBXML, 10).base64).toBe('AQI=');
  });

  it('keeps a record under the store limit however large the answer', async () => {
    const items = Array.from({ length: 400 }, (_, i) =>
      el('AirSync', 'Add', [el('AirSync', 'ServerId', `5:${i}`), el('Email', 'Subject', `subject ${i} `.repeat(100))]),
    );
    const answer = encodeWbxml(el('AirSync', 'Sync', items));
    const record = await captureExchangeRecord(
      exchange(
        new Uint8Array(),
        new Response(answer as Uint8Array<ArrayBuffer>, { headers: { 'Content-Type': WBXML } }),
      ),
      2048,
    );
    expect(record.request.body).toBeUndefined();
    expect(record.response.body).toEqual({ contentType: WBXML, bytes: answer.length, cut: true });
    expect(JSON.stringify(record).length).toBeLessThan(CAPTURE_RECORD_MAX_CHARS);
  });
});

describe('capture rules', () => {
  it('captures only the devices a rule covers, reads the rules once per cache period, and stops', async () => {
    const { store } = openSqliteStateStore(':memory:');
    let reads = 0;
    const list = store.listCaptureRules.bind(store);
    store.listCaptureRules = (tenant) => {
      reads += 1;
      return list(tenant);
    };
    const alice = { tenant: 't', user: 'alice', deviceId: 'D1' };
    const other = { ...alice, deviceId: 'D2' };
    const run = (device: typeof alice, now: number) =>
      captureExchange(
        store,
        { ...exchange(new Uint8Array(), new Response(null)), device },
        { maxBodyBytes: 10, retentionHours: 1 },
        now,
      );
    const t0 = Date.now();
    await run(alice, t0);
    await startCapture(store, 't', { user: 'Alice', deviceId: 'D1', minutes: 5 }, undefined, t0);
    await run(alice, t0 + 1);
    await run(other, t0 + 2);
    await run(alice, t0 + 3);
    expect(reads).toBe(2);
    expect((await store.listCaptureRecords(alice)).map((r) => r.at)).toHaveLength(2);
    expect(await store.listCaptureRecords(other)).toEqual([]);

    await run(alice, t0 + RULES_CACHE_MS + 10);
    expect(reads).toBe(3);
    await stopCapture(store, 't', 'ALICE', 'D1');
    await run(alice, t0 + RULES_CACHE_MS + 20);
    expect(await store.listCaptureRecords(alice)).toHaveLength(3);
  });
});
