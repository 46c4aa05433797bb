/**
 * Which tenant a request belongs to (DESIGN §6). Devices of a tenant point at its own hostname
 * (`acme.sync.example.com`), so the Host header decides first; on a hostname shared by several tenants the user's mail
 * domain decides (`alice@acme.example` → the tenant owning `acme.example`); then the tenant marked `default`.
 * A process with one tenant serves every host and every login with it.
 *
 * Nothing here authenticates: the resolved tenant's own backend checks the credentials, so naming another tenant's
 * domain on a tenant's hostname only means a login to the wrong mail server, which fails.
 */
import type { ServerConfig } from '../config.ts';

export interface TenantEntry {
  /** The tenant's name: the first part of every state key, and the `tenant` of its log lines. */
  name: string;
  /** Hostnames its devices use (lower case, no port). */
  hostnames: readonly string[];
  /** Mail domains whose users belong to it (lower case). */
  mailDomains: readonly string[];
  /** Takes requests that neither the host nor the mail domain place. */
  isDefault: boolean;
  /** Its settings, the same type a single-tenant process has. */
  config: ServerConfig;
}

/** `Host` as sent (`Acme.Sync.Example.com:443`, `[::1]:8080`) → the name to look up (`acme.sync.example.com`). */
export function normalizeHost(host: string | undefined): string | undefined {
  if (!host) return undefined;
  let h = host.trim().toLowerCase();
  if (h.startsWith('[')) h = h.slice(0, h.indexOf(']') + 1);
  else if (h.includes(':')) h = h.slice(0, h.lastIndexOf(':'));
  h = h.replace(/\.$/, '');
  return h || undefined;
}

/** The mail domain of a login: `alice@acme.example` → `acme.example`; none for `alice`. */
export function loginDomain(login: string | undefined): string | undefined {
  const at = login?.lastIndexOf('@') ?? -1;
  if (!login || at < 0) return undefined;
  return (
    login
      .slice(at + 1)
      .trim()
      .toLowerCase()
      .replace(/\.$/, '') || undefined
  );
}

export class TenantDirectory {
  private readonly byHost = new Map<string, TenantEntry>();
  private readonly byDomain = new Map<string, TenantEntry>();
  private readonly byName = new Map<string, TenantEntry>();
  private readonly fallback: TenantEntry | undefined;

  /** The entries must be consistent (unique names, hostnames and domains, one default at most): settings.ts checks. */
  constructor(readonly entries: readonly TenantEntry[]) {
    if (entries.length === 0) throw new Error('a tenant directory needs a tenant');
    for (const t of entries) {
      this.byName.set(t.name.toLowerCase(), t);
      for (const h of t.hostnames) this.byHost.set(h, t);
      for (const d of t.mailDomains) this.byDomain.set(d, t);
    }
    this.fallback = entries.length === 1 ? entries[0] : entries.find((t) => t.isDefault);
  }

  /**
   * The tenant of a request to `host` by `login` (`windowsDomain`: the `DOMAIN` of a `DOMAIN\user` login, matched
   * against tenant names). Undefined when several tenants are configured and none of them can be told.
   */
  resolve(host: string | undefined, login: string | undefined, windowsDomain?: string): TenantEntry | undefined {
    if (this.entries.length === 1) return this.entries[0];
    const h = normalizeHost(host);
    const byHost = h === undefined ? undefined : this.byHost.get(h);
    if (byHost) return byHost;
    const domain = loginDomain(login);
    const byDomain = domain === undefined ? undefined : this.byDomain.get(domain);
    if (byDomain) return byDomain;
    const byWindowsDomain = windowsDomain ? this.byName.get(windowsDomain.trim().toLowerCase()) : undefined;
    return byWindowsDomain ?? this.fallback;
  }

  get(name: string): TenantEntry | undefined {
    return this.byName.get(name.toLowerCase());
  }
}

/** The directory of a process with one tenant: it serves every host and every login. */
export function singleTenant(config: ServerConfig): TenantDirectory {
  return new TenantDirectory([
    {
      name: config.tenant,
      hostnames: [],
      mailDomains: config.mailDomain ? [config.mailDomain] : [],
      isDefault: true,
      config,
    },
  ]);
}
