/**
 * The deployment settings of one tenant (infra/tenants/<tenant>.json): what both the AWS stack (infra/aws/) and the
 * Cloudflare environment (infra/cloudflare/) are generated from. Secrets are never in this file: it names where they
 * are (a Secrets Manager secret, Worker secrets set with `wrangler secret put`).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

const host = z
  .string()
  .trim()
  .regex(/^[a-z0-9.-]+$/i, 'must be a host name');
const endpoint = z.object({
  host,
  port: z.number().int().min(1).max(65535).optional(),
  secure: z.boolean().default(true),
});

const schema = z.object({
  /** The tenant id: the stack's and the Worker environment's name part, and TENANT at run time. */
  tenant: z.string().regex(/^[a-z][a-z0-9-]{1,30}[a-z0-9]$/, 'must be 3–32 lower-case letters, digits and dashes'),
  /**
   * The host name devices are pointed at, e.g. `acme.sync.example.com` (optional: the platform's own URL works too).
   */
  hostname: host.optional(),
  imap: endpoint,
  smtp: endpoint,
  mailDomain: host.optional(),
  caldavUrl: z.string().url().optional(),
  carddavUrl: z.string().url().optional(),
  /** How the push watcher logs in to IMAP: a Dovecot-style master user, or passwords sealed under CREDENTIAL_KEY. */
  watcherLogin: z.enum(['master-user', 'sealed-credential']).default('master-user'),
  aws: z
    .object({
      account: z
        .string()
        .regex(/^\d{12}$/)
        .optional(),
      region: z.string().default('eu-west-1'),
      /** Secrets Manager secret (name or ARN) with the JSON keys the watcher login needs (see secretKeys). */
      secretName: z.string().optional(),
      /** An email address subscribed to the alarms' topic. */
      alarmEmail: z.string().email().optional(),
      memoryMb: z.number().int().min(128).max(10240).default(512),
      logRetentionDays: z.number().int().default(30),
    })
    .default({ region: 'eu-west-1', memoryMb: 512, logRetentionDays: 30 }),
});

export type TenantDeployment = z.infer<typeof schema>;

/** The secret keys the runtime reads for a watcher login mode (src/config.ts names). */
export function secretKeys(tenant: TenantDeployment): string[] {
  return tenant.watcherLogin === 'master-user' ? ['IMAP_MASTER_USER', 'IMAP_MASTER_PASSWORD'] : ['CREDENTIAL_KEY'];
}

/** The secret's default name: one per tenant. */
export function secretNameOf(tenant: TenantDeployment): string {
  return tenant.aws.secretName ?? `activesync-edge/${tenant.tenant}`;
}

/** The runtime settings (src/config.ts environment variables) that are not secret. */
export function plainSettings(tenant: TenantDeployment): Record<string, string> {
  return {
    TENANT: tenant.tenant,
    IMAP_HOST: tenant.imap.host,
    IMAP_PORT: String(tenant.imap.port ?? (tenant.imap.secure ? 993 : 143)),
    IMAP_SECURE: String(tenant.imap.secure),
    SMTP_HOST: tenant.smtp.host,
    SMTP_PORT: String(tenant.smtp.port ?? (tenant.smtp.secure ? 465 : 587)),
    SMTP_SECURE: String(tenant.smtp.secure),
    ...(tenant.mailDomain ? { MAIL_DOMAIN: tenant.mailDomain } : {}),
    ...(tenant.caldavUrl ? { CALDAV_URL: tenant.caldavUrl } : {}),
    ...(tenant.carddavUrl ? { CARDDAV_URL: tenant.carddavUrl } : {}),
    ...(tenant.hostname ? { PUBLIC_URL: `https://${tenant.hostname}` } : {}),
  };
}

export class TenantSettingsError extends Error {
  override readonly name = 'TenantSettingsError';
}

/** Checks parsed JSON against the schema; the message names each bad field. */
export function parseTenantDeployment(json: unknown, source = 'tenant settings'): TenantDeployment {
  const parsed = schema.safeParse(json);
  if (!parsed.success)
    throw new TenantSettingsError(
      `${source}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`).join('; ')}`,
    );
  return parsed.data;
}

export const TENANTS_DIR = join(import.meta.dirname, 'tenants');

/** infra/tenants/<tenant>.json, or a path to such a file. */
export function loadTenantDeployment(nameOrPath: string): TenantDeployment {
  const path = nameOrPath.endsWith('.json') ? nameOrPath : join(TENANTS_DIR, `${nameOrPath}.json`);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new TenantSettingsError(`no tenant settings at ${path}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new TenantSettingsError(`${path}: not JSON (${(err as Error).message})`);
  }
  return parseTenantDeployment(json, path);
}
