/**
 * Settings from environment variables. The names are an interface other tooling depends on: keep them.
 * A missing or malformed required setting stops start-up with a message that names it.
 */
import { z } from 'zod';

/** Where sync state lives: the embedded SQLite file (default), or a DynamoDB table shared by several instances. */
export type StateStoreConfig =
  | { kind: 'sqlite'; dir: string }
  | { kind: 'dynamodb'; table: string; endpoint: string | undefined; region: string | undefined };

export interface ServerConfig {
  port: number;
  state: StateStoreConfig;
  imap: { host: string; port: number; secure: boolean };
  smtp: { host: string; port: number; secure: boolean };
  caldavUrl: string | undefined;
  carddavUrl: string | undefined;
  /** Largest request body accepted, in bytes. */
  maxRequestBytes: number;
  /** The tenant this process serves until multi-tenancy arrives. */
  tenant: string;
}

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
  SMTP_HOST: z.string().trim().min(1).optional(),
  SMTP_PORT: port.optional(),
  SMTP_SECURE: flag.default(true),
  CALDAV_URL: url.optional(),
  CARDDAV_URL: url.optional(),
  MAX_REQUEST_BYTES: z.coerce.number().int().min(1024).default(25 * 1024 * 1024),
  TENANT: z.string().trim().min(1).default('default'),
});

/** Reads the settings from an environment (process.env on Node, the bindings on Workers). */
export function loadConfig(env: Record<string, string | undefined>): ServerConfig {
  // An empty variable counts as unset, as in most deployment tools.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v.trim() !== ''));
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  if (e.STATE_STORE === 'dynamodb' && !e.DYNAMODB_TABLE) {
    throw new ConfigError('invalid configuration: DYNAMODB_TABLE is required when STATE_STORE=dynamodb');
  }
  return {
    port: e.PORT,
    state:
      e.STATE_STORE === 'dynamodb'
        ? { kind: 'dynamodb', table: e.DYNAMODB_TABLE!, endpoint: e.DYNAMODB_ENDPOINT, region: e.AWS_REGION }
        : { kind: 'sqlite', dir: e.STATE_DIR },
    imap: { host: e.IMAP_HOST, port: e.IMAP_PORT ?? (e.IMAP_SECURE ? 993 : 143), secure: e.IMAP_SECURE },
    smtp: {
      host: e.SMTP_HOST ?? e.IMAP_HOST,
      port: e.SMTP_PORT ?? (e.SMTP_SECURE ? 465 : 587),
      secure: e.SMTP_SECURE,
    },
    caldavUrl: e.CALDAV_URL,
    carddavUrl: e.CARDDAV_URL,
    maxRequestBytes: e.MAX_REQUEST_BYTES,
    tenant: e.TENANT,
  };
}
