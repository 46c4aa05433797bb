/**
 * Autodiscover for mobile devices (MS-ASCMD §2.2.1.1, the "mobilesync" schema): a phone that is given only an email
 * address and a password POSTs to /autodiscover/autodiscover.xml and learns the ActiveSync URL.
 *
 * - Authentication as Exchange does it: HTTP Basic, checked like ActiveSync requests; without credentials, or with
 *   wrong ones, 401 with a Basic challenge, so that the client retries with the user's password.
 * - The answer points at PUBLIC_URL + /Microsoft-Server-ActiveSync. Without PUBLIC_URL, at https:// and the host
 *   the request came to: never http://, which is what a request looks like behind a proxy that ends TLS, and which
 *   would send the device's password in clear (the app says so at start-up and in each answer's log line).
 * - A request that is not the Autodiscover XML gets ErrorCode 600 (invalid request); one that asks for another
 *   response schema (Outlook desktop's `outlook` schema) gets 601 (provider not available). Both are HTTP 200 with
 *   the generic error response, as Exchange answers. An empty body (some old Android builds send none) is taken as a
 *   request for the authenticated user.
 */
import { tenantAuthenticator } from '../protocol/bearer.ts';
import type { Context } from 'hono';
import type { LogEntry } from '../log.ts';
import type { ActiveSyncDeps } from './activesync.ts';
import { primaryAddress } from '../items/address.ts';
import { clientAddress, guardedAuthenticate, LoginThrottledError } from '../protocol/throttle.ts';
import { basicChallenge, challengeFor, parseAuthorization, schemeAllowed } from '../protocol/auth.ts';
import { AuthUnavailableError, type AuthenticatedUser } from '../backends/auth.ts';
import { HttpError } from '../protocol/errors.ts';
import { withTenant } from './tenants.ts';

export const MOBILESYNC_RESPONSE_SCHEMA =
  'http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006';
/** The start-up notice of a tenant without PUBLIC_URL. */
export const AUTODISCOVER_NO_PUBLIC_URL =
  'PUBLIC_URL is not set: Autodiscover answers https://<the Host of the request>/Microsoft-Server-ActiveSync; set PUBLIC_URL to the address devices reach';

const RESPONSE_NAMESPACE = 'http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006';
const ACTIVESYNC_PATH = '/Microsoft-Server-ActiveSync';
const REALM = 'ActiveSync';
const RETRY_AFTER_SECONDS = 30;
const XML_TYPE = 'text/xml; charset=utf-8';

export type AutodiscoverDeps = Pick<ActiveSyncDeps, 'config' | 'backends' | 'log' | 'tenants' | 'state'>;

interface AutodiscoverRequest {
  email: string | undefined;
  schema: string | undefined;
}

class InvalidRequest extends Error {}

export async function handleAutodiscover(c: Context, deps: AutodiscoverDeps): Promise<Response> {
  const started = Date.now();
  const entry: LogEntry = {
    time: new Date(started).toISOString(),
    tenant: deps.tenants ? undefined : deps.config.tenant,
    cmd: 'Autodiscover',
  };
  let response: Response;
  try {
    response = await serve(c, deps, entry);
  } catch (err) {
    entry.error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    response = new Response(null, { status: 500, headers: { 'Content-Length': '0' } });
  }
  entry.http = response.status;
  entry.ms = Date.now() - started;
  deps.log(entry);
  return response;
}

async function serve(c: Context, anyTenant: AutodiscoverDeps, entry: LogEntry): Promise<Response> {
  // Bearer: the user is the token's claim (Autodiscover has no User parameter).
  const credentials = parseAuthorization(c.req.header('authorization'), undefined);
  entry.user = credentials?.login;
  let deps: AutodiscoverDeps;
  try {
    deps = withTenant(anyTenant, new URL(c.req.url).host, credentials);
  } catch (err) {
    // No tenant for this host and mail domain: the same 401 as a wrong password (see app/tenants.ts).
    if (err instanceof HttpError) return unauthorized();
    throw err;
  }
  entry.tenant = deps.config.tenant;
  if (!credentials || !schemeAllowed(deps.config.authMode, credentials))
    return unauthorized(challengeFor(deps.config.authMode, REALM));
  let user: AuthenticatedUser | undefined;
  const scope = deps.backends.forRequest();
  try {
    // Throttled like ActiveSync logins (protocol/throttle.ts): the same counters, the same 503.
    user = await guardedAuthenticate(
      {
        config: deps.config,
        state: deps.state,
        // Tokens verified with the tenant's identity provider first (protocol/bearer.ts).
        authenticator: tenantAuthenticator(deps.config, scope.authenticator),
      },
      credentials,
      clientAddress(c, deps.config),
    );
  } catch (err) {
    if (err instanceof LoginThrottledError) {
      entry.error = err.message;
      return new Response(null, { status: 503, headers: { ...err.headers, 'Content-Length': '0' } });
    }
    if (!(err instanceof AuthUnavailableError)) throw err;
    entry.error = err.message;
    return new Response(null, {
      status: 503,
      headers: { 'Retry-After': String(RETRY_AFTER_SECONDS), 'Content-Length': '0' },
    });
  } finally {
    // Autodiscover opens no backends: the check's login is let go at once.
    scope.end();
  }
  if (!user) return unauthorized(challengeFor(deps.config.authMode, REALM));

  const text = await c.req.text();
  let request: AutodiscoverRequest;
  if (text.trim() === '') {
    request = {
      // The proven user: for a token, the claim that verified, not the one the request carried.
      email: primaryAddress(user.login, deps.config.mailDomain) ?? user.login,
      schema: MOBILESYNC_RESPONSE_SCHEMA,
    };
  } else {
    try {
      // saxes is loaded on the first Autodiscover request with a body, not at start-up.
      request = parseRequest((await import('saxes')).SaxesParser, text);
    } catch (err) {
      entry.error = err instanceof Error ? err.message : String(err);
      entry.status = 600;
      return xml(errorDocument(600, 'Invalid Request'));
    }
  }
  if (!request.email) {
    entry.status = 600;
    return xml(errorDocument(600, 'Invalid Request'));
  }
  if (request.schema !== MOBILESYNC_RESPONSE_SCHEMA) {
    entry.status = 601;
    return xml(errorDocument(601, 'Provider is not available for the requested schema'));
  }
  entry.status = 1;
  let base = deps.config.publicUrl;
  if (!base) {
    base = `https://${new URL(c.req.url).host}`;
    entry.publicUrl = 'unset';
  }
  return xml(successDocument(request.email, `${base}${ACTIVESYNC_PATH}`));
}

/** `<Autodiscover><Request><EMailAddress>…</EMailAddress><AcceptableResponseSchema>…</…></Request></Autodiscover>`. */
function parseRequest(SaxesParser: typeof import('saxes').SaxesParser, text: string): AutodiscoverRequest {
  const parser = new SaxesParser({ xmlns: true });
  const path: string[] = [];
  const found: AutodiscoverRequest = { email: undefined, schema: undefined };
  let current = '';
  parser.on('opentag', (node) => {
    path.push(node.local);
    current = '';
    if (path.length === 1 && node.local !== 'Autodiscover')
      throw new InvalidRequest(`the root element is ${node.local}`);
  });
  parser.on('text', (t) => (current += t));
  parser.on('closetag', () => {
    const where = path.join('/');
    if (where === 'Autodiscover/Request/EMailAddress') found.email = current.trim() || undefined;
    if (where === 'Autodiscover/Request/AcceptableResponseSchema') found.schema = current.trim() || undefined;
    path.pop();
    current = '';
  });
  parser.on('doctype', () => {
    throw new InvalidRequest('a DOCTYPE is not accepted');
  });
  parser.write(text).close();
  if (found.schema === undefined && found.email === undefined) throw new InvalidRequest('no Request with EMailAddress');
  if (found.schema === undefined) throw new InvalidRequest('no AcceptableResponseSchema');
  return found;
}

function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

function successDocument(email: string, url: string): string {
  const e = escapeXml(email);
  const u = escapeXml(url);
  return `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="${RESPONSE_NAMESPACE}">
  <Response xmlns="${MOBILESYNC_RESPONSE_SCHEMA}">
    <Culture>en:us</Culture>
    <User>
      <DisplayName>${e}</DisplayName>
      <EMailAddress>${e}</EMailAddress>
    </User>
    <Action>
      <Settings>
        <Server>
          <Type>MobileSync</Type>
          <Url>${u}</Url>
          <Name>${u}</Name>
        </Server>
      </Settings>
    </Action>
  </Response>
</Autodiscover>
`;
}

/** The generic error response (MS-ASCMD §6.4): Time and Id identify the error in the server's logs. */
function errorDocument(code: 600 | 601, message: string): string {
  const now = new Date();
  const time = `${now.toISOString().slice(11, 23)}0000`;
  const id = crypto.getRandomValues(new Uint32Array(1))[0]!;
  return `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="${RESPONSE_NAMESPACE}">
  <Response>
    <Error Time="${time}" Id="${id}">
      <ErrorCode>${code}</ErrorCode>
      <Message>${escapeXml(message)}</Message>
      <DebugData />
    </Error>
  </Response>
</Autodiscover>
`;
}

function xml(body: string): Response {
  const bytes = new TextEncoder().encode(body);
  return new Response(bytes, {
    status: 200,
    headers: { 'Content-Type': XML_TYPE, 'Content-Length': String(bytes.length), 'Cache-Control': 'private' },
  });
}

function unauthorized(challenge: Record<string, string> = basicChallenge(REALM)): Response {
  return new Response(null, { status: 401, headers: { ...challenge, 'Content-Length': '0' } });
}
