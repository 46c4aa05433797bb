/**
 * Settings kept in AWS Secrets Manager rather than in the environment (Lambda and containers on AWS): `SECRET_ARN`
 * names the secret(s), each a JSON object of settings by their variable names (`IMAP_MASTER_PASSWORD`,
 * `CREDENTIAL_KEY`, `ADMIN_TOKEN`, `ORIGIN_VERIFY_SECRET`, …). They are read with GetSecretValue when the process
 * starts, kept in memory only, and read again after SECRET_REFRESH_MS or, sooner, when a login made with one of them
 * was refused (the secret was rotated): whoever can read the function's or the task's configuration sees only the
 * ARN, never a value.
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ConfigError } from '../config.ts';

type Env = Record<string, string | undefined>;

/** The setting naming the secrets: ARNs (or names), comma-separated; the role may read exactly these. */
export const SECRET_ARN = 'SECRET_ARN';
/** How long values are used before they are read again (a rotation is seen within this time at the latest). */
export const SECRET_REFRESH_MS = 15 * 60_000;
/** A refused login asks for a new read, but at most this often (strangers can cause refused logins). */
export const SECRET_STALE_MIN_MS = 60_000;

/** Names a secret may set: settings, not the process's AWS identity or the secret list itself. */
const SETTING_NAME = /^[A-Z][A-Z0-9_]*$/;
const RESERVED = /^(AWS_|LAMBDA_|_)|^SECRET_ARN$/;

/** The settings of one secret's JSON text; the message names the secret and the key, never a value. */
export function parseSecretSettings(text: string | undefined, secret: string): Record<string, string> {
  let json: unknown;
  try {
    json = JSON.parse(text ?? '');
  } catch {
    throw new ConfigError(`invalid configuration: secret ${secret} is not a JSON object of settings`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw new ConfigError(`invalid configuration: secret ${secret} is not a JSON object of settings`);
  const settings: Record<string, string> = {};
  for (const [key, value] of Object.entries(json)) {
    if (!SETTING_NAME.test(key) || RESERVED.test(key))
      throw new ConfigError(`invalid configuration: secret ${secret} sets ${key}, which a secret may not set`);
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean')
      throw new ConfigError(`invalid configuration: secret ${secret}: ${key} must be a string`);
    settings[key] = String(value);
  }
  return settings;
}

/** The secrets SECRET_ARN names (none: an empty list). */
export function secretIdsOf(env: Env): string[] {
  return (env[SECRET_ARN] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** AWS credentials from an environment given explicitly (Lambda puts the role's there; tests, their own). */
export function awsCredentialsOf(
  env: Env,
): { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined {
  if (!env.AWS_ACCESS_KEY_ID || !env.AWS_SECRET_ACCESS_KEY) return undefined;
  return {
    accessKeyId: env.AWS_ACCESS_KEY_ID,
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
    ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}),
  };
}

/** A Secrets Manager client for the environment: its region (or the ARN's), credentials and endpoint, if given. */
export function secretsManagerClient(env: Env): SecretsManagerClient {
  const fromArn = secretIdsOf(env)
    .map((id) => /^arn:[^:]+:secretsmanager:([^:]+):/.exec(id)?.[1])
    .find(Boolean);
  const region = env.AWS_REGION ?? fromArn;
  const credentials = awsCredentialsOf(env);
  // The SDK's own name for a service's endpoint (a local emulation in tests); read here from the given environment.
  const endpoint = env.AWS_ENDPOINT_URL_SECRETS_MANAGER;
  return new SecretsManagerClient({
    ...(region ? { region } : {}),
    ...(credentials ? { credentials } : {}),
    ...(endpoint ? { endpoint } : {}),
  });
}

export interface SecretSettingsOptions {
  env: Env;
  client?: SecretsManagerClient;
  /** The clock (tests move it). */
  now?: () => number;
}

/** The environment with the secrets' settings, read once and kept for the process. */
export class SecretSettings {
  readonly ids: string[];
  private readonly client: SecretsManagerClient | undefined;
  private readonly now: () => number;
  private cached: { env: Env; version: string; at: number } | undefined;
  private reading: Promise<{ env: Env; version: string }> | undefined;
  private staleAt: number | undefined;
  /** GetSecretValue calls made (for the start-up log line and tests). */
  reads = 0;

  constructor(private readonly options: SecretSettingsOptions) {
    this.ids = secretIdsOf(options.env);
    this.client = this.ids.length ? (options.client ?? secretsManagerClient(options.env)) : undefined;
    this.now = options.now ?? Date.now;
  }

  /**
   * The environment with every secret's settings added, and a version that changes when a secret does. A setting
   * both in the environment and in a secret stops start-up: a secret value belongs only in the secret.
   */
  async environment(): Promise<{ env: Env; version: string }> {
    if (!this.client) return { env: this.options.env, version: '' };
    const due =
      !this.cached ||
      this.now() - this.cached.at >= SECRET_REFRESH_MS ||
      (this.staleAt !== undefined && this.staleAt >= this.cached.at);
    if (!due) return this.cached!;
    this.reading ??= this.read().finally(() => (this.reading = undefined));
    try {
      const read = await this.reading;
      this.cached = { ...read, at: this.now() };
      return read;
    } catch (err) {
      // Once read, the values in hand keep serving when a later read fails (the caller logs it).
      if (this.cached) {
        this.cached.at = this.now();
        throw new SecretRefreshError(err);
      }
      throw err;
    }
  }

  /**
   * A login made with a secret's value was refused: read again at the next use (a rotated password), at most once
   * per SECRET_STALE_MIN_MS.
   */
  markStale(): void {
    if (!this.cached || this.now() - this.cached.at < SECRET_STALE_MIN_MS) return;
    this.staleAt = this.now();
  }

  private async read(): Promise<{ env: Env; version: string }> {
    const merged: Env = { ...this.options.env };
    const versions: string[] = [];
    const answers = await Promise.all(
      this.ids.map(async (id) => {
        this.reads++;
        try {
          return await this.client!.send(new GetSecretValueCommand({ SecretId: id }));
        } catch (err) {
          // AWS's error names and messages say what is wrong (AccessDeniedException, ResourceNotFoundException)
          // and carry no secret value.
          const e = err as { name?: string; message?: string };
          throw new ConfigError(`invalid configuration: secret ${id} cannot be read (${e.name}: ${e.message})`);
        }
      }),
    );
    for (const [i, answer] of answers.entries()) {
      const id = this.ids[i]!;
      const settings = parseSecretSettings(answer.SecretString, id);
      for (const [key, value] of Object.entries(settings)) {
        const plain = this.options.env[key];
        if (plain !== undefined && plain.trim() !== '')
          throw new ConfigError(
            `invalid configuration: ${key} is set in the environment and in secret ${id}; keep it in the secret only`,
          );
        if (merged[key] !== undefined && merged[key] !== this.options.env[key])
          throw new ConfigError(`invalid configuration: ${key} is set in more than one secret of ${SECRET_ARN}`);
        merged[key] = value;
      }
      versions.push(answer.VersionId ?? '');
    }
    return { env: merged, version: versions.join(',') };
  }
}

/** A re-read failed; the values read before are still in use. */
export class SecretRefreshError extends Error {
  override readonly name = 'SecretRefreshError';
  constructor(readonly reason: unknown) {
    super(`secret refresh failed: ${(reason as Error)?.message ?? String(reason)}`);
  }
}
