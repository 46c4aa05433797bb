/**
 * The watcher (DESIGN §5.3): reads which accounts are being pinged (watch leases) and what their devices wait on
 * (the `device:` entries of their feed), watches the mailboxes, and writes a feed marker whenever a watched
 * folder's state changes. Waiting Pings and hanging Syncs poll that feed; none of them holds an IMAP connection.
 *
 * Two strategies, one feed; a Ping cannot tell which one ran:
 *
 * - IDLE (`startIdleWatcher`): one IMAP connection per leased account, held in IDLE on INBOX. An untagged EXISTS,
 *   EXPUNGE or FETCH wakes it and one STATUS gives INBOX's new marker. Every `checkIntervalMs` (default 45 s) a
 *   LIST (the folder list's fingerprint) and one STATUS per other watched folder cover the rest. A lease that ends
 *   closes its connection; a dropped connection is reopened with back-off, and its first check catches up.
 *   Runs as a loop in the Node runtime (src/runtimes/node.ts), and for a Lambda as `runIdleWatcher`: one run of up
 *   to ~14 minutes from a scheduled function, the next run starting before this one ends.
 * - Sweep (`sweep`): for Cloudflare's cron, which allows 6 simultaneous connections per invocation and bills
 *   Durable Objects for wall time. Per pass and shard: list the leases; per account (6 at a time) log in, LIST,
 *   STATUS of INBOX and the watched folders, log out. Passes repeat every `passIntervalMs` until `until`.
 *
 * Logins: src/push/credentials.ts (master user, sealed credential, or on Node a password handed over in memory).
 * Markers are written only when they change (the watcher keeps the last one it read or wrote per key), so an idle
 * account costs the state store no writes.
 *
 * Calendar and contact collections: watched `caldav:`/`carddav:` keys are checked with a PROPFIND of the collection's
 * sync-token (or CTag; DavItemBackend.collectionToken) at each periodic check (IDLE) or pass (sweep), on the tenant's
 * DAV servers only (`dav`), logged in with the user's own password (sealed on the lease, or handed over in memory on
 * Node: DAV servers have no master user), and written as `dav1` markers when they change.
 *
 * Several Node instances on one store split the lease shards by claims (ShardClaims); the Cloudflare cron splits a
 * big tenant over several invocations (src/push/sweep-plan.ts, src/push/sweep-fanout.ts).
 */
import { ImapFlow } from 'imapflow';
import type { PushConfig } from '../config.ts';
import type { ImapSettings } from '../backends/imap/connection.ts';
import type { LogSink } from '../log.ts';
import { leaseShard } from '../state/shard.ts';
import { fnv1a32 } from '../util/fnv.ts';
import { LEASE_SHARDS, type StateStore, type UserScope, type WatchLease } from '../state/types.ts';
import { DavItemBackend } from '../backends/dav/backend.ts';
import { davWatcherLogin, watcherAuth, type ImapAuth } from './credentials.ts';
import {
  encodeDavMarker,
  encodeImapMarker,
  FEED_TTL_MS,
  HIERARCHY_KEY,
  hierarchyMarker,
  pushHub,
  watchedFolderKeys,
  type DavFeedSource,
  type PushHub,
} from './feed.ts';

const INBOX_KEY = 'imap:INBOX';

export interface WatcherOptions {
  state: StateStore;
  tenant: string;
  imap: ImapSettings;
  /** Master user and vault key (PushConfig). */
  push: PushConfig;
  /** The lease shards this watcher takes (0 ≤ shard < LEASE_SHARDS); all by default. */
  shards?: readonly number[];
  hub?: PushHub;
  log?: LogSink;
  /**
   * The tenant's CalDAV/CardDAV services (CALDAV_URL, CARDDAV_URL): watched `caldav:`/`carddav:` collections on them
   * are checked by sync-token or CTag with the user's own login (credentials.ts davWatcherLogin). A collection
   * elsewhere is never sent the login.
   */
  dav?: { caldavUrl?: string | undefined; carddavUrl?: string | undefined };
  /** Overrides how DAV collections' tokens are read for an account (instead of `dav`). */
  davSource?: (lease: WatchLease) => DavFeedSource | undefined;
}

export interface IdleWatcherOptions extends WatcherOptions {
  /** LIST and STATUS of the watched folders other than INBOX, this often (default 45 s). */
  checkIntervalMs?: number;
  /** Leases are listed this often (default 15 s); in one process a waiting Ping also announces itself at once. */
  leaseScanMs?: number;
  /**
   * Several watcher processes on one state store (Node instances on one DynamoDB table): each watches only the
   * shards (of `shards`) it holds a claim on. See ShardClaims.
   */
  claims?: ShardClaims;
}

/**
 * Shard claims: a short-lived record per lease shard in the StateStore (a Marker, claimed atomically), naming the
 * watcher instance that watches the shard. The holder renews it while running and deletes it when it stops; a claim
 * not renewed (a crashed instance) expires and another instance takes the shard over. An instance claims at most
 * `maxShards`: with N instances, ceil(16 / (N − 1)) lets the others absorb one failed instance.
 */
export interface ShardClaims {
  /** This process's id (unique per process run). */
  instance: string;
  /** Default LEASE_SHARDS (one instance takes every shard nobody holds). */
  maxShards?: number;
  /** How long a claim lasts unless renewed (default 60 s); renewed when half of it is left. */
  ttlMs?: number;
}

export interface IdleWatcher {
  /** Accounts with an open or opening connection. */
  readonly watching: number;
  /** The shards this watcher watches (with claims: those it holds now). */
  readonly shards: readonly number[];
  stop(): Promise<void>;
}

/** Where shard claims live: a reserved scope of the tenant (no login has this form). */
function claimScope(tenant: string): { tenant: string; user: string; deviceId: string } {
  return { tenant, user: '#watcher', deviceId: '#shards' };
}

function allShards(): number[] {
  return Array.from({ length: LEASE_SHARDS }, (_, i) => i);
}

function userKeyOf(u: UserScope): string {
  return JSON.stringify([u.tenant, u.user]);
}

function errorText(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${(err as { responseText?: string }).responseText ?? err.message}`;
  return String(err);
}

function newClient(imap: ImapSettings, auth: ImapAuth, idle: boolean): ImapFlow {
  const client = new ImapFlow({
    host: imap.host,
    port: imap.port,
    secure: imap.secure,
    auth,
    logger: false,
    // HIGHESTMODSEQ is only reported to a session that enabled CONDSTORE.
    qresync: true,
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    ...(idle ? { autoIdleDelay: 100, maxIdleTime: 240_000, socketTimeout: 300_000 } : { disableAutoIdle: true, socketTimeout: 60_000 }),
  });
  // Socket errors surface as rejected commands and a 'close'; the event itself must not crash the process.
  client.on('error', () => {});
  return client;
}

/** The selectable mailboxes' paths (what FolderSync offers, src/backends/imap/mail.ts). */
async function listPaths(client: ImapFlow): Promise<string[]> {
  const listed = await client.list();
  return listed.filter((m) => !m.flags.has('\\Noselect') && !m.flags.has('\\NonExistent')).map((m) => m.path);
}

async function statusMarker(client: ImapFlow, path: string): Promise<string | undefined> {
  try {
    const s = await client.status(path, { uidValidity: true, uidNext: true, messages: true, highestModseq: true });
    if (!s || s.uidValidity === undefined || s.uidNext === undefined || s.messages === undefined) return undefined;
    return encodeImapMarker({ uidValidity: Number(s.uidValidity), highestModSeq: s.highestModseq, uidNext: s.uidNext, messages: s.messages });
  } catch (err) {
    // A watched folder deleted meanwhile: the folder list's marker tells the devices.
    if ((err as { serverResponseCode?: string }).serverResponseCode === 'NONEXISTENT') return undefined;
    throw err;
  }
}

function isDavKey(key: string): boolean {
  return key.startsWith('caldav:') || key.startsWith('carddav:');
}

/**
 * How the watcher reads the tokens of an account's watched DAV collections; undefined when none is watched or there
 * is no login for them. Only collections on the tenant's own DAV servers (same origin) are asked, with the login.
 */
async function davSourceFor(options: WatcherOptions, lease: WatchLease, watched: ReadonlySet<string>, password: string | undefined): Promise<DavFeedSource | undefined> {
  if (![...watched].some(isDavKey)) return undefined;
  if (options.davSource) return options.davSource(lease);
  const services = [options.dav?.caldavUrl, options.dav?.carddavUrl].filter((u): u is string => !!u);
  if (!services.length) return undefined;
  const login = await davWatcherLogin(options.push, lease, password);
  if (!login) return undefined;
  return {
    collectionToken(folderRef) {
      const origin = new URL(folderRef).origin;
      const service = services.find((u) => new URL(u).origin === origin);
      if (!service) return Promise.reject(new Error('not on a DAV service of the tenant'));
      return new DavItemBackend(service, 'caldav', login).collectionToken(folderRef);
    },
  };
}

/** What one account's watch keeps between checks: the last marker per key, and which keys to watch. */
class FeedMemo {
  readonly markers = new Map<string, string>();
  watched = new Set<string>([INBOX_KEY]);

  constructor(
    private readonly state: StateStore,
    private readonly user: UserScope,
    private readonly hub: PushHub,
  ) {}

  async load(): Promise<void> {
    const feed = await this.state.readFeed(this.user);
    for (const entry of feed) if (!entry.folder.startsWith('device:')) this.markers.set(entry.folder, entry.marker);
    this.watched = new Set([INBOX_KEY, ...watchedFolderKeys(feed)]);
  }

  /** Writes the changed markers; returns how many. */
  async write(found: Map<string, string>): Promise<number> {
    const now = Date.now();
    let written = 0;
    for (const [key, marker] of found) {
      if (this.markers.get(key) === marker) continue;
      await this.state.putFeedEntry(this.user, { folder: key, marker, changedAt: now, expiresAt: now + FEED_TTL_MS });
      this.markers.set(key, marker);
      written++;
    }
    if (written) this.hub.changed(this.user);
    return written;
  }
}

/** LIST, then STATUS of each watched IMAP folder (and the DAV tokens of watched DAV collections). */
async function checkAccount(client: ImapFlow, memo: FeedMemo, dav: DavFeedSource | undefined): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const paths = await listPaths(client);
  found.set(HIERARCHY_KEY, hierarchyMarker(paths));
  const existing = new Set(paths);
  for (const key of memo.watched) {
    if (key.startsWith('imap:')) {
      const path = key.slice('imap:'.length);
      if (!existing.has(path)) continue;
      const marker = await statusMarker(client, path);
      if (marker) found.set(key, marker);
    } else if (dav && isDavKey(key)) {
      const token = await dav.collectionToken(key.slice(key.indexOf(':') + 1)).catch(() => undefined);
      if (token !== undefined) found.set(key, encodeDavMarker(token));
    }
  }
  return found;
}

// ------------------------------------------------------------------------------------------------ IDLE

/** One leased account: its IDLE connection, reopened until the lease ends. */
class AccountWatch {
  private client: ImapFlow | undefined;
  private stopped = false;
  private readonly memo: FeedMemo;
  private checkTimer: ReturnType<typeof setTimeout> | undefined;
  private inboxTimer: ReturnType<typeof setTimeout> | undefined;
  private endTimer: ReturnType<typeof setTimeout> | undefined;
  private wakeRun: (() => void) | undefined;
  /** Set while no login is possible (no master user, no sealed credential): a password handed over later ends it. */
  private wakeLogin: (() => void) | undefined;
  /** Serialises the checks on the one connection. */
  private chain: Promise<unknown> = Promise.resolve();
  readonly done: Promise<void>;

  constructor(
    private lease: WatchLease,
    private password: string | undefined,
    private readonly options: IdleWatcherOptions,
    hub: PushHub,
    private readonly onEnd: () => void,
  ) {
    this.memo = new FeedMemo(options.state, lease, hub);
    this.scheduleEnd();
    this.done = this.run().finally(() => this.onEnd());
  }

  /** A newer lease (a new Ping): keep going until its end, and read the devices' folder lists again. */
  extend(lease: WatchLease, password?: string): void {
    if (password !== undefined) this.password = password;
    if (password !== undefined || lease.credential) this.wakeLogin?.();
    const newer = lease.until > this.lease.until;
    if (lease.credential || newer) this.lease = { ...this.lease, ...lease, until: Math.max(lease.until, this.lease.until) };
    this.scheduleEnd();
    if (newer || password !== undefined) this.enqueue(() => this.refreshWatched());
  }

  get stopping(): boolean {
    return this.stopped;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeRun?.();
    this.wakeLogin?.();
    await this.done;
  }

  private scheduleEnd(): void {
    clearTimeout(this.endTimer);
    this.endTimer = setTimeout(() => void this.stop(), Math.max(0, this.lease.until - Date.now()));
    this.endTimer.unref?.();
  }

  private log(event: string, extra: Record<string, string | number> = {}): void {
    this.options.log?.({ time: new Date().toISOString(), tenant: this.lease.tenant, user: this.lease.user, event, ...extra });
  }

  private async run(): Promise<void> {
    let backoffMs = 1_000;
    while (!this.stopped && this.lease.until > Date.now()) {
      const auth = await watcherAuth(this.options.push, this.lease, this.password);
      if (!auth) {
        // Said once; the lease is kept in view (no new watch and log line per lease scan) until it ends or a login comes.
        this.log('watch-no-login');
        await new Promise<void>((resolve) => (this.wakeLogin = resolve));
        this.wakeLogin = undefined;
        continue;
      }
      const client = newClient(this.options.imap, auth, true);
      this.client = client;
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
      try {
        await client.connect();
        await this.memo.load();
        await client.mailboxOpen('INBOX');
        const inboxChanged = (): void => this.inboxChanged();
        client.on('exists', inboxChanged);
        client.on('expunge', inboxChanged);
        client.on('flags', inboxChanged);
        await this.enqueue(() => this.check());
        backoffMs = 1_000;
        this.scheduleCheck();
        // Until the lease ends, the watch is stopped, or the connection drops (a stop during the connect came already).
        if (!this.stopped) await Promise.race([closed, new Promise<void>((resolve) => (this.wakeRun = resolve))]);
      } catch (err) {
        if (!this.stopped) this.log('watch-error', { error: errorText(err) });
        // A refused login is not fixed by retrying soon.
        if ((err as { authenticationFailed?: boolean }).authenticationFailed) backoffMs = Math.max(backoffMs, 300_000);
      } finally {
        clearTimeout(this.checkTimer);
        clearTimeout(this.inboxTimer);
        this.wakeRun = undefined;
        this.client = undefined;
        if (client.usable) await client.logout().catch(() => client.close());
        else client.close();
      }
      if (this.stopped || this.lease.until <= Date.now()) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, backoffMs);
        this.wakeRun = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeRun = undefined;
      backoffMs = Math.min(backoffMs * 2, 60_000);
    }
    clearTimeout(this.endTimer);
  }

  private enqueue<T>(work: () => Promise<T>): Promise<T | undefined> {
    const next = this.chain.then(async () => {
      if (this.stopped || !this.client?.usable) return undefined;
      try {
        return await work();
      } catch (err) {
        this.log('watch-check-error', { error: errorText(err) });
        // A broken connection is reopened by run(); a failed command on a good one waits for the next check.
        if (!this.client?.usable) this.wakeRun?.();
        return undefined;
      }
    });
    this.chain = next;
    return next;
  }

  private inboxChanged(): void {
    // Several untagged responses come together (EXISTS, then FETCH): one STATUS for all of them.
    if (this.inboxTimer) return;
    this.inboxTimer = setTimeout(() => {
      this.inboxTimer = undefined;
      void this.enqueue(async () => {
        // The IDLE responses brought the session's view up to date, so STATUS of the selected INBOX is current.
        const marker = await statusMarker(this.client!, 'INBOX');
        if (marker) await this.memo.write(new Map([[INBOX_KEY, marker]]));
      });
    }, 20);
  }

  private scheduleCheck(): void {
    clearTimeout(this.checkTimer);
    this.checkTimer = setTimeout(() => {
      void this.enqueue(() => this.check()).finally(() => {
        if (!this.stopped) this.scheduleCheck();
      });
    }, this.options.checkIntervalMs ?? 45_000);
    this.checkTimer.unref?.();
  }

  private async check(): Promise<void> {
    const client = this.client!;
    const found = await checkAccount(client, this.memo, await davSourceFor(this.options, this.lease, this.memo.watched, this.password));
    await this.memo.write(found);
  }

  private async refreshWatched(): Promise<void> {
    const before = this.memo.watched;
    await this.memo.load();
    if ([...this.memo.watched].some((k) => !before.has(k))) await this.check();
  }
}

/**
 * The IDLE strategy as a loop (Node): watches every leased account of the given shards until stopped. Leases are
 * listed every `leaseScanMs`; a Ping of this process announces itself on the hub, and its account is watched at once.
 */
export function startIdleWatcher(options: IdleWatcherOptions): IdleWatcher {
  const hub = options.hub ?? pushHub;
  const shards = new Set(options.shards ?? allShards());
  const claims = options.claims;
  /** The shards watched now: all of `shards`, or with claims those held, by claim expiry. */
  const held = new Map<number, number>(claims ? [] : [...shards].map((s) => [s, Infinity]));
  const accounts = new Map<string, AccountWatch>();
  let stopped = false;

  const log = (event: string, extra: Record<string, string | number>): void =>
    options.log?.({ time: new Date().toISOString(), tenant: options.tenant, event, ...extra });

  /** Claims free shards up to maxShards and renews held ones; lets go of shards another instance holds. */
  const claimShards = async (): Promise<void> => {
    if (!claims) return;
    const ttl = claims.ttlMs ?? 60_000;
    const scope = claimScope(options.tenant);
    for (const shard of shards) {
      if (stopped) return;
      const now = Date.now();
      const expires = held.get(shard);
      const marker = { value: claims.instance, expiresAt: now + ttl };
      try {
        if (expires !== undefined && expires - now > ttl / 2) continue;
        // Ours and safely live (clocks of instances differ a little): nobody else can have taken it, extend it.
        if (expires !== undefined && expires - now > Math.min(5_000, ttl / 4)) {
          await options.state.putMarker(scope, `shard:${shard}`, marker);
          held.set(shard, marker.expiresAt);
          continue;
        }
        if (expires === undefined && held.size >= (claims.maxShards ?? LEASE_SHARDS)) continue;
        const live = await options.state.claimMarker(scope, `shard:${shard}`, marker);
        if (live === undefined || live.value === claims.instance) {
          if (live !== undefined) await options.state.putMarker(scope, `shard:${shard}`, marker);
          if (expires === undefined) log('watch-shard-claimed', { shard, instance: claims.instance });
          held.set(shard, marker.expiresAt);
        } else if (expires !== undefined) {
          // Our claim lapsed and another instance took the shard: its accounts are its now.
          held.delete(shard);
          log('watch-shard-lost', { shard, instance: claims.instance });
          for (const [key, watch] of accounts) if (leaseShard(JSON.parse(key)[1] as string) === shard) void watch.stop();
        }
      } catch (err) {
        log('watch-claim-error', { shard, error: errorText(err) });
      }
    }
  };

  const ensure = (lease: WatchLease, password?: string): void => {
    if (stopped || lease.tenant !== options.tenant || lease.until <= Date.now()) return;
    if (!held.has(leaseShard(lease.user))) return;
    const key = userKeyOf(lease);
    const existing = accounts.get(key);
    if (existing && !existing.stopping) {
      existing.extend(lease, password);
      return;
    }
    const watch: AccountWatch = new AccountWatch(lease, password, options, hub, () => {
      if (accounts.get(key) === watch) accounts.delete(key);
    });
    accounts.set(key, watch);
  };

  const scan = async (): Promise<void> => {
    await claimShards();
    for (const shard of held.keys()) {
      try {
        for (const lease of await options.state.listLeases(options.tenant, shard)) ensure(lease);
      } catch (err) {
        options.log?.({ time: new Date().toISOString(), tenant: options.tenant, event: 'watch-scan-error', shard, error: errorText(err) });
      }
    }
  };

  const offWaiting = hub.onWaiting((user, password) => {
    // The lease this Ping just wrote: read it back for the sealed credential, or use the password handed over.
    if (stopped || user.tenant !== options.tenant) return;
    void options.state.getLease(user).then((lease) => lease && ensure(lease, password)).catch(() => undefined);
  });
  let scanTimer: ReturnType<typeof setTimeout> | undefined;
  const loop = (): void => {
    scanTimer = setTimeout(() => void scan().finally(() => !stopped && loop()), options.leaseScanMs ?? 15_000);
    scanTimer.unref?.();
  };
  void scan().finally(() => !stopped && loop());

  return {
    get watching() {
      return accounts.size;
    },
    get shards() {
      return [...held.keys()].sort((a, b) => a - b);
    },
    async stop() {
      stopped = true;
      clearTimeout(scanTimer);
      offWaiting();
      await Promise.all([...accounts.values()].map((a) => a.stop()));
      // Hand the shards over at once rather than when the claims expire.
      if (claims) {
        const scope = claimScope(options.tenant);
        await Promise.all([...held.keys()].map((shard) => options.state.deleteMarker(scope, `shard:${shard}`).catch(() => undefined)));
        held.clear();
      }
    },
  };
}

/**
 * The IDLE strategy for one scheduled Lambda run (the Lambda runtime file calls this from its scheduled handler):
 * watches for `durationMs` (default 14 minutes, under Lambda's 15), then closes every connection. Schedule runs so
 * that they overlap (e.g. every 13 minutes): the next run's first check catches anything the gap would miss.
 */
export async function runIdleWatcher(options: IdleWatcherOptions & { durationMs?: number }): Promise<void> {
  const watcher = startIdleWatcher(options);
  await new Promise((resolve) => setTimeout(resolve, options.durationMs ?? 14 * 60_000));
  await watcher.stop();
}

// ------------------------------------------------------------------------------------------------ sweep

export interface SweepOptions extends WatcherOptions {
  /** Simultaneous IMAP connections (Workers allow 6 per invocation). */
  concurrency?: number;
  /** Start another pass every this often (default 10 s) until `until` (epoch ms); one pass without `until`. */
  passIntervalMs?: number;
  until?: number;
  /** Ends the sweep after the current pass (a process shutting down). */
  signal?: AbortSignal;
  /**
   * What the sweep remembers of each account's feed. Pass the same one to consecutive sweeps (a module-level one on
   * Workers lives as long as the isolate) and an unchanged account costs no state read either, until its next Ping.
   */
  memo?: SweepMemo;
  /** Only this part of the shards' accounts (sweepPart), when a shard is split over several invocations. */
  part?: { index: number; of: number };
}

/** One invocation's share of a fanned-out sweep (sweep-plan.ts planSweep): whole shards, or one part of a big one. */
export interface SweepSlice {
  shards: number[];
  part?: { index: number; of: number };
}

/** Which part (of `of`) an account falls in within its shard: hash bits other than the shard's. */
export function sweepPart(user: string, of: number): number {
  return Math.floor(fnv1a32(user) / LEASE_SHARDS) % of;
}

export interface SweepReport {
  passes: number;
  accounts: number;
  logins: number;
  written: number;
  errors: number;
  /** The slowest pass, ms. */
  slowestPassMs: number;
  /** The most IMAP connections open at once (at most `concurrency`). */
  peakConnections: number;
}

/** What a sweep remembers between its passes: per account the markers and the lease end it last read them at. */
export class SweepMemo {
  readonly accounts = new Map<string, { memo: FeedMemo; until: number; shard: number }>();
}

/**
 * The sweep strategy (Cloudflare cron): per pass, per shard, the leased accounts are logged in to, checked (LIST,
 * STATUS of INBOX and the watched folders) and logged out of, `concurrency` at a time. The user's feed is read once
 * per account and sweep (again when a newer lease shows a new Ping), so an unchanged account costs one login and a
 * few STATUS per pass and no state writes.
 */
export async function sweep(options: SweepOptions): Promise<SweepReport> {
  const hub = options.hub ?? pushHub;
  const memo = options.memo ?? new SweepMemo();
  const report: SweepReport = { passes: 0, accounts: 0, logins: 0, written: 0, errors: 0, slowestPassMs: 0, peakConnections: 0 };
  const open = { now: 0 };
  const shards: readonly number[] = options.shards ?? allShards();
  const interval = options.passIntervalMs ?? 10_000;
  for (;;) {
    const passStarted = Date.now();
    const leases: WatchLease[] = [];
    for (const shard of shards) leases.push(...(await options.state.listLeases(options.tenant, shard)));
    if (options.part) {
      const { index, of } = options.part;
      leases.splice(0, leases.length, ...leases.filter((l) => sweepPart(l.user, of) === index));
    }
    // Forget accounts nobody pings any more (this sweep's shards only: a shared memo may serve other shards too).
    const leased = new Set(leases.map(userKeyOf));
    for (const [key, known] of memo.accounts) if (!leased.has(key) && shards.includes(known.shard)) memo.accounts.delete(key);
    report.passes++;
    report.accounts = Math.max(report.accounts, leases.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < leases.length) {
        const lease = leases[next++]!;
        try {
          report.written += await sweepAccount(options, hub, memo, lease, report, open);
        } catch (err) {
          report.errors++;
          options.log?.({ time: new Date().toISOString(), tenant: lease.tenant, user: lease.user, event: 'sweep-error', error: errorText(err) });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 6, leases.length) }, worker));
    report.slowestPassMs = Math.max(report.slowestPassMs, Date.now() - passStarted);
    if (options.until === undefined || options.signal?.aborted) return report;
    const wait = passStarted + interval - Date.now();
    if (Date.now() + Math.max(0, wait) >= options.until) return report;
    if (wait > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(finish, wait);
        function finish(): void {
          clearTimeout(timer);
          options.signal?.removeEventListener('abort', finish);
          resolve();
        }
        options.signal?.addEventListener('abort', finish);
      });
      if (options.signal?.aborted) return report;
    }
  }
}

async function sweepAccount(options: SweepOptions, hub: PushHub, memos: SweepMemo, lease: WatchLease, report: SweepReport, open: { now: number }): Promise<number> {
  const key = userKeyOf(lease);
  let known = memos.accounts.get(key);
  if (!known || lease.until > known.until) {
    const memo = known?.memo ?? new FeedMemo(options.state, lease, hub);
    await memo.load();
    known = { memo, until: lease.until, shard: leaseShard(lease.user) };
    memos.accounts.set(key, known);
  }
  const auth = await watcherAuth(options.push, lease);
  if (!auth) return 0;
  const client = newClient(options.imap, auth, false);
  report.logins++;
  report.peakConnections = Math.max(report.peakConnections, ++open.now);
  try {
    await client.connect();
    const found = await checkAccount(client, known.memo, await davSourceFor(options, lease, known.memo.watched, undefined));
    return await known.memo.write(found);
  } finally {
    if (client.usable) await client.logout().catch(() => client.close());
    else client.close();
    open.now--;
  }
}
