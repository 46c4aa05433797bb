/**
 * The Cloudflare Workers environment of one tenant, as a wrangler.toml section: `[env.<tenant>]` with the Worker's
 * name, its variables, the Durable Object binding and migrations (environments do not inherit them), the cron of the
 * push sweep, and the custom domain. Secrets are listed by name, for `wrangler secret put`; values never pass here.
 *
 *   npx activesync-edge deploy render-wrangler --tenant acme            # print the section
 *   npx activesync-edge deploy render-wrangler --tenant acme --write    # append it to wrangler.toml
 *   npx wrangler deploy --env acme
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { plainSettings, secretKeys, type TenantDeployment } from '../tenant.ts';

export const WRANGLER_TOML = join(import.meta.dirname, '../../wrangler.toml');

/** The Worker's top-level name in wrangler.toml; each environment deploys as `<name>-<tenant>`. */
const WORKER_NAME = 'activesync-edge';

/** A TOML basic string (JSON's escapes are TOML's). */
function str(value: string): string {
  return JSON.stringify(value);
}

/**
 * The variables a Worker gets: the tenant's settings. STARTTLS and implicit TLS both work there (IMAP, SMTP and
 * ManageSieve go over cloudflare:sockets, which upgrades with startTls()).
 */
export function workerVars(tenant: TenantDeployment): Record<string, string> {
  return plainSettings(tenant);
}

export function renderWranglerEnv(tenant: TenantDeployment): string {
  const name = tenant.tenant;
  const vars = workerVars(tenant);
  const lines = [
    `# Tenant ${name}: rendered by \`activesync-edge deploy render-wrangler --tenant ${name}\` from infra/tenants/${name}.json.`,
    `# Secrets (values never go in this file): ${secretKeys(tenant)
      .map((k) => `npx wrangler secret put ${k} --env ${name}`)
      .join('; ')}`,
    `[env.${name}]`,
    `name = ${str(`${WORKER_NAME}-${name}`)}`,
    // The tenant's Worker, Durable Objects and cron: nothing shared with another tenant's.
    ...(tenant.hostname
      ? [`routes = [{ pattern = ${str(tenant.hostname)}, custom_domain = true }]`, 'workers_dev = false']
      : []),
    '',
    `[env.${name}.vars]`,
    ...Object.entries(vars).map(([k, v]) => `${k} = ${str(v)}`),
    '',
    `[[env.${name}.durable_objects.bindings]]`,
    'name = "STATE"',
    'class_name = "StateObject"',
    '',
    `[[env.${name}.migrations]]`,
    'tag = "v1"',
    'new_sqlite_classes = ["StateObject"]',
    '',
    `[env.${name}.triggers]`,
    'crons = ["* * * * *"]',
    '',
    // The sweep's fan-out to more invocations: a service binding to this environment's own Worker
    // (src/push/sweep-fanout.ts).
    `[[env.${name}.services]]`,
    'binding = "SWEEP_SELF"',
    `service = ${str(`${WORKER_NAME}-${name}`)}`,
    '',
  ];
  return lines.join('\n');
}

/** Appends the tenant's environment to a wrangler.toml; refuses when it has one already. */
export function writeWranglerEnv(tenant: TenantDeployment, path = WRANGLER_TOML): void {
  const current = readFileSync(path, 'utf8');
  if (new RegExp(`^\\[env\\.${tenant.tenant}\\]`, 'm').test(current))
    throw new Error(`${path} already has [env.${tenant.tenant}]`);
  writeFileSync(path, `${current.replace(/\n*$/, '\n')}\n${renderWranglerEnv(tenant)}`);
}
