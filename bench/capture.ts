/**
 * What protocol capture costs a request (src/admin/capture.ts), on the embedded SQLite store (a file, WAL):
 * - capture off: the hook's check against the cached rules, per request, and how many state reads the rules cost;
 * - capture on: rendering a Sync answer of 100 HTML mails as XML (bodies cut to 2048) and storing it, per request,
 *   beside encoding the same answer (work every such request does anyway).
 *
 *   npm run bench:capture
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureExchange, RULES_CACHE_MS, startCapture } from '../src/admin/capture.ts';
import { openSqliteStateStore } from '../src/state/sqlite-node.ts';
import { encodeWbxml } from '../src/wbxml/encoder.ts';
import { el, type WbxmlElement } from '../src/wbxml/tree.ts';

const WBXML = 'application/vnd.ms-sync.wbxml';

function mail(i: number): WbxmlElement {
  const body = `<html><body>${Array.from({ length: 12 }, (_, p) => `<p>Paragraph ${p} of message ${i}: the quarterly figures are attached; please review the report before Thursday.</p>`).join('\n')}</body></html>`;
  return el('AirSync', 'Add', [
    el('AirSync', 'ServerId', `5:${1000 + i}`),
    el('AirSync', 'ApplicationData', [
      el('Email', 'From', `"Sender ${i}" <sender${i}@partner.example>`),
      el('Email', 'Subject', `Quarterly report ${i}: figures and next steps`),
      el('AirSyncBase', 'Body', [el('AirSyncBase', 'Type', 2), el('AirSyncBase', 'Data', body)]),
    ]),
  ]);
}

const answer = el('AirSync', 'Sync', [
  el('AirSync', 'Collections', [
    el('AirSync', 'Collection', [
      el('AirSync', 'SyncKey', '2'),
      el('AirSync', 'CollectionId', '5'),
      el('AirSync', 'Status', 1),
      el(
        'AirSync',
        'Commands',
        Array.from({ length: 100 }, (_, i) => mail(i)),
      ),
    ]),
  ]),
]);
const answerBytes = encodeWbxml(answer);
const requestBytes = encodeWbxml(
  el('AirSync', 'Sync', [
    el('AirSync', 'Collections', [
      el('AirSync', 'Collection', [el('AirSync', 'SyncKey', '1'), el('AirSync', 'CollectionId', '5')]),
    ]),
  ]),
);

function input(device: { tenant: string; user: string; deviceId: string }, started: number) {
  return {
    device,
    started,
    entry: { cmd: 'Sync', status: 1, http: 200, ms: 5 },
    request: new Request('https://eas.example.test/Microsoft-Server-ActiveSync?Cmd=Sync&User=a&DeviceId=D1', {
      method: 'POST',
      headers: { 'Content-Type': WBXML, 'MS-ASProtocolVersion': '16.1', Authorization: 'Basic eDp5' },
    }),
    body: requestBytes,
    response: new Response(answerBytes as Uint8Array<ArrayBuffer>, { headers: { 'Content-Type': WBXML } }),
  };
}

const dir = mkdtempSync(join(tmpdir(), 'ase-bench-capture-'));
const { store, close } = openSqliteStateStore(join(dir, 'state.sqlite'));
let reads = 0;
const list = store.listCaptureRules.bind(store);
store.listCaptureRules = (tenant) => {
  reads += 1;
  return list(tenant);
};

try {
  const device = { tenant: 'bench', user: 'alice', deviceId: 'D1' };
  const t0 = Date.now();

  // Off: 100,000 requests spread over 10 simulated minutes (the hook does not touch a request it does not capture).
  const offRequests = 100_000;
  const span = 10 * 60_000;
  const request = input(device, t0);
  let started = performance.now();
  for (let i = 0; i < offRequests; i++)
    await captureExchange(store, request, undefined, t0 + Math.floor((i * span) / offRequests));
  const offUs = ((performance.now() - started) * 1000) / offRequests;
  console.log(
    `capture off: ${offUs.toFixed(2)} µs per request for the check; ${reads} state reads for ${offRequests} requests over 10 min (one per ${RULES_CACHE_MS / 1000} s)`,
  );

  // On: the same Sync answer, captured.
  await startCapture(store, 'bench', { user: 'alice', deviceId: 'D1', minutes: 60 });
  const onRequests = 200;
  const now = Date.now();
  started = performance.now();
  for (let i = 0; i < onRequests; i++) await captureExchange(store, input(device, now + i), undefined, now);
  const onMs = (performance.now() - started) / onRequests;
  started = performance.now();
  for (let i = 0; i < onRequests; i++) encodeWbxml(answer);
  const encodeMs = (performance.now() - started) / onRequests;
  const [record] = await store.listCaptureRecords(device);
  console.log(
    `capture on: ${onMs.toFixed(2)} ms per captured Sync answer of 100 mails (${answerBytes.length} bytes WBXML, ` +
      `${record?.exchange.response.body?.xml?.length ?? 0} chars of XML kept); encoding that answer: ${encodeMs.toFixed(2)} ms`,
  );
} finally {
  close();
  rmSync(dir, { recursive: true, force: true });
}
