/**
 * AWS Lambda runtime (serverless.yml, infra/aws/): two functions from one bundle.
 *
 * - `handler`: the app behind a Lambda Function URL (payload format 2.0) through `hono/aws-lambda` (Hono 5 moves it to
 *   the package `@hono/aws-lambda`, same API). WBXML is binary: the Function URL hands it over base64-encoded
 *   (`isBase64Encoded`), the adapter decodes it to bytes, and answers whose Content-Type is not text go back
 *   base64-encoded, so bodies cross byte for byte.
 * - `watch`: the push watcher (src/push/idle-watcher.ts) for one scheduled run. It holds an IMAP IDLE connection per
 *   leased account for up to 14 minutes (Lambda stops a run at 15), then closes them. Runs are scheduled a little more
 *   often than they last (every 13 minutes), so two overlap for a minute and no change falls in a gap; the next run's
 *   first check catches up on anything its predecessor could not see.
 *
 * Settings are the environment variables of src/config.ts, with Lambda's own defaults (LAMBDA_DEFAULTS): one tenant
 * per stack (infra/aws/), or several from TENANTS. State lives in one DynamoDB table (DYNAMODB_TABLE); the deployment
 * template creates it, with TTL on `ttl`.
 * The watcher logs in as IMAP_MASTER_USER or with the password a Ping sealed under CREDENTIAL_KEY: a password held
 * in memory, as on Node, would not survive from the HTTP function to the watcher function.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { createHash, timingSafeEqual } from 'node:crypto';
import { handle, type APIGatewayProxyResult, type LambdaContext, type LambdaEvent } from 'hono/aws-lambda';
import { buildApp, watchedTenants } from '../app/build.ts';
import { nodeTrustStore } from './node-trust-store.ts';
import { pooledImapSessions } from '../backends/imap/sessions.ts';
import { ConfigError, type ServerConfig } from '../config.ts';
import { stdoutLog, type LogSink } from '../log.ts';
import { PushHub } from '../push/feed.ts';
import { HEARTBEAT_CAPS } from '../push/wait.ts';
import { runIdleWatcher } from '../push/idle-watcher.ts';
import { createStateTable, DynamoDbStateStore } from '../state/dynamodb/store.ts';
import { LEASE_SHARDS, type StateStore } from '../state/types.ts';
import { loadTenants } from '../tenants/settings.ts';
import { instrumentedStateStore } from '../state/instrumented.ts';
import { addMetricsSink } from '../util/metrics.ts';
import { MetricsBatch } from './metrics-batch.ts';
import { emfDocuments } from './metrics-emf.ts';
import { awsCredentialsOf, SecretRefreshError, SecretSettings, type SecretSettingsOptions } from './secret-settings.ts';

/**
 * The largest answer budget (MAX_RESPONSE_BYTES) a Lambda can return: a buffered response (Function URL, API
 * Gateway) carries at most 6 MB of payload, a binary body travels base64-encoded (a third larger), and the WBXML
 * around the messages and the JSON envelope need room too: 4,000,000 bytes of messages become at most ~5.4 MB.
 */
export const LAMBDA_MAX_RESPONSE_BYTES = 4_000_000;

/**
 * Lambda's defaults, where the environment says nothing:
 * - a Ping's heartbeat stays under the Function URL's 900 s limit (DESIGN §5.1);
 * - state in DynamoDB (a function's disk does not outlive it);
 * - a request body of at most 4.5 MB: a Function URL takes 6 MB of payload, and base64 makes bytes a third larger;
 * - an answer budget that fits the 6 MB response (LAMBDA_MAX_RESPONSE_BYTES); a larger setting is lowered to it.
 */
export const LAMBDA_DEFAULTS: Readonly<Record<string, string>> = {
  PING_MAX_HEARTBEAT: String(HEARTBEAT_CAPS.lambdaFunctionUrl),
  STATE_STORE: 'dynamodb',
  MAX_REQUEST_BYTES: String(4_500_000),
  MAX_RESPONSE_BYTES: String(LAMBDA_MAX_RESPONSE_BYTES),
};

/**
 * The header CloudFront adds to every request it forwards (ORIGIN_VERIFY_HEADER, a runtime setting) and its value
 * (ORIGIN_VERIFY_SECRET, kept in Secrets Manager). When set, a request without it came to the Function URL directly,
 * past CloudFront, and is refused: it could otherwise name its own client address in CLIENT_IP_HEADER.
 */
export interface OriginVerification {
  header: string;
  secret: string;
}

/** The longest watcher run: Lambda ends any invocation at 15 minutes. */
export const WATCH_RUN_MS = 14 * 60_000;
/** Time kept back at the end of a run to close the IMAP connections before Lambda's timeout. */
const WATCH_STOP_MARGIN_MS = 30_000;

/** A Function URL response (the adapter's result type). */
export type FunctionUrlResult = APIGatewayProxyResult;

/** The scheduled event: EventBridge's, or the `input` of a schedule naming the lease shards this run watches. */
export interface WatchEvent {
  shards?: number[];
}

export interface WatchReport {
  /** The tenants watched (one per stack, or those of TENANTS). */
  tenants: number;
  shards: number;
  ms: number;
}

export interface LambdaRuntimeOptions {
  /** The settings (process.env in Lambda). */
  env: Record<string, string | undefined>;
  log?: LogSink;
  /**
   * Where the CloudWatch embedded metric format lines go (metrics-emf.ts): stdout, where Lambda's log collector
   * extracts them, unless given.
   */
  metricsOut?: (line: string) => void;
  /** The watcher's timings (src/push/idle-watcher.ts IdleWatcherOptions); tests shorten them. */
  watcher?: { leaseScanMs?: number; checkIntervalMs?: number; durationMs?: number };
}

export interface LambdaRuntime {
  /** The settings of the (first) tenant: process-wide ones such as the state table are the same for all. */
  config: ServerConfig;
  state: StateStore;
  http(event: LambdaEvent, context?: LambdaContext): Promise<FunctionUrlResult>;
  watch(event?: WatchEvent, context?: Pick<LambdaContext, 'getRemainingTimeInMillis'>): Promise<WatchReport>;
}

/** Both handlers over one configuration and one state store (one per Lambda container, built on its first event). */
export function createLambdaRuntime(options: LambdaRuntimeOptions): LambdaRuntime {
  const log = options.log ?? stdoutLog;
  // One tenant from the environment (a stack per tenant), or several from TENANTS (src/tenants/settings.ts).
  const tenants = loadTenants(options.env, { runtimeDefaults: LAMBDA_DEFAULTS });
  for (const entry of tenants.entries) {
    if (entry.config.maxResponseBytes <= LAMBDA_MAX_RESPONSE_BYTES) continue;
    // Said at start-up: the setting cannot be honoured, answers that large would fail as a whole.
    log({
      time: new Date().toISOString(),
      tenant: entry.name,
      event: 'max-response-bytes-lowered',
      configured: entry.config.maxResponseBytes,
      used: LAMBDA_MAX_RESPONSE_BYTES,
      reason: 'a Lambda response carries at most 6 MB, base64 included',
    });
    entry.config.maxResponseBytes = LAMBDA_MAX_RESPONSE_BYTES;
  }
  const origin = originVerificationOf(options.env);
  const config = tenants.entries[0]!.config;
  if (config.state.kind !== 'dynamodb')
    throw new ConfigError('invalid configuration: STATE_STORE must be dynamodb on Lambda');
  const { table, endpoint, region } = config.state;
  // Lambda puts the function role's credentials in the environment; the SDK's default chain finds them in process.env,
  // and this finds them in the environment this runtime was given.
  const credentials = awsCredentialsOf(options.env);
  const client = new DynamoDBClient({
    ...(endpoint ? { endpoint } : {}),
    ...(region ? { region } : {}),
    ...(credentials ? { credentials } : {}),
  });
  // Every state call is counted (state/instrumented.ts); the metrics of each invocation go out as EMF at its end.
  const state = instrumentedStateStore(new DynamoDbStateStore({ client, table }));
  const batch = new MetricsBatch();
  addMetricsSink(batch);
  const metricsOut = options.metricsOut ?? ((line: string) => console.log(line));
  const flushMetrics = (): void => {
    for (const document of emfDocuments(batch.drain())) metricsOut(JSON.stringify(document));
  };
  // With an endpoint (dynalite, a local emulator) the table is ours to create; in AWS the stack template owns it.
  let ready: Promise<void> | undefined = endpoint ? undefined : Promise.resolve();
  const tableReady = (): Promise<void> =>
    (ready ??= createStateTable(client, table).catch((err: unknown) => {
      ready = undefined;
      throw err;
    }));

  // A warm container reuses a user's logged-in IMAP connection for the next request, as Node does.
  const { app } = buildApp({
    settings: tenants,
    state,
    imapSessions: (imap) => pooledImapSessions(imap),
    log,
    // The watcher is another function: a password this one holds in memory never reaches it.
    pushWatcher: 'watch-function',
    // SMIME_TRUST_STORE may name a file of the package; unset, Node's own roots.
    trustStore: nodeTrustStore,
  });
  const serve = handle(app);

  return {
    config,
    state,
    async http(event, context) {
      if (origin && !originVerified(event, origin)) {
        log({
          time: new Date().toISOString(),
          tenant: config.tenant,
          event: 'origin-refused',
          status: 403,
          reason: `no valid ${origin.header}: not through CloudFront`,
        });
        return {
          statusCode: 403,
          headers: { 'content-type': 'text/plain' },
          body: 'Forbidden\n',
          isBase64Encoded: false,
        };
      }
      await tableReady();
      try {
        // The adapter passes its context to app.fetch as the Hono env; the app reads nothing from it.
        return await serve(event, context as LambdaContext);
      } finally {
        flushMetrics();
      }
    },
    async watch(event, context) {
      await tableReady();
      const started = Date.now();
      const remaining = context?.getRemainingTimeInMillis?.() ?? WATCH_RUN_MS + WATCH_STOP_MARGIN_MS;
      const durationMs =
        options.watcher?.durationMs ?? Math.max(0, Math.min(WATCH_RUN_MS, remaining - WATCH_STOP_MARGIN_MS));
      const shards = event?.shards?.filter((s) => Number.isInteger(s) && s >= 0 && s < LEASE_SHARDS);
      // The watcher is its own function: no Ping of this process announces itself, the lease scan finds them all.
      const hub = new PushHub();
      await Promise.all(
        watchedTenants(tenants, state, log).map((watched) =>
          runIdleWatcher({
            ...watched,
            hub,
            ...(shards?.length ? { shards } : {}),
            ...(options.watcher?.leaseScanMs ? { leaseScanMs: options.watcher.leaseScanMs } : {}),
            ...(options.watcher?.checkIntervalMs ? { checkIntervalMs: options.watcher.checkIntervalMs } : {}),
            durationMs,
          }),
        ),
      );
      const report: WatchReport = {
        tenants: tenants.entries.length,
        shards: shards?.length || LEASE_SHARDS,
        ms: Date.now() - started,
      };
      log({
        time: new Date().toISOString(),
        tenant: tenants.entries.map((e) => e.name).join(','),
        event: 'watch-run',
        ...report,
      });
      flushMetrics();
      return report;
    },
  };
}

/** ORIGIN_VERIFY_HEADER and ORIGIN_VERIFY_SECRET: both, or neither (one alone stops start-up). */
export function originVerificationOf(env: Record<string, string | undefined>): OriginVerification | undefined {
  const header = env.ORIGIN_VERIFY_HEADER?.trim();
  const secret = env.ORIGIN_VERIFY_SECRET?.trim();
  if (!header && !secret) return undefined;
  if (!header || !secret)
    throw new ConfigError(
      'invalid configuration: ORIGIN_VERIFY_HEADER and ORIGIN_VERIFY_SECRET go together (the secret from SECRET_ARN)',
    );
  if (!/^[A-Za-z0-9-]+$/.test(header))
    throw new ConfigError('invalid configuration: ORIGIN_VERIFY_HEADER must be a header name');
  if (secret.length < 32)
    throw new ConfigError('invalid configuration: ORIGIN_VERIFY_SECRET must be at least 32 characters');
  return { header: header.toLowerCase(), secret };
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Compared in constant time, as the admin token is (hashes of both sides, every byte). */
function originVerified(event: LambdaEvent, origin: OriginVerification): boolean {
  const headers = (event as { headers?: Record<string, string | undefined> }).headers ?? {};
  const sent = Object.entries(headers).find(([name]) => name.toLowerCase() === origin.header)?.[1];
  return sent !== undefined && timingSafeEqual(digest(sent), digest(origin.secret));
}

export interface LambdaHandlerOptions {
  /** The settings (process.env in Lambda); SECRET_ARN names secrets that add more (src/runtimes/secret-settings.ts). */
  env: Record<string, string | undefined>;
  log?: LogSink;
  /** The Secrets Manager client and clock (tests). */
  secrets?: Omit<SecretSettingsOptions, 'env'>;
  watcher?: LambdaRuntimeOptions['watcher'];
}

export interface LambdaHandlers {
  handler(event: LambdaEvent, context: LambdaContext): Promise<FunctionUrlResult>;
  watch(event: WatchEvent | undefined, context: LambdaContext): Promise<WatchReport>;
  /** The runtime the next event gets (built, or rebuilt after a secret changed); undefined when not configured. */
  runtime(): Promise<LambdaRuntime | undefined>;
  secrets: SecretSettings;
}

/**
 * The exported handlers over one container's runtime, built on the first event from the environment and the secrets
 * SECRET_ARN names (read then, kept in memory). When a secret is read again (SECRET_REFRESH_MS, or sooner after the
 * watcher's master login was refused) and has changed, the next event gets a runtime built with the new values.
 */
export function lambdaHandlers(options: LambdaHandlerOptions): LambdaHandlers {
  const log = options.log ?? stdoutLog;
  const secrets = new SecretSettings({ env: options.env, ...options.secrets });
  let built: { runtime: LambdaRuntime; version: string } | undefined;
  // A refused master login may be a rotated password: read the secret again at the next event.
  const sink: LogSink = (entry) => {
    if (entry.event === 'watch-error' && entry.loginRefused) secrets.markStale();
    log(entry);
  };

  async function current(): Promise<LambdaRuntime | undefined> {
    try {
      let read: { env: Record<string, string | undefined>; version: string };
      try {
        read = await secrets.environment();
      } catch (err) {
        if (!(err instanceof SecretRefreshError) || !built) throw err;
        log({ time: new Date().toISOString(), event: 'secret-refresh-error', error: String(err.message) });
        return built.runtime;
      }
      if (built?.version === read.version) return built.runtime;
      const first = !built;
      built = {
        runtime: createLambdaRuntime({
          env: read.env,
          log: sink,
          ...(options.watcher ? { watcher: options.watcher } : {}),
        }),
        version: read.version,
      };
      if (secrets.ids.length)
        log({
          time: new Date().toISOString(),
          event: first ? 'secrets-read' : 'secrets-changed',
          secrets: secrets.ids.length,
        });
      return built.runtime;
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      log({ time: new Date().toISOString(), event: 'config-error', error: err.message });
      return undefined;
    }
  }

  return {
    secrets,
    runtime: current,
    async handler(event, context) {
      const runtime = await current();
      // A deployment without its settings: the log names what is missing; the caller learns only that it is.
      if (!runtime)
        return {
          statusCode: 500,
          headers: { 'content-type': 'text/plain' },
          body: 'activesync-edge: not configured\n',
          isBase64Encoded: false,
        };
      return runtime.http(event, context);
    },
    async watch(event, context) {
      const runtime = await current();
      // Unlike a device's request, a run without settings fails: the failed invocation is what the watcher alarm
      // counts.
      if (!runtime)
        throw new ConfigError('activesync-edge: not configured (the config-error log line names what is missing)');
      return runtime.watch(event, context);
    },
  };
}

/**
 * The container's handlers. The environment is read on the first event, and again on every event until it makes a
 * runtime: a deployment missing a setting logs which one per event.
 */
const container = lambdaHandlers({ env: process.env });

/** The Function URL handler (serverless.yml `functions.api`). */
export const handler = container.handler;

/** The scheduled watcher (serverless.yml `functions.watcher`). */
export const watch = container.watch;
