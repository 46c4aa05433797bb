/**
 * The one place the app is put together: settings (one tenant or several) plus the parts only the platform can give
 * (state store, how IMAP connections are had, SMTP submission, log). The runtimes (src/runtimes/) only adapt
 * requests, scheduling and platform bindings around what this returns; tests build the app the same way.
 */
import type { Hono } from 'hono';
import { processActivity, requestReport } from '../admin/activity.ts';
import { captureExchange } from '../admin/capture.ts';
import { countRequest } from '../admin/stats.ts';
import { imapDavBackends } from '../backends/combined.ts';
import type { ImapSettings } from '../backends/imap/connection.ts';
import type { ImapSessions } from '../backends/imap/sessions.ts';
import { nodemailerSubmitter } from '../backends/smtp/nodemailer.ts';
import type { MailSubmitter, SmtpSettings } from '../backends/smtp/types.ts';
import type { TenantBackends } from '../backends/types.ts';
import { defaultRegistry } from '../commands/index.ts';
import type { CommandRegistry } from '../commands/registry.ts';
import { ConfigError, type PushWatcher, type ServerConfig } from '../config.ts';
import { deliverAccessNotice } from '../devices/access-notice.ts';
import type { LogSink } from '../log.ts';
import { pushStartupNotice } from '../push/credentials.ts';
import type { WatcherOptions } from '../push/watch-shared.ts';
import type { StateStore } from '../state/types.ts';
import { loadTrustStore, TrustStoreError, type TrustStorePlatform } from '../smime/trust-store.ts';
import { singleTenant, TenantDirectory } from '../tenants/resolve.ts';
import { addMetricsSink, metrics } from '../util/metrics.ts';
import type { DeviceHeld } from './activesync.ts';
import { createApp } from './app.ts';
import { AUTODISCOVER_NO_PUBLIC_URL } from './autodiscover.ts';
import { tenantRouter } from './tenants.ts';

export interface AppParts {
  /** The tenants (tenants/settings.ts loadTenants), or one tenant's config. */
  settings: TenantDirectory | ServerConfig;
  state: StateStore;
  /** How a tenant's IMAP connections are had: pooledImapSessions (Node, Lambda) or freshImapSessions (Workers). */
  imapSessions(imap: ImapSettings): ImapSessions;
  /** A tenant's SMTP submission; nodemailer over Node's sockets when absent. */
  submitter?(smtp: SmtpSettings): MailSubmitter;
  log: LogSink;
  /** The shipped commands when absent. */
  commands?: CommandRegistry;
  /** Another backend than IMAP + CalDAV/CardDAV (backends/combined.ts) for a tenant. */
  backends?(config: ServerConfig, parts: Pick<AppParts, 'imapSessions' | 'submitter'>): TenantBackends;
  /**
   * Where the runtime's push watcher runs (config.ts PushWatcher). Given, each tenant whose settings leave push unable
   * to log in there is named in a `push-no-login` log line now, and its waiting requests' log lines say so too.
   */
  pushWatcher?: PushWatcher;
  /**
   * How the runtime reads SMIME_TRUST_STORE and which roots it trusts without it (smime/trust-store.ts): Node and
   * Lambda read files and have `tls.rootCertificates`; Workers neither. Absent: the setting's PEM text only.
   */
  trustStore?: TrustStorePlatform;
}

export interface BuiltApp {
  app: Hono;
  /** The (first) tenant's settings: the process-wide ones (port, state store) are the same in every tenant's. */
  config: ServerConfig;
  tenants: TenantDirectory;
}

export function buildApp(parts: AppParts): BuiltApp {
  // The live view (GET /admin/live) of this process's requests, waits and watcher; one per process, installed once.
  addMetricsSink(processActivity);
  const tenants = withTrustStore(
    withPushWatcher(parts.settings instanceof TenantDirectory ? parts.settings : singleTenant(parts.settings), parts),
    parts,
  );
  const config = tenants.entries[0]!.config;
  for (const { config: tenant } of tenants.entries)
    if (!tenant.publicUrl)
      parts.log({
        time: new Date().toISOString(),
        tenant: tenant.tenant,
        event: 'autodiscover-no-public-url',
        notice: AUTODISCOVER_NO_PUBLIC_URL,
      });
  // Each tenant its own backends (and IMAP pool): a kept connection never serves another tenant.
  const backendsOf = (tenant: ServerConfig): TenantBackends =>
    parts.backends?.(tenant, parts) ??
    imapDavBackends(
      tenant,
      parts.imapSessions(tenant.imap),
      parts.submitter?.(tenant.smtp) ?? nodemailerSubmitter(tenant.smtp),
    );
  const app = createApp({
    config,
    backends: backendsOf(config),
    commands: parts.commands ?? defaultRegistry,
    state: parts.state,
    log: parts.log,
    ...(tenants.entries.length > 1
      ? { tenants: tenantRouter(tenants, (tenant) => ({ backends: backendsOf(tenant) })) }
      : {}),
    // The admin API's per-command counters, and the metrics (util/metrics.ts: the runtime's sink, the live view);
    // they never fail a request.
    onRequestLogged: ({ entry, tenant, started }) => {
      metrics.request(requestReport(entry, tenant, started));
      return countRequest(parts.state, tenant, entry, started);
    },
    // Exchange's notice in the user's Inbox; a failure is logged, the answer stands.
    onDeviceHeld: (held: DeviceHeld) =>
      deliverAccessNotice(held, held.decision, held.device).catch((err: unknown) => {
        held.note({ accessNoticeFailed: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
      }),
    // Protocol capture of the users and devices an admin chose (admin/capture.ts); the rules are read at most every
    // 10 s per instance, so a request that is not captured costs no state read.
    onExchange: (exchange) => captureExchange(parts.state, exchange, config.capture),
  });
  return { app, config, tenants };
}

/** The tenants with the runtime's push watcher in their push settings; says at once what that leaves undone. */
function withPushWatcher(tenants: TenantDirectory, parts: AppParts): TenantDirectory {
  const watcher = parts.pushWatcher;
  if (!watcher) return tenants;
  const entries = tenants.entries.map((t) => ({ ...t, config: { ...t.config, push: { ...t.config.push, watcher } } }));
  for (const { config } of entries) {
    const notice = pushStartupNotice(config);
    if (notice)
      parts.log({ time: new Date().toISOString(), tenant: config.tenant, event: 'push-no-login', watcher, notice });
  }
  return new TenantDirectory(entries);
}

const NO_TRUST_PLATFORM: TrustStorePlatform = { defaultRoots: [], defaultName: 'none given by the runtime' };

/**
 * Each tenant's ValidateCert trust store, read now (a file that cannot be read stops start-up as any bad setting
 * does) and said in one line per tenant: where from, how many CAs; with a notice when it is empty, since ValidateCert
 * then calls every certificate untrusted.
 */
function withTrustStore(tenants: TenantDirectory, parts: AppParts): TenantDirectory {
  const platform = parts.trustStore ?? NO_TRUST_PLATFORM;
  const entries = tenants.entries.map((t) => {
    let trust: ReturnType<typeof loadTrustStore>;
    try {
      trust = loadTrustStore(t.config.smimeTrustStore, platform);
    } catch (err) {
      if (err instanceof TrustStoreError)
        throw new ConfigError(`invalid configuration: ${err.message} (tenant ${t.config.tenant})`);
      throw err;
    }
    parts.log({
      time: new Date().toISOString(),
      tenant: t.config.tenant,
      event: 'smime-trust-store',
      source: trust.source,
      certificates: trust.pems.length,
      ...(trust.pems.length === 0
        ? {
            notice:
              'ValidateCert trusts no CA: every certificate is answered as untrusted (Status 4). Set SMIME_TRUST_STORE ' +
              "to a PEM bundle of the CAs your users' S/MIME certificates come from.",
          }
        : {}),
    });
    return { ...t, config: { ...t.config, smimeTrust: trust } };
  });
  return new TenantDirectory(entries);
}

/** What the push watcher of each tenant watches with: its IMAP server and logins, push settings, DAV servers. */
export function watchedTenants(tenants: TenantDirectory, state: StateStore, log: LogSink): WatcherOptions[] {
  return tenants.entries.map(({ config }) => ({
    state,
    tenant: config.tenant,
    imap: config.imap,
    push: config.push,
    dav: { caldavUrl: config.caldavUrl, carddavUrl: config.carddavUrl },
    log,
  }));
}
