/**
 * The push watcher's IDLE strategy (DESIGN §5.3; shared parts in src/push/watch-shared.ts): one IMAP connection per
 * leased account, held in IDLE (RFC 2177) on INBOX. An untagged EXISTS, EXPUNGE or FETCH wakes it and one STATUS gives
 * INBOX's new marker. Every `checkIntervalMs` (default 45 s) a LIST (the folder list's fingerprint) and one STATUS per
 * other watched folder cover the rest, and the DAV collections' tokens are read. A lease that ends closes its
 * connection; a dropped connection is reopened with back-off, and its first check catches up.
 *
 * Runs as a loop in the Node runtime (src/runtimes/node.ts), and for a Lambda as `runIdleWatcher`: one run of up to
 * ~14 minutes from a scheduled function, the next run starting before this one ends. Several Node instances on one
 * store split the lease shards by claims (ShardClaims).
 */
import type { ImapFlow } from 'imapflow';
import { leaseShard } from '../state/shard.ts';
import { LEASE_SHARDS, type WatchLease } from '../state/types.ts';
import { watcherAuth } from './credentials.ts';
import { pushHub, type PushHub } from './feed.ts';
import { metrics } from '../util/metrics.ts';
import {
  allShards,
  checkAccount,
  davSourceFor,
  errorText,
  FeedMemo,
  INBOX_KEY,
  newClient,
  statusMarker,
  userKeyOf,
  type WatcherOptions,
} from './watch-shared.ts';

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
    if (lease.credential || newer)
      this.lease = { ...this.lease, ...lease, until: Math.max(lease.until, this.lease.until) };
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
    this.options.log?.({
      time: new Date().toISOString(),
      tenant: this.lease.tenant,
      user: this.lease.user,
      event,
      ...extra,
    });
  }

  private async run(): Promise<void> {
    let backoffMs = 1_000;
    while (!this.stopped && this.lease.until > Date.now()) {
      const auth = await watcherAuth(this.options.push, this.lease, this.password);
      if (!auth) {
        // Said once; the lease is kept in view (no new watch and log line per lease scan) until it ends or a login
        // comes.
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
        const refused = (err as { authenticationFailed?: boolean }).authenticationFailed === true;
        // `loginRefused`: the runtime may read a rotated master password again (src/runtimes/secret-settings.ts).
        if (!this.stopped) this.log('watch-error', { error: errorText(err), ...(refused ? { loginRefused: 1 } : {}) });
        // A refused login is not fixed by retrying soon.
        if (refused) backoffMs = Math.max(backoffMs, 300_000);
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
    const found = await checkAccount(
      client,
      this.memo,
      await davSourceFor(this.options, this.lease, this.memo.watched, this.password),
    );
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
          for (const [key, watch] of accounts)
            if (leaseShard(JSON.parse(key)[1] as string) === shard) void watch.stop();
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
      metrics.watcherAccounts(-1);
    });
    accounts.set(key, watch);
    metrics.watcherAccounts(1);
  };

  const scan = async (): Promise<void> => {
    await claimShards();
    for (const shard of held.keys()) {
      try {
        for (const lease of await options.state.listLeases(options.tenant, shard)) ensure(lease);
      } catch (err) {
        options.log?.({
          time: new Date().toISOString(),
          tenant: options.tenant,
          event: 'watch-scan-error',
          shard,
          error: errorText(err),
        });
      }
    }
  };

  const offWaiting = hub.onWaiting((user, password) => {
    // The lease this Ping just wrote: read it back for the sealed credential, or use the password handed over.
    if (stopped || user.tenant !== options.tenant) return;
    void options.state
      .getLease(user)
      .then((lease) => lease && ensure(lease, password))
      .catch(() => undefined);
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
        await Promise.all(
          [...held.keys()].map((shard) => options.state.deleteMarker(scope, `shard:${shard}`).catch(() => undefined)),
        );
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
