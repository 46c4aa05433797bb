/**
 * The ActiveSync endpoint, `/Microsoft-Server-ActiveSync`: OPTIONS, and POST from request line to response, with
 * the one log line per request. Command logic lives in src/commands/; this file only frames it.
 */
import type { Context } from 'hono';
import type { CommandRegistry } from '../commands/registry.ts';
import type { CommandDefinition, CommandResult } from '../protocol/command.ts';
import type { ServerConfig } from '../config.ts';
import type { LogEntry, LogSink } from '../log.ts';
import type { BackendFactory, RequestBackends } from '../backends/types.ts';
import type { DeviceRecord, DeviceScope, StateStore } from '../state/types.ts';
import {
  accessRefusalResponse,
  checkDeviceAccess,
  loadAccessRules,
  type AccessDecision,
} from '../devices/access-rules.ts';
import { decodeWbxmlYielding, WbxmlDecodeError } from '../wbxml/decoder.ts';
import { encodeWbxml } from '../wbxml/encoder.ts';
import { child, textOf, type WbxmlElement } from '../wbxml/tree.ts';
import { basicChallenge, challengeFor, parseAuthorization, schemeAllowed } from '../protocol/auth.ts';
import { AuthUnavailableError, type AuthenticatedUser, type Credentials } from '../backends/auth.ts';
import { withTenant, type TenantRouter, type TenantServices } from './tenants.ts';
import { clientAddress, guardedAuthenticate } from '../protocol/throttle.ts';
import { takeLargeBodySlot, takeRequestSlot, type RequestSlot } from '../protocol/request-slots.ts';
import { tenantAuthenticator } from '../protocol/bearer.ts';
import { commandByName } from '../protocol/commands.ts';
import { deviceScope, recordDeviceSeen } from '../devices/seen.ts';
import { HttpError } from '../protocol/errors.ts';
import { provisioningRefusal, refusalResponse } from '../protocol/policy.ts';
import { parseActiveSyncRequest, type ActiveSyncRequest } from '../protocol/request.ts';
import { SUPPORTED_VERSIONS } from '../protocol/versions.ts';
import { concatBytes } from '../util/bounded-read.ts';
import { type Settled, settle, settledValue } from '../util/settled.ts';
import { readAhead } from '../state/read-ahead.ts';

export interface ActiveSyncDeps extends TenantServices {
  commands: CommandRegistry;
  state: StateStore;
  log: LogSink;
  /**
   * Several tenants (src/tenants/): each request runs with its tenant's config and backends in place of the ones
   * above, which then serve only what comes before the tenant is known.
   */
  tenants?: TenantRouter;
  /** After each request's log line is written (the admin API's counters); must not throw. */
  onRequestLogged?(request: { entry: LogEntry; tenant: string; started: number }): Promise<void>;
  /**
   * A device has just become blocked or quarantined by the access rules (the access notice); `note` adds fields to
   * the request's log line. A rejection is logged; the request's answer stands.
   */
  onDeviceHeld?(event: DeviceHeld): Promise<void>;
  /**
   * After each authenticated POST, before its log line (the protocol capture); a rejection is noted in the log line
   * (`captureFailed`), the answer stands.
   */
  onExchange?(exchange: Exchange): Promise<void>;
}

/** One authenticated request and its answer. The body is the request's as read (undefined before it was read). */
export interface Exchange {
  device: DeviceScope;
  started: number;
  entry: LogEntry;
  request: Request;
  body: Uint8Array | undefined;
  response: Response;
}

export interface DeviceHeld {
  backends: BackendFactory;
  user: AuthenticatedUser;
  config: ServerConfig;
  decision: AccessDecision;
  device: DeviceRecord;
  note(fields: LogEntry): void;
}

export const WBXML_CONTENT_TYPE = 'application/vnd.ms-sync.wbxml';
const SERVER_VERSION: string = SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.length - 1]!;
const REALM = 'ActiveSync';
/** Seconds a client should wait before retrying when a backend is unavailable. */
const RETRY_AFTER_SECONDS = 30;

/** Headers on every ActiveSync response. */
function baseHeaders(): Record<string, string> {
  return { 'MS-Server-ActiveSync': SERVER_VERSION, 'Cache-Control': 'private' };
}

/**
 * OPTIONS: the versions and the commands this server implements (MS-ASHTTP §2.2.4). As Exchange does, it needs
 * credentials: without them the answer is 401 with the challenge (RFC 7235 §3.1), which clients and
 * Microsoft's Remote Connectivity Analyzer expect before they send any; the credentials are checked, so that a client
 * setting up an account with a wrong password learns it here.
 */
export function handleOptions(c: Context, deps: ActiveSyncDeps): Promise<Response> {
  return logged(deps, { cmd: 'OPTIONS' }, async (entry) => {
    const header = c.req.header('authorization');
    if (header === undefined) throw new HttpError(401, 'no credentials', challengeFor(deps.config.authMode, REALM));
    const url = new URL(c.req.url);
    const credentials = parseAuthorization(header, url.searchParams.get('User') ?? undefined);
    entry.user = credentials?.login;
    const tenant = withTenant(deps, url.host, credentials);
    entry.tenant = tenant.config.tenant;
    const scope = tenant.backends.forRequest();
    try {
      if (!credentials || !(await authenticateFor(tenant, scope, credentials, clientAddress(c, tenant.config))))
        throw new HttpError(401, 'authentication failed', challengeFor(tenant.config.authMode, REALM));
    } finally {
      scope.end();
    }
    return new Response(null, {
      status: 200,
      headers: {
        ...baseHeaders(),
        Allow: 'OPTIONS,POST',
        Public: 'OPTIONS,POST',
        'MS-ASProtocolVersions': SUPPORTED_VERSIONS.join(','),
        'MS-ASProtocolCommands': deps.commands.names().join(','),
        'Content-Length': '0',
      },
    });
  });
}

export function handlePost(c: Context, deps: ActiveSyncDeps): Promise<Response> {
  // Filled in as the request is authenticated and read, for the exchange hook.
  const seen: { device?: DeviceScope; body?: Uint8Array } = {};
  const onExchange = deps.onExchange;
  return logged(
    deps,
    {},
    (entry) => serve(c, deps, entry, seen),
    onExchange &&
      ((entry, started, response) =>
        seen.device
          ? onExchange({ device: seen.device, started, entry, request: c.req.raw, body: seen.body, response })
          : Promise.resolve()),
  );
}

/** Runs one request and writes its log line, whatever happens. */
async function logged(
  deps: ActiveSyncDeps,
  fields: LogEntry,
  run: (entry: LogEntry) => Promise<Response>,
  exchanged?: (entry: LogEntry, started: number, response: Response) => Promise<void>,
): Promise<Response> {
  const started = Date.now();
  // With several tenants the line names the request's once it is known (serve), none for a request that has none.
  const entry: LogEntry = {
    time: new Date(started).toISOString(),
    tenant: deps.tenants ? undefined : deps.config.tenant,
    ...fields,
  };
  let response: Response;
  try {
    response = await run(entry);
  } catch (err) {
    response = errorResponse(err, entry);
  }
  entry.http = response.status;
  entry.ms = Date.now() - started;
  await exchanged?.(entry, started, response).catch((err: unknown) => {
    entry.captureFailed = describeError(err);
  });
  deps.log(entry);
  await deps.onRequestLogged?.({
    entry,
    tenant: typeof entry.tenant === 'string' ? entry.tenant : deps.config.tenant,
    started,
  });
  return response;
}

/**
 * Whether the tenant's AUTH_MODE admits the scheme and its backend the credentials; repeated failures are throttled
 * (protocol/throttle.ts: 503 without asking the backend).
 */
async function authenticateFor(
  tenant: ActiveSyncDeps,
  scope: RequestBackends,
  credentials: Credentials,
  address: string | undefined,
  defer?: (work: () => Promise<void>) => void,
): Promise<AuthenticatedUser | undefined> {
  if (!schemeAllowed(tenant.config.authMode, credentials)) return undefined;
  // A token is verified with the tenant's identity provider first (protocol/bearer.ts); then the mail server checks it.
  return guardedAuthenticate(
    {
      config: tenant.config,
      state: tenant.state,
      authenticator: tenantAuthenticator(tenant.config, scope.authenticator),
      ...(defer ? { defer } : {}),
    },
    credentials,
    address,
  );
}

async function serve(
  c: Context,
  anyTenant: ActiveSyncDeps,
  entry: LogEntry,
  seen: { device?: DeviceScope; body?: Uint8Array },
): Promise<Response> {
  const url = new URL(c.req.url);
  const request = parseActiveSyncRequest(url, c.req.raw.headers);
  // Bearer: the user is the token's claim, else the request's User parameter (protocol/auth.ts).
  const credentials = parseAuthorization(c.req.header('authorization'), request.user);
  entry.user = credentials?.login;
  // From here on everything is the tenant's own: settings, backends, and the tenant in every state key.
  const deps = withTenant(anyTenant, url.host, credentials);
  entry.tenant = deps.config.tenant;
  Object.assign(entry, {
    // Only the protocol's names, so that no request can add a name of its own to the logs and the counters.
    cmd: commandByName(request.command) ?? 'unknown',
    deviceId: request.deviceId,
    deviceType: request.deviceType,
    version: request.version,
  });
  const challenge = challengeFor(deps.config.authMode, REALM);
  if (!credentials) throw new HttpError(401, 'no credentials', challenge);
  // The check and the command's backends share one login (backends/types.ts RequestBackends).
  const scope = deps.backends.forRequest();
  try {
    return await serveAuthenticated(c, deps, scope, request, credentials, entry, seen);
  } finally {
    scope.end();
  }
}

async function serveAuthenticated(
  c: Context,
  deps: ActiveSyncDeps,
  scope: RequestBackends,
  request: ActiveSyncRequest,
  credentials: Credentials,
  entry: LogEntry,
  seen: { device?: DeviceScope; body?: Uint8Array },
): Promise<Response> {
  const challenge = challengeFor(deps.config.authMode, REALM);
  // State work of the login check that decides nothing here: it starts with the request's first reads (below).
  const deferred: (() => Promise<void>)[] = [];
  const user = await authenticateFor(deps, scope, credentials, clientAddress(c, deps.config), (work) =>
    deferred.push(work),
  );
  if (!user) throw new HttpError(401, 'authentication failed', challenge);
  let afterLogin: Promise<unknown> | undefined;
  const startAfterLogin = (): void => {
    afterLogin ??= Promise.all(deferred.map((work) => work())).catch((err: unknown) => {
      entry.loginStateFailed = describeError(err);
    });
  };
  try {
    return await serveUser(c, deps, { scope, request, user, entry, seen, startAfterLogin });
  } finally {
    startAfterLogin();
    await afterLogin;
  }
}

/** The request of an authenticated user: its slot, its body, the device, then the command. */
async function serveUser(
  c: Context,
  deps: ActiveSyncDeps,
  authenticated: {
    scope: RequestBackends;
    request: ActiveSyncRequest;
    user: AuthenticatedUser;
    entry: LogEntry;
    seen: { device?: DeviceScope; body?: Uint8Array };
    startAfterLogin(): void;
  },
): Promise<Response> {
  const { scope, request, user, entry, seen } = authenticated;
  const name = commandByName(request.command);
  if (!name) throw new HttpError(400, `unknown command ${JSON.stringify(request.command.slice(0, 32))}`);
  const device = deviceScope(deps.config.tenant, user.login, request.deviceId);
  seen.device = device;

  // One user's requests at once in this process (protocol/request-slots.ts): over the cap 503 before the body is read,
  // and before any state is read or written, so that a refused request costs its login and no more.
  const { tenant } = deps.config;
  const slot = takeRequestSlot(tenant, user.login, deps.config.maxConcurrentRequestsPerUser);
  // Taken when the body turns out to be large (readBody), given back once it is decoded (serveCommand), or at the end.
  let releaseLargeBody = (): void => {};
  const largeBody: LargeBodyAdmission = {
    bytes: deps.config.largeBodies.bytes,
    admit() {
      releaseLargeBody = takeLargeBodySlot(tenant, user.login, deps.config.largeBodies.perUser);
    },
    release: () => releaseLargeBody(),
  };
  try {
    // The command's module loads (on its first request, CommandRegistry.registerModule) while the body is read.
    const definition = deps.commands.get(name);
    // Its failure is awaited below; until then (readBody may throw first) it must not count as unhandled.
    definition.catch(() => undefined);
    // The body is read up to the command's limit. It is decoded only once the device has passed the access rules and
    // the policy check, so that a blocked or unprovisioned device costs no tree; but for a command that names its
    // reads from it (readAhead) now, its failure kept for after the checks.
    const limit = bodyLimitOf(name, deps.config);
    const rawBody = await readBody(c.req.raw, limit, largeBody);
    seen.body = rawBody;
    const command = await definition;
    const contentType = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    let decoding: Promise<Settled<WbxmlElement | undefined>> | undefined;
    const decode = (): Promise<WbxmlElement | undefined> => {
      decoding ??= settle(decodeBody(rawBody, contentType, limit, deps.config.wbxmlBudget.maxElements));
      return decoding.then(settledValue);
    };
    const early = command?.readAhead ? await decode().catch(() => undefined) : undefined;

    // One turn: the device, the tenant's access rules (when this process's copy is old), the login check's left-over
    // and the command's reads all go out together (state/read-ahead.ts).
    const ahead = readAhead(deps.state);
    const known = recordDeviceSeen(ahead.state, device, request);
    loadAccessRules(deps.state, tenant).catch(() => undefined);
    command?.readAhead?.(early, ahead.of(device));
    authenticated.startAfterLogin();
    const record = await known;
    if (!command) throw new HttpError(501, `command ${name} is not implemented`);
    entry.cmd = name;
    return await serveCommand(c, deps, {
      scope,
      request,
      user,
      device,
      known: record,
      command,
      entry,
      seen,
      slot,
      state: ahead.state,
      largeBody,
      rawBody,
      contentType,
      decode,
    });
  } finally {
    releaseLargeBody();
    slot.release();
  }
}

/** An authenticated request of a known command that has its slot and its body: what serveCommand works with. */
interface AdmittedRequest {
  scope: RequestBackends;
  request: ActiveSyncRequest;
  user: AuthenticatedUser;
  device: DeviceScope;
  known: DeviceRecord;
  command: CommandDefinition;
  entry: LogEntry;
  seen: { device?: DeviceScope; body?: Uint8Array };
  slot: RequestSlot;
  /** The request's view of the state store, with the reads issued ahead (state/read-ahead.ts). */
  state: StateStore;
  largeBody: LargeBodyAdmission;
  rawBody: Uint8Array;
  contentType: string;
  /** The body's tree (decoded once), or its failure as an HttpError. */
  decode(): Promise<WbxmlElement | undefined>;
}

/**
 * A body longer than `bytes` is large: `admit` counts it under the user's cap, or throws TooManyRequestsError;
 * `release` gives its place back (a second call, or one for a body never admitted, does nothing).
 */
interface LargeBodyAdmission {
  bytes: number;
  admit(): void;
  release(): void;
}

/** Holds the device to the access rules and the policy, runs the command. */
async function serveCommand(c: Context, deps: ActiveSyncDeps, admitted: AdmittedRequest): Promise<Response> {
  const { scope, request, user, device, known, command, entry, slot, state, largeBody, rawBody, contentType, decode } =
    admitted;
  const name = command.name;
  const outcome = { ok: true, user } as const;
  // Only a Settings request's body matters to the policy check (it may set DeviceInformation before provisioning).
  const settingsBody = name === 'Settings' ? await decode() : undefined;

  // Device access rules (devices/access-rules.ts): blocked or quarantined devices get Status 129 or HTTP 403.
  const access = await checkDeviceAccess({
    state,
    rulesFrom: deps.state,
    device,
    known,
    login: outcome.user.login,
    command: name,
  });
  if (access.newlyHeld && deps.onDeviceHeld) {
    const held: DeviceHeld = {
      backends: scope.backends,
      user: outcome.user,
      config: deps.config,
      decision: access.decision,
      device: known,
      note: (fields) => Object.assign(entry, fields),
    };
    await deps.onDeviceHeld(held).catch((err: unknown) => {
      entry.deviceHeldFailed = describeError(err);
    });
  }
  if (access.refused) {
    entry.refused = access.decision.state;
    return commandResponse(accessRefusalResponse(request.version, command.responseRoot), entry);
  }

  // X-MS-PolicyKey and remote wipe (protocol/policy.ts): a refused request gets 449 or the command's Status 14x.
  const refusal = await provisioningRefusal({
    mode: deps.config.provisioning,
    policy: deps.config.policy,
    login: outcome.user.login,
    device: known,
    request,
    command: name,
    body: settingsBody,
  });
  if (refusal) {
    entry.refused = refusal;
    return commandResponse(refusalResponse(refusal, request.version, name, command.responseRoot), entry);
  }

  const body = settingsBody ?? (await decode());
  // What makes a large body cost (reading it, decoding it) is done: its place under the user's cap goes back now, not
  // when the command ends, which for a hanging Sync or a Ping is a wait of up to PING_MAX_HEARTBEAT (sync/hanging.ts).
  largeBody.release();
  const result = await runCommand(
    command,
    {
      request,
      user: outcome.user,
      device,
      state,
      backends: scope.backends,
      body,
      rawBody,
      contentType,
      config: deps.config,
      signal: c.req.raw.signal,
      note: (fields) => Object.assign(entry, fields),
      slot,
    },
    entry,
  );
  return commandResponse(result, entry);
}

/**
 * The commands that carry a whole message (MIME, or WBXML with it in `Mime`) may send MAX_REQUEST_BYTES; every other
 * command's body is WBXML of a few kilobytes, held to MAX_WBXML_BYTES.
 */
const MESSAGE_COMMANDS: ReadonlySet<string> = new Set(['SendMail', 'SmartReply', 'SmartForward']);

function bodyLimitOf(command: string, config: ServerConfig): number {
  return MESSAGE_COMMANDS.has(command) ? config.maxRequestBytes : config.wbxmlBudget.maxBytes;
}

/**
 * The request body, refused with 413 (RFC 9110 §15.5.14) once it is longer than `limit`: at once for a declared
 * Content-Length, else as soon as the stream passes it, never buffering more than the limit. A large body is
 * admitted under its user's cap the same way (503 when the user has too many in flight): from its Content-Length
 * before any of it is read, else once the part read passes the threshold.
 */
async function readBody(request: Request, limit: number, large: LargeBodyAdmission): Promise<Uint8Array> {
  const declared = Number(request.headers.get('content-length') ?? Number.NaN);
  if (declared > limit)
    throw new HttpError(413, `request body of ${declared} bytes over the command's limit of ${limit}`);
  let admitted = declared > large.bytes;
  if (admitted) large.admit();
  if (!request.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let length = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    length += value.length;
    if (length > limit) {
      await reader.cancel().catch(() => undefined);
      throw new HttpError(413, `request body over the command's limit of ${limit} bytes`);
    }
    if (!admitted && length > large.bytes) {
      admitted = true;
      try {
        large.admit();
      } catch (err) {
        await reader.cancel().catch(() => undefined);
        throw err;
      }
    }
    chunks.push(value);
  }
  return concatBytes(chunks, length);
}

/**
 * WBXML is decoded within the budget; `message/rfc822` (SendMail ≤ 12.1) is left to the command. An empty body is
 * legal. A body over the budget gets 413, as one over the byte limit does (ActiveSync has no Status for it below
 * the commands' own; MS-ASCMD §2.2.2); a malformed one 400. A large body is decoded in slices with turns of the
 * event loop between them (wbxml/decoder.ts decodeWbxmlYielding), so that other users' requests go on meanwhile; a
 * small one at once.
 */
async function decodeBody(
  raw: Uint8Array,
  contentType: string,
  maxBytes: number,
  maxElements: number,
): Promise<WbxmlElement | undefined> {
  if (raw.length === 0 || contentType === 'message/rfc822') return undefined;
  try {
    return await decodeWbxmlYielding(raw, { maxBytes, maxElements, maxTextBytes: maxBytes });
  } catch (err) {
    if (err instanceof WbxmlDecodeError) throw new HttpError(err.code === 'too-large' ? 413 : 400, err.message);
    throw err;
  }
}

async function runCommand(
  command: CommandDefinition,
  context: Parameters<CommandDefinition['handle']>[0],
  entry: LogEntry,
): Promise<CommandResult> {
  try {
    return await command.handle(context);
  } catch (err) {
    if (err instanceof HttpError) throw err;
    if (err instanceof AuthUnavailableError) throw err;
    const { responseRoot, serverErrorStatus, errors = [] } = command;
    // A typed error the command answers with a Status of its own (CommandDefinition.errors) is no failure.
    const mapped = responseRoot ? errors.find(([type]) => err instanceof type)?.[1] : undefined;
    if (mapped === undefined) entry.error = describeError(err);
    const answer = mapped ?? serverErrorStatus;
    if (!responseRoot || answer === undefined) throw new HttpError(500, 'command failed');
    const status: WbxmlElement = { ns: responseRoot.ns, tag: 'Status', children: [], text: String(answer) };
    return { kind: 'wbxml', body: { ns: responseRoot.ns, tag: responseRoot.tag, children: [status] } };
  }
}

function commandResponse(result: CommandResult, entry: LogEntry): Response {
  switch (result.kind) {
    case 'empty':
      return new Response(null, { status: 200, headers: { ...baseHeaders(), 'Content-Length': '0' } });
    case 'raw':
      return binary(result.bytes, result.contentType);
    case 'wbxml': {
      const status = child(result.body, 'Status');
      if (status) entry.status = Number(textOf(status));
      return binary(encodeWbxml(result.body), WBXML_CONTENT_TYPE);
    }
  }
}

function binary(bytes: Uint8Array, contentType: string): Response {
  return new Response(bytes as Uint8Array<ArrayBuffer>, {
    status: 200,
    headers: { ...baseHeaders(), 'Content-Type': contentType, 'Content-Length': String(bytes.length) },
  });
}

function errorResponse(err: unknown, entry: LogEntry): Response {
  if (err instanceof HttpError) {
    if (err.status === 401) return unauthorized(err.headers);
    if (err.status >= 400) entry.error = err.message;
    return new Response(null, {
      status: err.status,
      headers: { ...baseHeaders(), ...err.headers, 'Content-Length': '0' },
    });
  }
  if (err instanceof AuthUnavailableError) {
    entry.error = err.message;
    return new Response(null, {
      status: 503,
      headers: { ...baseHeaders(), 'Retry-After': String(RETRY_AFTER_SECONDS), 'Content-Length': '0' },
    });
  }
  entry.error = describeError(err);
  return new Response(null, { status: 500, headers: { ...baseHeaders(), 'Content-Length': '0' } });
}

function unauthorized(challenge: Record<string, string> = {}): Response {
  return new Response(null, {
    status: 401,
    headers: { ...baseHeaders(), ...basicChallenge(REALM), ...challenge, 'Content-Length': '0' },
  });
}

/** For the log: the error's class and message, never a stack or request data. */
function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
