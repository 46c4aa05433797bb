/**
 * Autodiscover end to end (MS-ASCMD §2.2.1.1, the mobilesync schema) through the app: authentication as Exchange does
 * it, the answer pointing at PUBLIC_URL, errors 600 and 601, and the path in any case.
 */
import { SaxesParser } from 'saxes';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { createUser } from '../services/seed.ts';
import type { TestUser } from '../services/types.ts';
import { testServer, type TestServer } from '../device/device.ts';

const services = inject('services');
const REQUEST_SCHEMA = 'http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006';
const MOBILESYNC = 'http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006';
const RESPONSE = 'http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006';

let server: TestServer;
let user: TestUser;

beforeAll(() => {
  server = testServer(services, { PUBLIC_URL: 'https://sync.example.test/' });
  user = createUser(services);
});

function requestXml(email: string, schema = MOBILESYNC): string {
  return `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="${REQUEST_SCHEMA}">
  <Request>
    <EMailAddress>${email}</EMailAddress>
    <AcceptableResponseSchema>${schema}</AcceptableResponseSchema>
  </Request>
</Autodiscover>`;
}

function basic(login: string, password: string): string {
  return `Basic ${Buffer.from(`${login}:${password}`).toString('base64')}`;
}

function post(
  body: string,
  o: { path?: string; authorization?: string | null; on?: TestServer } = {},
): Promise<Response> {
  const headers: Record<string, string> = { 'Content-Type': 'text/xml' };
  const authorization = o.authorization === undefined ? basic(user.email, user.password) : o.authorization;
  if (authorization !== null) headers.Authorization = authorization;
  return (o.on ?? server).fetch(`https://autodiscover.example.test${o.path ?? '/autodiscover/autodiscover.xml'}`, {
    method: 'POST',
    body,
    headers,
  });
}

/** Elements as `namespace|path → text`, for comparing documents without caring about whitespace. */
function flatten(xml: string): Map<string, string> {
  const parser = new SaxesParser({ xmlns: true });
  const path: string[] = [];
  const out = new Map<string, string>();
  let text = '';
  parser.on('opentag', (t) => {
    path.push(t.local);
    out.set(`${t.uri}|${path.join('/')}`, '');
    for (const a of Object.values(t.attributes))
      if (!a.name.startsWith('xmlns')) out.set(`@${path.join('/')}/${a.local}`, a.value);
    text = '';
  });
  parser.on('text', (t) => (text += t));
  parser.on('closetag', (t) => {
    if (text.trim()) out.set(`${t.uri}|${path.join('/')}`, text.trim());
    path.pop();
    text = '';
  });
  parser.write(xml).close();
  return out;
}

describe('Autodiscover', () => {
  it('answers with the mobilesync settings pointing at PUBLIC_URL, whatever the case of the path', async () => {
    for (const path of [
      '/autodiscover/autodiscover.xml',
      '/Autodiscover/Autodiscover.xml',
      '/AUTODISCOVER/AUTODISCOVER.XML',
    ]) {
      const res = await post(requestXml(user.email), { path });
      expect(res.status, path).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/xml; charset=utf-8');
      const doc = flatten(await res.text());
      expect(doc.has(`${RESPONSE}|Autodiscover`)).toBe(true);
      expect(doc.get(`${MOBILESYNC}|Autodiscover/Response/Culture`)).toBe('en:us');
      expect(doc.get(`${MOBILESYNC}|Autodiscover/Response/User/EMailAddress`)).toBe(user.email);
      expect(doc.get(`${MOBILESYNC}|Autodiscover/Response/Action/Settings/Server/Type`)).toBe('MobileSync');
      expect(doc.get(`${MOBILESYNC}|Autodiscover/Response/Action/Settings/Server/Url`)).toBe(
        'https://sync.example.test/Microsoft-Server-ActiveSync',
      );
      expect(doc.get(`${MOBILESYNC}|Autodiscover/Response/Action/Settings/Server/Name`)).toBe(
        'https://sync.example.test/Microsoft-Server-ActiveSync',
      );
    }
  });

  it('points at https:// and the host the request came to when PUBLIC_URL is not set, and says so', async () => {
    const plain = testServer(services);
    // Said once when the app is built (beside the start-up notices of other features)…
    expect(plain.logs.filter((e) => String(e.event).startsWith('autodiscover'))).toEqual([
      expect.objectContaining({ tenant: 'test', event: 'autodiscover-no-public-url', notice: expect.any(String) }),
    ]);
    const res = await post(requestXml(user.email), { on: plain });
    expect(flatten(await res.text()).get(`${MOBILESYNC}|Autodiscover/Response/Action/Settings/Server/Url`)).toBe(
      'https://autodiscover.example.test/Microsoft-Server-ActiveSync',
    );
    // …and behind a proxy that ends TLS (the request arrives as http://, here on port 8080) still https://.
    const proxied = await plain.fetch('http://autodiscover.example.test:8080/autodiscover/autodiscover.xml', {
      method: 'POST',
      body: requestXml(user.email),
      headers: { 'Content-Type': 'text/xml', Authorization: basic(user.email, user.password) },
    });
    expect(flatten(await proxied.text()).get(`${MOBILESYNC}|Autodiscover/Response/Action/Settings/Server/Url`)).toBe(
      'https://autodiscover.example.test:8080/Microsoft-Server-ActiveSync',
    );
    expect(plain.logs.at(-1)).toMatchObject({ cmd: 'Autodiscover', status: 1, publicUrl: 'unset' });
    // With PUBLIC_URL nothing is said.
    expect(server.logs.filter((e) => String(e.event).startsWith('autodiscover') || e.publicUrl !== undefined)).toEqual(
      [],
    );
  });

  it('asks for credentials with a Basic challenge, and refuses wrong ones', async () => {
    const anonymous = await post(requestXml(user.email), { authorization: null });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic realm="/);
    const wrong = await post(requestXml(user.email), { authorization: basic(user.email, 'not-the-password') });
    expect(wrong.status).toBe(401);
    expect(JSON.stringify(server.logs)).not.toContain('not-the-password');
  });

  it('answers a request for another schema (Outlook desktop) with ErrorCode 601', async () => {
    const res = await post(
      requestXml(user.email, 'http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a'),
    );
    expect(res.status).toBe(200);
    const doc = flatten(await res.text());
    expect(doc.get(`${RESPONSE}|Autodiscover/Response/Error/ErrorCode`)).toBe('601');
    expect(doc.get(`@Autodiscover/Response/Error/Id`)).toMatch(/^\d+$/);
    expect(doc.get(`@Autodiscover/Response/Error/Time`)).toMatch(/^\d\d:\d\d:\d\d\.\d+$/);
  });

  it('answers what is not an Autodiscover request with ErrorCode 600', async () => {
    const bad = [
      '<Autodiscover><Request><EMailAddress>broken',
      '<NotAutodiscover/>',
      `<Autodiscover xmlns="${REQUEST_SCHEMA}"><Request><AcceptableResponseSchema>${MOBILESYNC}</AcceptableResponseSchema></Request></Autodiscover>`,
      `<Autodiscover xmlns="${REQUEST_SCHEMA}"><Request><EMailAddress>${user.email}</EMailAddress></Request></Autodiscover>`,
      `<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><Autodiscover><Request><EMailAddress>&e;</EMailAddress></Request></Autodiscover>`,
    ];
    for (const body of bad) {
      const res = await post(body);
      expect(res.status, body).toBe(200);
      const text = await res.text();
      expect(flatten(text).get(`${RESPONSE}|Autodiscover/Response/Error/ErrorCode`), body).toBe('600');
      expect(text).not.toContain('root:');
    }
  });

  it('takes an empty body (old Android) as a request for the signed-in user', async () => {
    const res = await post('');
    expect(res.status).toBe(200);
    expect(flatten(await res.text()).get(`${MOBILESYNC}|Autodiscover/Response/User/EMailAddress`)).toBe(user.email);
  });

  it('writes a log line per request, and answers other methods and the JSON form with 404', async () => {
    server.logs.length = 0;
    await post(requestXml(user.email));
    expect(server.logs).toEqual([
      expect.objectContaining({ cmd: 'Autodiscover', user: user.email, http: 200, status: 1 }),
    ]);
    expect(
      (
        await server.fetch(
          'https://autodiscover.example.test/autodiscover/autodiscover.json?Email=a@b&Protocol=ActiveSync',
        )
      ).status,
    ).toBe(404);
  });
});
