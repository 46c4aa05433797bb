/**
 * Settings from environment variables. The names are an interface other tooling depends on: keep them.
 * A missing or malformed required setting stops start-up with a message that names it.
 */
// A namespace import, so the bundler keeps only the parts of zod used (not every locale): ~65 KiB gzip in the Worker.
import * as z from 'zod';
import { decodeVaultKey } from './tenants/vault.ts';
import type { TrustStore } from './smime/trust-store.ts';
import {
  DEFAULT_POLICY_CONFIG,
  parsePolicyConfig,
  type PolicyConfig,
  type ProvisioningMode,
} from './tenants/policy.ts';

/** Where sync state lives: the embedded SQLite file (default), or a DynamoDB table shared by several instances. */
export type StateStoreConfig =
  | { kind: 'sqlite'; dir: string }
  | { kind: 'dynamodb'; table: string; endpoint: string | undefined; region: string | undefined };

export interface ServerConfig {
  port: number;
  state: StateStoreConfig;
  /**
   * `secure`: implicit TLS; otherwise STARTTLS, required unless `allowPlaintext` (ALLOW_PLAINTEXT_BACKENDS): then
   * plain TCP, no STARTTLS. `sessionMaxAgeMs`: how long a pooled IMAP login may serve before the server checks the
   * credentials again.
   */
  imap: { host: string; port: number; secure: boolean; allowPlaintext?: boolean; sessionMaxAgeMs?: number };
  /**
   * ManageSieve (RFC 5804) for Oof as a vacation script; absent unless SIEVE=on (then Oof is stored, not applied).
   * TLS as `imap`: implicit when `secure`, else STARTTLS (RFC 5804 §2.2) unless `allowPlaintext`.
   */
  sieve?: { host: string; port: number; secure: boolean; allowPlaintext?: boolean };
  /**
   * ALLOW_PLAINTEXT_BACKENDS: IMAP and ManageSieve without TLS when not `secure`, and http:// DAV URLs, are allowed
   * (loopback or private test networks only). Off: each backend must be reached over TLS, or start-up refuses.
   */
  allowPlaintextBackends?: boolean;
  smtp: {
    host: string;
    port: number;
    secure: boolean;
    /**
     * Logging in with the user's credentials: 'optional' when the server offers AUTH (on an encrypted connection),
     * 'required' always (no AUTH offered or no TLS = the message is not sent), 'none' never (a relay that trusts this
     * host).
     */
    auth: 'optional' | 'required' | 'none';
  };
  caldavUrl: string | undefined;
  carddavUrl: string | undefined;
  /**
   * The IMAP folder holding the user's notes (NOTES_FOLDER), one message per note as Apple's Notes writes them over
   * IMAP; offered as the Notes folder (MS-ASNOTE, 14.0+), created when a 14.0+ device first asks for its folders.
   */
  notesFolder: string;
  /**
   * How long one CalDAV/CardDAV request may take, ms (DAV_TIMEOUT_SECONDS); a stalled server then fails the request.
   */
  davTimeoutMs?: number;
  /**
   * Which collection is the device's default Calendar, Tasks and Contacts folder (DAV_DEFAULT_CALENDAR, …): a
   * collection's name (the last segment of its URL) or display name. Unset or not found: the first one listed.
   */
  davDefaults?: DavDefaults;
  /** The directory address book (CardDAV collection URL) that Search GAL and ResolveRecipients query. */
  galUrl: string | undefined;
  /**
   * The only origins a user's login goes to over DAV: those of CALDAV_URL, CARDDAV_URL and GAL_URL, and any listed in
   * DAV_CREDENTIAL_ORIGINS (https only). A principal, home set, redirect or directory FBURL elsewhere gets nothing.
   */
  davCredentialOrigins?: string[];
  /** Largest request body accepted, in bytes: the limit of the commands that carry a message (SendMail, SmartReply, SmartForward). */
  maxRequestBytes: number;
  /**
   * The budget of every other command's WBXML body (MAX_WBXML_BYTES, MAX_WBXML_ELEMENTS): bytes on the wire, and
   * elements the decoder may build. Larger bodies get 413 before their tree is built (app/activesync.ts).
   */
  wbxmlBudget: { maxBytes: number; maxElements: number };
  /**
   * The byte budget of one Sync or ItemOperations answer (MAX_RESPONSE_BYTES): message source loaded for its Adds and
   * Fetches. Past it a Sync ends with MoreAvailable and its remaining Fetches get Status 5 (retry); an ItemOperations
   * Fetch gets Status 11 (too large). The first item of an answer is always served.
   */
  maxResponseBytes: number;
  /**
   * Requests one user may have running at once in this process (MAX_CONCURRENT_REQUESTS_PER_USER; 0: no cap); a
   * Ping or hanging Sync does not count while it waits (protocol/request-slots.ts).
   */
  maxConcurrentRequestsPerUser: number;
  /**
   * Large request bodies one user may have in flight at once in this process: a body over `bytes`
   * (LARGE_BODY_BYTES) counts as large, at most `perUser` (MAX_LARGE_BODIES_PER_USER; 0: no cap) of them per user
   * (protocol/request-slots.ts). One by default: a phone sends its big mail one at a time, and with two in flight an
   * attacker's bodies took other users' p99 over 100 ms (`npm run bench:abuse`: 105 ms with 2, 84–93 ms with 1).
   */
  largeBodies: { bytes: number; perUser: number };
  /** Largest message SendMail, SmartReply and SmartForward send (as composed, in bytes); larger ones get Status 122. */
  maxMessageBytes: number;
  /** The tenant this process serves until multi-tenancy arrives. */
  tenant: string;
  /** The public base URL (scheme and host) devices reach the service at, for Autodiscover answers. */
  publicUrl: string | undefined;
  /** The mail domain of logins without one (`alice` → `alice@<mailDomain>`), for Settings UserInformation. */
  mailDomain: string | undefined;
  /** Per user (login or address, lower case): more addresses the user may send as (SENDER_ALIASES). */
  senderAliases?: Record<string, string[]>;
  /** `strict`: every command needs a provisioned device (Exchange); `loose`: requests without a policy key pass. */
  provisioning: ProvisioningMode;
  /** The device policy (POLICY), with per-user overrides. */
  policy: PolicyConfig;
  /** Push: Ping, hanging Sync and the watcher (src/push/). */
  push: PushConfig;
  /** Bearer token of the admin API (ADMIN_TOKEN, src/admin/api.ts); unset = the API is off. */
  adminToken: string | undefined;
  /** Bearer token of GET /metrics on Node (METRICS_TOKEN, src/runtimes/prometheus.ts); unset = no /metrics. */
  metricsToken?: string | undefined;
  /** How devices authenticate (AUTH_MODE): HTTP Basic passed through, Bearer tokens passed on as XOAUTH2, or both. */
  authMode: AuthMode;
  /** How Bearer tokens are verified (src/protocol/bearer.ts); set whenever AUTH_MODE is `bearer` or `both`. */
  bearer?: BearerConfig;
  /** Throttling of repeated failed logins (src/protocol/throttle.ts). */
  authThrottle: AuthThrottleConfig;
  /** Protocol capture (src/admin/capture.ts); the defaults when absent. */
  capture?: CaptureConfig;
  /**
   * The CAs ValidateCert trusts (SMIME_TRUST_STORE): a PEM bundle's text, or a file path (Node, Lambda); unset: the
   * platform's roots (src/smime/trust-store.ts).
   */
  smimeTrustStore?: string;
  /** That trust store, read at start-up by the app builder (app/build.ts); ValidateCert answers 17 without it. */
  smimeTrust?: TrustStore;
}

/** Protocol capture: what an admin's capture keeps, and how long. */
export interface CaptureConfig {
  /** Bodies and attachments are cut to this many characters (CAPTURE_MAX_BODY_BYTES); 0 keeps only their size. */
  maxBodyBytes: number;
  /** How long captured requests are kept (CAPTURE_RETENTION_HOURS). */
  retentionHours: number;
}

/**
 * Failed logins allowed in a window before logins are refused with 503 (src/protocol/throttle.ts): per user name and
 * client address, per user name from addresses it never signed in from, and per client address.
 */
export interface AuthThrottleConfig {
  /** Failures of one user name from one client address (AUTH_FAIL_LIMIT); 0 turns this count off. */
  pairLimit: number;
  /**
   * Failures of one user name from all addresses (AUTH_FAIL_USER_LIMIT): over it, only addresses the user signed in
   * from lately still get through; 0 turns this count off.
   */
  userLimit: number;
  /** Failures from one client address (AUTH_FAIL_IP_LIMIT): higher, since carriers put many phones behind one. */
  ipLimit: number;
  /** How long a user name and address that signed in stay known (AUTH_KNOWN_LOGIN_DAYS); 0: never known. */
  knownLoginDays: number;
  /** The window, seconds (AUTH_FAIL_WINDOW_SECONDS): it starts at the first failure, and throttling ends with it. */
  windowSeconds: number;
  /**
   * The request header a trusted proxy puts the client's address in (CLIENT_IP_HEADER, e.g. `CF-Connecting-IP`,
   * `X-Forwarded-For`: its last entry); without it, the runtime's own peer address where it has one.
   */
  clientIpHeader: string | undefined;
}

export type AuthMode = 'basic' | 'bearer' | 'both';

/** The tenant's identity provider, as Bearer tokens are checked against it (src/protocol/bearer.ts). */
export interface BearerConfig {
  /** Its published signing keys (BEARER_JWKS_URL). */
  jwksUrl: string;
  /** The `iss` its tokens carry (BEARER_ISSUER). */
  issuer: string;
  /** The `aud` a token must name to be for this service (BEARER_AUDIENCE). */
  audience: string;
  /** The claim that names the mail user (BEARER_USER_CLAIM), e.g. `preferred_username` or `upn`. */
  userClaim: string;
}

/** Preferred default collections, by name or display name (see ServerConfig.davDefaults). */
export interface DavDefaults {
  calendar?: string;
  tasks?: string;
  contacts?: string;
}

/** Push settings (src/push/, DESIGN §5). */
export interface PushConfig {
  /** Longest Ping/Sync heartbeat, seconds: the runtime's cap (HEARTBEAT_CAPS in src/push/wait.ts). */
  maxHeartbeat: number;
  /** Shortest Ping heartbeat, seconds (60 as Exchange; lower only for tests). Never above maxHeartbeat. */
  minHeartbeat: number;
  /** Seconds between two change-feed reads of a waiting Ping or hanging Sync. */
  pollSeconds: number;
  /** The watcher logs in to IMAP as this master user on the user's behalf (no password is kept). */
  master: { user: string; password: string } | undefined;
  /** Without a master user: the 32-byte AES-256-GCM key that seals users' passwords on their watch lease. */
  credentialKey: Uint8Array | undefined;
  /**
   * Where the runtime's push watcher runs: not a setting, the runtime's (app/build.ts AppParts.pushWatcher). It
   * decides whether a password held in memory can reach it (push/credentials.ts watcherLoginGap). Unset: in-process.
   */
  watcher?: PushWatcher;
}

/**
 * `in-process`: Node (the IDLE watcher in the serving process); `cron-sweep`: Workers; `watch-function`: Lambda's
 * scheduled function. Only an in-process watcher can use a password a waiting request holds in memory.
 */
export type PushWatcher = 'in-process' | 'cron-sweep' | 'watch-function';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const flag = z
  .string()
  .trim()
  .toLowerCase()
  .refine((v) => ['true', 'false', '1', '0', 'yes', 'no'].includes(v), 'must be true or false')
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const port = z.coerce.number().int().min(1).max(65535);
const url = z.string().trim().url();
const seconds = z.coerce.number().int().min(1).max(3540);

const schema = z.object({
  PORT: port.default(8080),
  STATE_DIR: z.string().trim().min(1).default('./.data'),
  STATE_STORE: z.enum(['sqlite', 'dynamodb']).default('sqlite'),
  DYNAMODB_TABLE: z.string().trim().min(3).max(255).optional(),
  DYNAMODB_ENDPOINT: url.optional(),
  AWS_REGION: z.string().trim().min(1).optional(),
  IMAP_HOST: z.string({ error: 'is required (the IMAP server users log in to)' }).trim().min(1, 'is required'),
  IMAP_PORT: port.optional(),
  IMAP_SECURE: flag.default(true),
  IMAP_SESSION_MAX_AGE_SECONDS: z.coerce.number().min(1).max(3600).default(300),
  SIEVE: z
    .string()
    .trim()
    .toLowerCase()
    .pipe(z.enum(['on', 'off']))
    .default('off'),
  SIEVE_HOST: z.string().trim().min(1).optional(),
  SIEVE_PORT: port.default(4190),
  // STARTTLS on 4190 (RFC 5804 §2.2), as Dovecot and Cyrus offer it; true: TLS from the first byte.
  SIEVE_SECURE: flag.default(false),
  // Backends in plaintext (IMAP/ManageSieve without STARTTLS, http:// DAV): loopback or private test networks only.
  ALLOW_PLAINTEXT_BACKENDS: flag.default(false),
  SMTP_HOST: z.string().trim().min(1).optional(),
  SMTP_PORT: port.optional(),
  SMTP_SECURE: flag.default(true),
  SMTP_AUTH: z
    .string()
    .trim()
    .toLowerCase()
    .pipe(z.enum(['optional', 'required', 'none']))
    .default('optional'),
  CALDAV_URL: url.optional(),
  CARDDAV_URL: url.optional(),
  NOTES_FOLDER: z.string().trim().min(1).default('Notes'),
  DAV_TIMEOUT_SECONDS: z.coerce.number().min(0.05).max(600).default(30),
  DAV_DEFAULT_CALENDAR: z.string().trim().min(1).optional(),
  DAV_DEFAULT_TASKS: z.string().trim().min(1).optional(),
  DAV_DEFAULT_ADDRESSBOOK: z.string().trim().min(1).optional(),
  GAL_URL: url.optional(),
  // More origins a DAV server may send the user's login to (links and redirects), besides the three URLs' own.
  DAV_CREDENTIAL_ORIGINS: z
    .string()
    .trim()
    .transform((v) => v.split(/[\s,]+/).filter(Boolean))
    .pipe(
      z.array(
        z
          .string()
          .url()
          .refine((v) => /^https:\/\//i.test(v), 'must list https:// origins (a login never goes out in clear)')
          .refine((v) => new URL(v).origin === v.replace(/\/+$/, '').toLowerCase(), 'must list origins only'),
      ),
    )
    .optional(),
  MAX_REQUEST_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(25 * 1024 * 1024),
  MAX_WBXML_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(4 * 1024 * 1024),
  MAX_WBXML_ELEMENTS: z.coerce.number().int().min(100).default(50_000),
  MAX_RESPONSE_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(32 * 1024 * 1024),
  MAX_CONCURRENT_REQUESTS_PER_USER: z.coerce.number().int().min(0).default(10),
  LARGE_BODY_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(1024 * 1024),
  MAX_LARGE_BODIES_PER_USER: z.coerce.number().int().min(0).default(1),
  MAX_MESSAGE_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(25 * 1024 * 1024),
  TENANT: z.string().trim().min(1).default('default'),
  PUBLIC_URL: url.refine((v) => /^https?:\/\//i.test(v), 'must be an http(s) URL').optional(),
  MAIL_DOMAIN: z
    .string()
    .trim()
    .toLowerCase()
    .regex(/^[a-z0-9.-]+\.[a-z0-9-]+$/, 'must be a domain name')
    .optional(),
  // The addresses each user may send as besides their own (login, or login@MAIL_DOMAIN): `alice@example.com=a.smith@
  // example.com,sales@example.com; bob@example.com=b@example.com`.
  SENDER_ALIASES: z
    .string()
    .trim()
    .transform((v, ctx) => {
      const aliases: Record<string, string[]> = {};
      for (const entry of v
        .split(';')
        .map((e) => e.trim())
        .filter(Boolean)) {
        const [user, list] = entry.split('=', 2).map((x) => x.trim().toLowerCase());
        const addresses = (list ?? '').split(/[\s,]+/).filter(Boolean);
        if (!user || addresses.length === 0 || !addresses.every((a) => /^[^\s@<>]+@[^\s@<>]+$/.test(a))) {
          ctx.addIssue({ code: 'custom', message: `"${entry}" is not user=address[,address…]` });
          return z.NEVER;
        }
        aliases[user] = [...(aliases[user] ?? []), ...addresses];
      }
      return aliases;
    })
    .optional(),
  PROVISIONING: z
    .string()
    .trim()
    .toLowerCase()
    .pipe(z.enum(['strict', 'loose']))
    .default('strict'),
  POLICY: z.string().optional(),
  PING_MAX_HEARTBEAT: seconds.default(3540),
  PING_MIN_HEARTBEAT: seconds.default(60),
  PING_POLL_SECONDS: z.coerce.number().min(0.05).max(300).default(20),
  IMAP_MASTER_USER: z.string().trim().min(1).optional(),
  IMAP_MASTER_PASSWORD: z.string().min(1).optional(),
  ADMIN_TOKEN: z.string().trim().min(16, 'must be at least 16 characters (e.g. `openssl rand -hex 32`)').optional(),
  METRICS_TOKEN: z.string().trim().min(16, 'must be at least 16 characters (e.g. `openssl rand -hex 32`)').optional(),
  AUTH_FAIL_LIMIT: z.coerce.number().int().min(0).default(10),
  AUTH_FAIL_USER_LIMIT: z.coerce.number().int().min(0).default(50),
  AUTH_FAIL_IP_LIMIT: z.coerce.number().int().min(0).default(100),
  AUTH_KNOWN_LOGIN_DAYS: z.coerce.number().min(0).max(365).default(30),
  AUTH_FAIL_WINDOW_SECONDS: z.coerce.number().int().min(1).max(86_400).default(900),
  CLIENT_IP_HEADER: z
    .string()
    .trim()
    .regex(/^[A-Za-z0-9-]+$/, 'must be a header name')
    .optional(),
  BEARER_JWKS_URL: url.optional(),
  BEARER_ISSUER: z.string().trim().min(1).optional(),
  BEARER_AUDIENCE: z.string().trim().min(1).optional(),
  BEARER_USER_CLAIM: z.string().trim().min(1).optional(),
  AUTH_MODE: z
    .string()
    .trim()
    .toLowerCase()
    .pipe(z.enum(['basic', 'bearer', 'both']))
    .default('basic'),
  CAPTURE_MAX_BODY_BYTES: z.coerce.number().int().min(0).max(1_000_000).default(2048),
  CAPTURE_RETENTION_HOURS: z.coerce.number().int().min(1).max(720).default(72),
  // A PEM bundle (its text, or a file path on Node and Lambda) of the CAs ValidateCert trusts.
  SMIME_TRUST_STORE: z.string().trim().min(1).optional(),
  CREDENTIAL_KEY: z
    .string()
    .trim()
    .refine((v) => decodeVaultKey(v) !== undefined, 'must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)')
    .optional(),
});

/**
 * The names of the settings loadConfig reads (a tenants file may give any of them per tenant, src/tenants/settings.ts).
 */
export const SETTING_NAMES: readonly string[] = Object.keys(schema.shape);

/**
 * Reads the settings from an environment (process.env on Node, the bindings on Workers). `runtimeDefaults` are a
 * runtime's own defaults, used where the environment says nothing (e.g. a Lambda's PING_MAX_HEARTBEAT).
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  runtimeDefaults: Record<string, string> = {},
): ServerConfig {
  // An empty variable counts as unset, as in most deployment tools.
  const present = {
    ...runtimeDefaults,
    ...Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v.trim() !== '')),
  };
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  if ((e.IMAP_MASTER_USER === undefined) !== (e.IMAP_MASTER_PASSWORD === undefined)) {
    throw new ConfigError('invalid configuration: IMAP_MASTER_USER and IMAP_MASTER_PASSWORD go together');
  }
  const bearerMissing = ['BEARER_JWKS_URL', 'BEARER_ISSUER', 'BEARER_AUDIENCE', 'BEARER_USER_CLAIM'].filter(
    (name) => e[name as keyof typeof e] === undefined,
  );
  if (e.AUTH_MODE !== 'basic' && bearerMissing.length) {
    throw new ConfigError(
      `invalid configuration: AUTH_MODE=${e.AUTH_MODE} needs ${bearerMissing.join(', ')} (tokens are verified against the identity provider's keys)`,
    );
  }
  if (e.STATE_STORE === 'dynamodb' && !e.DYNAMODB_TABLE) {
    throw new ConfigError('invalid configuration: DYNAMODB_TABLE is required when STATE_STORE=dynamodb');
  }
  if (!e.ALLOW_PLAINTEXT_BACKENDS) {
    const plainUrls = (['CALDAV_URL', 'CARDDAV_URL', 'GAL_URL'] as const).filter((k) =>
      e[k]?.toLowerCase().startsWith('http:'),
    );
    if (plainUrls.length > 0)
      throw new ConfigError(
        `invalid configuration: ${plainUrls.join(', ')} ${plainUrls.length > 1 ? 'are' : 'is'} http://, which would ` +
          "send users' passwords in plaintext: use https://, or set ALLOW_PLAINTEXT_BACKENDS=true (loopback or " +
          'private test networks only)',
      );
  }
  const plaintext = e.ALLOW_PLAINTEXT_BACKENDS ? { allowPlaintext: true } : {};
  let policy = DEFAULT_POLICY_CONFIG;
  if (e.POLICY !== undefined) {
    try {
      policy = parsePolicyConfig(e.POLICY);
    } catch (err) {
      throw new ConfigError(`invalid configuration: POLICY ${(err as Error).message}`);
    }
  }
  return {
    port: e.PORT,
    state:
      e.STATE_STORE === 'dynamodb'
        ? { kind: 'dynamodb', table: e.DYNAMODB_TABLE!, endpoint: e.DYNAMODB_ENDPOINT, region: e.AWS_REGION }
        : { kind: 'sqlite', dir: e.STATE_DIR },
    imap: {
      host: e.IMAP_HOST,
      port: e.IMAP_PORT ?? (e.IMAP_SECURE ? 993 : 143),
      secure: e.IMAP_SECURE,
      sessionMaxAgeMs: e.IMAP_SESSION_MAX_AGE_SECONDS * 1000,
      ...plaintext,
    },
    ...(e.SIEVE === 'on'
      ? { sieve: { host: e.SIEVE_HOST ?? e.IMAP_HOST, port: e.SIEVE_PORT, secure: e.SIEVE_SECURE, ...plaintext } }
      : {}),
    allowPlaintextBackends: e.ALLOW_PLAINTEXT_BACKENDS,
    smtp: {
      host: e.SMTP_HOST ?? e.IMAP_HOST,
      port: e.SMTP_PORT ?? (e.SMTP_SECURE ? 465 : 587),
      secure: e.SMTP_SECURE,
      auth: e.SMTP_AUTH,
    },
    caldavUrl: e.CALDAV_URL,
    carddavUrl: e.CARDDAV_URL,
    notesFolder: e.NOTES_FOLDER,
    davTimeoutMs: e.DAV_TIMEOUT_SECONDS * 1000,
    davDefaults: {
      ...(e.DAV_DEFAULT_CALENDAR ? { calendar: e.DAV_DEFAULT_CALENDAR } : {}),
      ...(e.DAV_DEFAULT_TASKS ? { tasks: e.DAV_DEFAULT_TASKS } : {}),
      ...(e.DAV_DEFAULT_ADDRESSBOOK ? { contacts: e.DAV_DEFAULT_ADDRESSBOOK } : {}),
    },
    galUrl: e.GAL_URL,
    davCredentialOrigins: [
      ...new Set(
        [e.CALDAV_URL, e.CARDDAV_URL, e.GAL_URL, ...(e.DAV_CREDENTIAL_ORIGINS ?? [])]
          .filter((u): u is string => u !== undefined)
          .map((u) => new URL(u).origin),
      ),
    ],
    maxRequestBytes: e.MAX_REQUEST_BYTES,
    wbxmlBudget: { maxBytes: Math.min(e.MAX_WBXML_BYTES, e.MAX_REQUEST_BYTES), maxElements: e.MAX_WBXML_ELEMENTS },
    maxResponseBytes: e.MAX_RESPONSE_BYTES,
    maxConcurrentRequestsPerUser: e.MAX_CONCURRENT_REQUESTS_PER_USER,
    largeBodies: { bytes: e.LARGE_BODY_BYTES, perUser: e.MAX_LARGE_BODIES_PER_USER },
    maxMessageBytes: e.MAX_MESSAGE_BYTES,
    tenant: e.TENANT,
    publicUrl: e.PUBLIC_URL?.replace(/\/+$/, ''),
    mailDomain: e.MAIL_DOMAIN,
    ...(e.SENDER_ALIASES ? { senderAliases: e.SENDER_ALIASES } : {}),
    provisioning: e.PROVISIONING,
    policy,
    push: {
      maxHeartbeat: e.PING_MAX_HEARTBEAT,
      minHeartbeat: Math.min(e.PING_MIN_HEARTBEAT, e.PING_MAX_HEARTBEAT),
      pollSeconds: e.PING_POLL_SECONDS,
      master:
        e.IMAP_MASTER_USER && e.IMAP_MASTER_PASSWORD
          ? { user: e.IMAP_MASTER_USER, password: e.IMAP_MASTER_PASSWORD }
          : undefined,
      credentialKey: e.CREDENTIAL_KEY ? decodeVaultKey(e.CREDENTIAL_KEY) : undefined,
    },
    adminToken: e.ADMIN_TOKEN,
    metricsToken: e.METRICS_TOKEN,
    authMode: e.AUTH_MODE,
    ...(e.BEARER_JWKS_URL && e.BEARER_ISSUER && e.BEARER_AUDIENCE && e.BEARER_USER_CLAIM
      ? {
          bearer: {
            jwksUrl: e.BEARER_JWKS_URL,
            issuer: e.BEARER_ISSUER,
            audience: e.BEARER_AUDIENCE,
            userClaim: e.BEARER_USER_CLAIM,
          },
        }
      : {}),
    authThrottle: {
      pairLimit: e.AUTH_FAIL_LIMIT,
      userLimit: e.AUTH_FAIL_USER_LIMIT,
      ipLimit: e.AUTH_FAIL_IP_LIMIT,
      knownLoginDays: e.AUTH_KNOWN_LOGIN_DAYS,
      windowSeconds: e.AUTH_FAIL_WINDOW_SECONDS,
      clientIpHeader: e.CLIENT_IP_HEADER,
    },
    capture: { maxBodyBytes: e.CAPTURE_MAX_BODY_BYTES, retentionHours: e.CAPTURE_RETENTION_HOURS },
    ...(e.SMIME_TRUST_STORE ? { smimeTrustStore: e.SMIME_TRUST_STORE } : {}),
  };
}
