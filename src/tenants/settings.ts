/**
 * Per-tenant settings. One tenant: the environment, read by loadConfig (TENANT names it). Many:
 * `TENANTS_FILE` (a JSON file, Node and Lambda) or `TENANTS` (the same JSON in a variable, for Workers, whose code
 * cannot read files). Each tenant gives any setting of the README's table by its variable name; what it leaves out
 * comes from the file's `defaults`, then from the environment. The process's own settings (port, state store) are
 * the environment's only: every tenant shares the one state store, whose keys all start with the tenant.
 *
 * ```json
 * { "defaults": { "IMAP_SECURE": true, "PROVISIONING": "strict" },
 *   "tenants": [
 *     { "name": "acme", "hostnames": ["acme.sync.example.com"], "mailDomains": ["acme.example"],
 *       "settings": { "IMAP_HOST": "imap.acme.example", "AUTH_MODE": "both",
 *                     "IMAP_MASTER_PASSWORD": { "env": "ACME_MASTER_PASSWORD" }, "POLICY": { "DevicePasswordEnabled":
 *                     true } } },
 *     { "name": "globex", "default": true, "mailDomains": ["globex.example"], "settings": { "IMAP_HOST":
 *     "mail.globex.example" } } ] }
 * ```
 * A value `{ "env": "NAME" }` is read from that environment variable (a Worker secret, an SSM-injected variable), so
 * the file itself holds no secret. `POLICY` may be given as JSON rather than as a string.
 */
import * as z from 'zod'; // a namespace import lets the bundler drop the unused parts of zod (see src/config.ts)
import { ConfigError, loadConfig, SETTING_NAMES, type ServerConfig } from '../config.ts';
import { normalizeHost, singleTenant, TenantDirectory, type TenantEntry } from './resolve.ts';

type Env = Record<string, string | undefined>;

/** Settings of the process, not of a tenant (the admin API is the deployment's, src/admin/api.ts). */
const PROCESS_SETTINGS = new Set([
  'PORT',
  'STATE_DIR',
  'STATE_STORE',
  'DYNAMODB_TABLE',
  'DYNAMODB_ENDPOINT',
  'AWS_REGION',
  'TENANT',
  'ADMIN_TOKEN',
]);

/**
 * The servers a tenant may name, and the secrets that log in to them. A tenant that names any server of its own gets
 * these secrets only from its own settings, never from `defaults` or the environment: a master password meant for the
 * deployment's mail server must not be sent to a server a tenant chose. (CREDENTIAL_KEY is no such secret: it seals
 * and opens in this process and is never sent anywhere.)
 */
const SERVER_SETTINGS = ['IMAP_HOST', 'SMTP_HOST', 'SIEVE_HOST', 'CALDAV_URL', 'CARDDAV_URL', 'GAL_URL'] as const;
const SERVER_SECRETS = ['IMAP_MASTER_USER', 'IMAP_MASTER_PASSWORD'] as const;

/** `inherited` without the server secrets when the tenant's own settings name a server of its own. */
function inheritable(inherited: Env, own: Record<string, string | undefined>): Env {
  if (!SERVER_SETTINGS.some((key) => own[key] !== undefined)) return inherited;
  const kept = { ...inherited };
  for (const key of SERVER_SECRETS) delete kept[key];
  return kept;
}

const hostname = z
  .string()
  .trim()
  .toLowerCase()
  .regex(
    /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/,
    'must be a host or domain name',
  );

const settingValue = z.union([
  z.string(),
  z.number(),
  z.boolean(),
  z.object({ env: z.string().min(1) }).strict(),
  z.record(z.string(), z.unknown()),
]);

const settingsSchema = z.record(z.string(), settingValue).superRefine((settings, ctx) => {
  for (const key of Object.keys(settings)) {
    if (PROCESS_SETTINGS.has(key))
      ctx.addIssue({ code: 'custom', path: [key], message: 'is a setting of the process, not of a tenant' });
    else if (!SETTING_NAMES.includes(key)) ctx.addIssue({ code: 'custom', path: [key], message: 'is not a setting' });
  }
});

const tenantSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be 1–63 lower-case letters, digits, - or _'),
    hostnames: z.array(hostname).default([]),
    mailDomains: z.array(hostname).default([]),
    default: z.boolean().default(false),
    settings: settingsSchema.default({}),
  })
  .strict();

/** `{ defaults, tenants }`, or the tenants alone as an array. */
const fileSchema = z.preprocess(
  (v) => (Array.isArray(v) ? { tenants: v } : v),
  z
    .object({
      defaults: settingsSchema.default({}),
      tenants: z.array(tenantSchema).min(1, 'must name at least one tenant'),
    })
    .strict(),
);

type SettingValue = z.infer<typeof settingValue>;

/** A setting as loadConfig reads it: a string, with `{ env }` references looked up. */
function settingText(key: string, value: SettingValue, env: Env, where: string): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if ('env' in value && typeof value.env === 'string' && Object.keys(value).length === 1) {
    const found = env[value.env];
    if (found === undefined || found.trim() === '')
      throw new ConfigError(`invalid tenants: ${where}.${key} names ${value.env}, which is not set`);
    return found;
  }
  if (key === 'POLICY') return JSON.stringify(value);
  throw new ConfigError(`invalid tenants: ${where}.${key} must be a string, number, boolean or { "env": NAME }`);
}

function settingsText(
  settings: Record<string, SettingValue>,
  env: Env,
  where: string,
): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(settings).map(([k, v]) => [k, settingText(k, v, env, where)]));
}

function duplicates(values: string[]): string[] {
  return [...new Set(values.filter((v, i) => values.indexOf(v) !== i))];
}

/** Parses and checks a tenants document (the text of TENANTS_FILE or TENANTS) into a directory. */
export function parseTenants(
  text: string,
  env: Env,
  runtimeDefaults: Record<string, string> = {},
  source = 'TENANTS',
): TenantDirectory {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`invalid configuration: ${source} is not JSON (${(err as Error).message})`);
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'} ${i.message}`);
    throw new ConfigError(`invalid configuration: ${source}: ${problems.join('; ')}`);
  }
  const { defaults, tenants } = parsed.data;
  const clash = [
    ...duplicates(tenants.map((t) => t.name)).map((n) => `tenant name ${n}`),
    ...duplicates(tenants.flatMap((t) => [...new Set(t.hostnames)])).map((h) => `hostname ${h}`),
    ...duplicates(tenants.flatMap((t) => [...new Set(t.mailDomains)])).map((d) => `mail domain ${d}`),
  ];
  if (tenants.filter((t) => t.default).length > 1) clash.push('more than one default tenant');
  if (clash.length)
    throw new ConfigError(`invalid configuration: ${source}: ${clash.join('; ')} (each may belong to one tenant only)`);

  const base = settingsText(defaults, env, 'defaults');
  const entries: TenantEntry[] = tenants.map((t) => {
    const own = settingsText(t.settings, env, t.name);
    let config: ServerConfig;
    try {
      config = loadConfig(
        {
          ...inheritable({ ...env, ...base }, own),
          // A tenant's users without a domain in their login get its first mail domain, unless it says otherwise.
          ...(t.mailDomains[0] !== undefined ? { MAIL_DOMAIN: t.mailDomains[0] } : {}),
          ...own,
          TENANT: t.name,
        },
        runtimeDefaults,
      );
    } catch (err) {
      if (err instanceof ConfigError) throw new ConfigError(`${err.message} (tenant ${t.name})`);
      throw err;
    }
    return {
      name: t.name,
      hostnames: [...new Set(t.hostnames)].map((h) => normalizeHost(h)!),
      mailDomains: [...new Set(t.mailDomains)],
      isDefault: t.default,
      config,
    };
  });
  return new TenantDirectory(entries);
}

/**
 * The tenants of this process: from `TENANTS_FILE` (read with `readFile`; a runtime without files passes none), from
 * `TENANTS`, or the one tenant of the environment (unchanged single-tenant behaviour).
 */
export function loadTenants(
  env: Env,
  options: { runtimeDefaults?: Record<string, string>; readFile?: (path: string) => string } = {},
): TenantDirectory {
  const file = env.TENANTS_FILE?.trim();
  const inline = env.TENANTS?.trim();
  if (file && inline) throw new ConfigError('invalid configuration: TENANTS_FILE and TENANTS exclude each other');
  if (file) {
    if (!options.readFile)
      throw new ConfigError('invalid configuration: TENANTS_FILE cannot be read on this runtime; use TENANTS');
    let text: string;
    try {
      text = options.readFile(file);
    } catch (err) {
      throw new ConfigError(
        `invalid configuration: TENANTS_FILE ${file} cannot be read (${(err as { code?: string }).code ?? (err as Error).message})`,
      );
    }
    return parseTenants(text, env, options.runtimeDefaults, `TENANTS_FILE ${file}`);
  }
  if (inline) return parseTenants(inline, env, options.runtimeDefaults);
  const config = loadConfig(env, options.runtimeDefaults);
  return singleTenant(config);
}
