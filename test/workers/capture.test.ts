/**
 * Protocol capture inside workerd: the capture hook renders an exchange (Response.clone, the WBXML decoder, toXml)
 * and stores it through the Durable Object store, rules in the tenant's object and records in the user's, and the
 * export reads them back as the Node runtime does (test/e2e/capture.test.ts runs the whole session there).
 */
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { captureExchange, exportCapture, startCapture, stopCapture } from '../../src/admin/capture.ts';
import { durableObjectStateStore } from '../../src/state/durable-object.ts';
import { encodeWbxml } from '../../src/wbxml/encoder.ts';
import { el } from '../../src/wbxml/tree.ts';

const WBXML = 'application/vnd.ms-sync.wbxml';

describe('protocol capture (workerd, Durable Objects)', () => {
  it('keeps a captured exchange as XML without credentials, and exports it', async () => {
    const state = durableObjectStateStore(env.STATE);
    const device = { tenant: 'capture', user: `u${crypto.randomUUID()}`, deviceId: 'D1' };
    const answer = el('AirSync', 'Sync', [
      el('AirSync', 'Status', '1'),
      el('AirSyncBase', 'Body', [el('AirSyncBase', 'Data', 'body text '.repeat(50))]),
    ]);
    const exchange = (started: number) => ({
      device,
      started,
      entry: { cmd: 'Sync', status: 1, ms: 3 },
      request: new Request(`https://eas.example.test/Microsoft-Server-ActiveSync?Cmd=Sync&DeviceId=D1`, {
        method: 'POST',
        headers: { 'Content-Type': WBXML, Authorization: 'Basic c2VjcmV0OnNlY3JldA==' },
      }),
      body: encodeWbxml(el('AirSync', 'Sync', [el('AirSync', 'WindowSize', '5')])),
      response: new Response(encodeWbxml(answer), { headers: { 'Content-Type': WBXML } }),
    });

    await startCapture(state, device.tenant, { user: device.user, deviceId: 'D1', minutes: 5, maxBodyBytes: 20 });
    await captureExchange(state, exchange(1_000));
    await captureExchange(state, exchange(2_000));
    await stopCapture(state, device.tenant, device.user, 'D1');
    await captureExchange(state, exchange(3_000));

    const session = await exportCapture(state, device);
    expect(session.requests.map((r) => r.time)).toEqual([new Date(1_000).toISOString(), new Date(2_000).toISOString()]);
    const [first] = session.requests;
    expect(first?.request.body?.xml).toContain('<WindowSize>5</WindowSize>');
    expect(first?.response.body?.xml).toContain('<airsyncbase:Data>body text body text <!--cut: 500 chars-->');
    expect(JSON.stringify(session)).not.toMatch(/authorization|c2VjcmV0|Basic/i);
  });
});
