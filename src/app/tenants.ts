/**
 * What each tenant's requests run with: its settings and its own backends (an IMAP pool per tenant, so a pooled
 * connection never crosses tenants). The builder (build.ts) makes a TenantRouter from the TenantDirectory;
 * activesync.ts and autodiscover.ts ask it per request.
 */
import type { ServerConfig } from '../config.ts';
import type { Credentials } from '../backends/auth.ts';
import type { TenantBackends } from '../backends/types.ts';
import { HttpError } from '../protocol/errors.ts';
import type { TenantDirectory, TenantEntry } from '../tenants/resolve.ts';

export interface TenantServices {
  config: ServerConfig;
  /** Per request, the credentials check and the user's backends (backends/types.ts). */
  backends: TenantBackends;
}

export interface TenantRouter {
  readonly directory: TenantDirectory;
  /** The services of the tenant a request belongs to; undefined when none can be told (see TenantDirectory.resolve). */
  resolve(
    host: string | undefined,
    credentials: Pick<Credentials, 'login' | 'domain'> | undefined,
  ): TenantServices | undefined;
  /** A tenant's services by name (the watcher, the admin API). */
  get(name: string): TenantServices | undefined;
}

/** `build` makes one tenant's backend clients; it runs once per tenant, on its first request. */
export function tenantRouter(
  directory: TenantDirectory,
  build: (config: ServerConfig) => Omit<TenantServices, 'config'>,
): TenantRouter {
  const built = new Map<string, TenantServices>();
  const servicesOf = (entry: TenantEntry): TenantServices => {
    let services = built.get(entry.name);
    if (!services) {
      services = { ...build(entry.config), config: entry.config };
      built.set(entry.name, services);
    }
    return services;
  };
  return {
    directory,
    resolve(host, credentials) {
      const entry = directory.resolve(host, credentials?.login, credentials?.domain);
      return entry && servicesOf(entry);
    },
    get(name) {
      const entry = directory.get(name);
      return entry && servicesOf(entry);
    },
  };
}

/**
 * The request's dependencies with its tenant's services in place. Without a router (a process built around one
 * ServerConfig) they are returned as they are.
 *
 * A request no tenant can be found for gets 401, as a wrong password does, not 404: it says nothing about which
 * tenants or users exist, and every client handles 401 by asking the user for the account again (the address is
 * what is wrong), where a 404 on the ActiveSync URL reads to iOS and Android as "server not found" with no prompt.
 * Autodiscover's candidate search is not hurt: a client tries the next candidate after a 401 it cannot answer.
 */
export function withTenant<D extends TenantServices & { tenants?: TenantRouter }>(
  deps: D,
  host: string | undefined,
  credentials: Pick<Credentials, 'login' | 'domain'> | undefined,
): D {
  if (!deps.tenants) return deps;
  const services = deps.tenants.resolve(host, credentials);
  if (!services) throw new HttpError(401, 'no tenant for this host and mail domain');
  return { ...deps, ...services };
}
