/**
 * Settings from environment variables. The names are an interface other tooling depends on: keep them.
 * A missing or malformed required setting stops start-up with a message that names it.
 */
import { z } from 'zod';

export interface ServerConfig {
  port: number;
  /** Where the embedded (SQLite) state store keeps its files. */
  stateDir: string;
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
  return {
    port: e.PORT,
    stateDir: e.STATE_DIR,
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
