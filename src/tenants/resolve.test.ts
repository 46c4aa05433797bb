import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../config.ts';
import { challengeFor, parseAuthorization, parseBearerAuth, schemeAllowed } from '../protocol/auth.ts';
import { loginDomain, normalizeHost } from './resolve.ts';
import { loadTenants, parseTenants } from './settings.ts';

const ENV = { IMAP_HOST: 'imap.example.net' };

const TWO_TENANTS = JSON.stringify({
  defaults: { IMAP_SECURE: false, PROVISIONING: 'loose' },
  tenants: [
    {
      name: 'acme',
      hostnames: ['Acme.Sync.Example.com'],
      mailDomains: ['acme.example', 'acme.test'],
      settings: {
        IMAP_HOST: 'imap.acme.example',
        AUTH_MODE: 'both',
        BEARER_JWKS_URL: 'https://idp.acme.example/jwks.json',
        BEARER_ISSUER: 'https://idp.acme.example/',
        BEARER_AUDIENCE: 'activesync-edge',
        BEARER_USER_CLAIM: 'upn',
        POLICY: { DevicePasswordEnabled: true },
      },
    },
    {
      name: 'globex',
      hostnames: ['globex.sync.example.com'],
      mailDomains: ['globex.example'],
      settings: { IMAP_PORT: 1143, MAX_REQUEST_BYTES: 2048 },
    },
  ],
});

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

/** An unsigned JWT (header.payload.signature) with these claims. */
function jwt(claims: Record<string, unknown>): string {
  const part = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${part({ alg: 'RS256', typ: 'JWT' })}.${part(claims)}.c2lnbmF0dXJl`;
}

describe('host and domain normalisation', () => {
  it('drops the port and the case, keeps IPv6 literals whole', () => {
    expect(normalizeHost('Acme.Sync.Example.COM:443')).toBe('acme.sync.example.com');
    expect(normalizeHost('acme.sync.example.com.')).toBe('acme.sync.example.com');
    expect(normalizeHost('[::1]:8080')).toBe('[::1]');
    expect(normalizeHost('')).toBeUndefined();
  });

  it('takes the mail domain after the last @', () => {
    expect(loginDomain('Alice@ACME.example')).toBe('acme.example');
    expect(loginDomain('"a@b"@acme.example')).toBe('acme.example');
    expect(loginDomain('alice')).toBeUndefined();
    expect(loginDomain(undefined)).toBeUndefined();
  });
});

describe('one tenant from the environment', () => {
  it('is the config loadConfig reads, and serves every host and login', () => {
    const directory = loadTenants({ ...ENV, TENANT: 'solo', MAIL_DOMAIN: 'example.net' });
    expect(directory.entries).toHaveLength(1);
    expect(directory.entries[0]!.config).toEqual(loadConfig({ ...ENV, TENANT: 'solo', MAIL_DOMAIN: 'example.net' }));
    expect(directory.resolve('anything.example.org', 'bob@elsewhere.example')?.name).toBe('solo');
    expect(directory.resolve(undefined, undefined)?.name).toBe('solo');
    expect(directory.entries[0]!.config.authMode).toBe('basic');
  });
});

describe('several tenants (TENANTS / TENANTS_FILE)', () => {
  const directory = parseTenants(TWO_TENANTS, ENV);

  it('gives each tenant its own settings over the defaults and the environment', () => {
    const acme = directory.get('acme')!.config;
    const globex = directory.get('globex')!.config;
    expect(acme.tenant).toBe('acme');
    expect(acme.imap).toEqual({ host: 'imap.acme.example', port: 143, secure: false, sessionMaxAgeMs: 300_000 });
    expect(acme.authMode).toBe('both');
    expect(acme.provisioning).toBe('loose');
    expect(acme.policy.base).toMatchObject({ DevicePasswordEnabled: 1 });
    expect(acme.mailDomain).toBe('acme.example');
    expect(globex.imap).toEqual({ host: 'imap.example.net', port: 1143, secure: false, sessionMaxAgeMs: 300_000 });
    expect(globex.maxRequestBytes).toBe(2048);
    expect(globex.authMode).toBe('basic');
    expect(globex.mailDomain).toBe('globex.example');
  });

  it('resolves by Host first, then by the mail domain of the login', () => {
    expect(directory.resolve('acme.sync.example.com:443', 'x@globex.example')?.name).toBe('acme');
    expect(directory.resolve('sync.example.com', 'alice@ACME.test')?.name).toBe('acme');
    expect(directory.resolve('sync.example.com', 'alice@globex.example')?.name).toBe('globex');
    expect(directory.resolve('sync.example.com', 'alice', 'GLOBEX')?.name).toBe('globex');
  });

  it('finds no tenant for an unknown host and an unknown or missing domain, unless one is the default', () => {
    expect(directory.resolve('sync.example.com', 'alice@initech.example')).toBeUndefined();
    expect(directory.resolve('sync.example.com', 'alice')).toBeUndefined();
    expect(directory.resolve(undefined, undefined)).toBeUndefined();
    const withDefault = parseTenants(
      JSON.stringify([
        { name: 'a', mailDomains: ['a.example'] },
        { name: 'b', default: true },
      ]),
      ENV,
    );
    expect(withDefault.resolve('sync.example.com', 'alice@initech.example')?.name).toBe('b');
    expect(withDefault.resolve('sync.example.com', 'alice@a.example')?.name).toBe('a');
  });

  it('reads { "env": NAME } values from the environment, so the file holds no secret', () => {
    const text = JSON.stringify([
      {
        name: 'a',
        mailDomains: ['a.example'],
        settings: { IMAP_MASTER_USER: 'master', IMAP_MASTER_PASSWORD: { env: 'A_MASTER_PW' } },
      },
      { name: 'b', mailDomains: ['b.example'] },
    ]);
    expect(parseTenants(text, { ...ENV, A_MASTER_PW: 's3cret' }).get('a')!.config.push.master).toEqual({
      user: 'master',
      password: 's3cret',
    });
    expect(configError(() => parseTenants(text, ENV))).toMatch(
      /a\.IMAP_MASTER_PASSWORD names A_MASTER_PW, which is not set/,
    );
  });

  it('never hands the environment’s or the defaults’ master login to a tenant that names its own servers', () => {
    const env = { ...ENV, IMAP_MASTER_USER: 'syncmaster', IMAP_MASTER_PASSWORD: 'deployment-secret' };
    const directory = parseTenants(
      JSON.stringify([
        { name: 'same', mailDomains: ['same.example'], settings: { IMAP_PORT: 1143 } },
        { name: 'own', mailDomains: ['own.example'], settings: { IMAP_HOST: 'imap.own.example' } },
        { name: 'dav', mailDomains: ['dav.example'], settings: { CALDAV_URL: 'https://dav.dav.example/' } },
        {
          name: 'ownmaster',
          mailDomains: ['ownmaster.example'],
          settings: { IMAP_HOST: 'imap.ownmaster.example', IMAP_MASTER_USER: 'm', IMAP_MASTER_PASSWORD: 'own-secret' },
        },
      ]),
      env,
    );
    // On the deployment's own servers the deployment's master user still serves.
    expect(directory.get('same')!.config.push.master).toEqual({ user: 'syncmaster', password: 'deployment-secret' });
    expect(directory.get('own')!.config.push.master).toBeUndefined();
    expect(directory.get('dav')!.config.push.master).toBeUndefined();
    expect(directory.get('ownmaster')!.config.push.master).toEqual({ user: 'm', password: 'own-secret' });
    // Nor from the file's defaults.
    const fromDefaults = parseTenants(
      JSON.stringify({
        defaults: { IMAP_MASTER_USER: 'syncmaster', IMAP_MASTER_PASSWORD: 'default-secret' },
        tenants: [
          { name: 'own', settings: { IMAP_HOST: 'imap.own.example' } },
          { name: 'b', default: true },
        ],
      }),
      ENV,
    );
    expect(fromDefaults.get('own')!.config.push.master).toBeUndefined();
    expect(fromDefaults.get('b')!.config.push.master?.password).toBe('default-secret');
    // Half a master login of its own cannot borrow the other half.
    expect(
      configError(() =>
        parseTenants(
          JSON.stringify([{ name: 'half', settings: { IMAP_HOST: 'imap.half.example', IMAP_MASTER_USER: 'm' } }]),
          env,
        ),
      ),
    ).toMatch(/IMAP_MASTER_USER and IMAP_MASTER_PASSWORD go together \(tenant half\)/);
  });

  it('reads TENANTS_FILE with the runtime reader, and refuses it where there is none', () => {
    const directory = loadTenants(
      { ...ENV, TENANTS_FILE: '/etc/tenants.json' },
      { readFile: (path) => (path === '/etc/tenants.json' ? TWO_TENANTS : '') },
    );
    expect(directory.entries.map((t) => t.name)).toEqual(['acme', 'globex']);
    expect(configError(() => loadTenants({ ...ENV, TENANTS_FILE: '/etc/tenants.json' }))).toMatch(
      /TENANTS_FILE cannot be read on this runtime/,
    );
    const missing = (): never => {
      throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
    };
    expect(configError(() => loadTenants({ ...ENV, TENANTS_FILE: '/nope.json' }, { readFile: missing }))).toMatch(
      /\/nope\.json cannot be read \(ENOENT\)/,
    );
    expect(configError(() => loadTenants({ ...ENV, TENANTS_FILE: '/a', TENANTS: '[]' }))).toMatch(/exclude each other/);
  });

  it('names what is wrong in a malformed tenants document', () => {
    expect(configError(() => parseTenants('{', ENV))).toMatch(/TENANTS is not JSON/);
    expect(configError(() => parseTenants('[]', ENV))).toMatch(/tenants must name at least one tenant/);
    expect(configError(() => parseTenants(JSON.stringify([{ name: 'Bad Name' }]), ENV))).toMatch(
      /tenants\.0\.name must be/,
    );
    expect(configError(() => parseTenants(JSON.stringify([{ name: 'a', settings: { IMAP_HOTS: 'x' } }]), ENV))).toMatch(
      /IMAP_HOTS is not a setting/,
    );
    expect(
      configError(() => parseTenants(JSON.stringify([{ name: 'a', settings: { STATE_DIR: '/x' } }]), ENV)),
    ).toMatch(/STATE_DIR is a setting of the process/);
    expect(configError(() => parseTenants(JSON.stringify([{ name: 'a', extra: 1 }]), ENV))).toMatch(
      /tenants\.0 .*extra/i,
    );
    expect(configError(() => parseTenants(JSON.stringify([{ name: 'a', hostnames: ['not a host'] }]), ENV))).toMatch(
      /must be a host or domain name/,
    );
    expect(
      configError(() =>
        parseTenants(
          JSON.stringify([
            { name: 'a', mailDomains: ['x.example'] },
            { name: 'b', mailDomains: ['X.example'] },
          ]),
          ENV,
        ),
      ),
    ).toMatch(/mail domain x\.example/);
    expect(
      configError(() => parseTenants(JSON.stringify([{ name: 'a', hostnames: ['h.example'] }, { name: 'a' }]), ENV)),
    ).toMatch(/tenant name a/);
    expect(
      configError(() =>
        parseTenants(
          JSON.stringify([
            { name: 'a', default: true },
            { name: 'b', default: true },
          ]),
          ENV,
        ),
      ),
    ).toMatch(/more than one default/);
    // A tenant's own setting that loadConfig refuses: the message names the setting and the tenant.
    expect(
      configError(() =>
        parseTenants(JSON.stringify([{ name: 'a', settings: { AUTH_MODE: 'kerberos' } }, { name: 'b' }]), ENV),
      ),
    ).toMatch(/AUTH_MODE.*\(tenant a\)/);
    // Tokens are verified, so a Bearer tenant must name its identity provider.
    expect(
      configError(() =>
        parseTenants(JSON.stringify([{ name: 'a', settings: { AUTH_MODE: 'bearer' } }, { name: 'b' }]), ENV),
      ),
    ).toMatch(
      /AUTH_MODE=bearer needs BEARER_JWKS_URL, BEARER_ISSUER, BEARER_AUDIENCE, BEARER_USER_CLAIM.*\(tenant a\)/,
    );
    expect(configError(() => parseTenants(JSON.stringify([{ name: 'a' }, { name: 'b' }]), {}))).toMatch(
      /IMAP_HOST is required.*\(tenant a\)/,
    );
  });
});

describe('Authorization: Basic and Bearer', () => {
  it('takes a Bearer user from the JWT claims (email, upn, preferred_username), else the User parameter', () => {
    expect(parseBearerAuth(`Bearer ${jwt({ email: 'alice@acme.example', upn: 'other' })}`, 'ignored')).toMatchObject({
      login: 'alice@acme.example',
      password: '',
    });
    expect(parseBearerAuth(`Bearer ${jwt({ upn: 'bob@acme.example' })}`, undefined)?.login).toBe('bob@acme.example');
    expect(parseBearerAuth(`bearer ${jwt({ sub: '1234' })}`, 'carol')?.login).toBe('carol');
    expect(parseBearerAuth('Bearer opaque-token_123', 'dave@acme.example')).toEqual({
      login: 'dave@acme.example',
      password: '',
      domain: undefined,
      accessToken: 'opaque-token_123',
    });
  });

  it('refuses a Bearer header without a user or a malformed token', () => {
    expect(parseBearerAuth('Bearer opaque-token', undefined)).toBeUndefined();
    expect(parseBearerAuth('Bearer two words', 'alice')).toBeUndefined();
    expect(parseBearerAuth('Bearer ', 'alice')).toBeUndefined();
    // Not JSON in the middle: an opaque token, so the User parameter names the user.
    expect(parseBearerAuth('Bearer a.b.c', 'alice')?.login).toBe('alice');
  });

  it('parses either scheme, and the tenant AUTH_MODE decides which is allowed', () => {
    const basic = parseAuthorization(`Basic ${Buffer.from('alice@acme.example:pw').toString('base64')}`, undefined)!;
    const bearer = parseAuthorization('Bearer tok', 'alice@acme.example')!;
    expect(basic.accessToken).toBeUndefined();
    expect(bearer.accessToken).toBe('tok');
    expect([schemeAllowed('basic', basic), schemeAllowed('basic', bearer)]).toEqual([true, false]);
    expect([schemeAllowed('bearer', basic), schemeAllowed('bearer', bearer)]).toEqual([false, true]);
    expect([schemeAllowed('both', basic), schemeAllowed('both', bearer)]).toEqual([true, true]);
    expect(challengeFor('basic', 'ActiveSync')).toEqual({ 'WWW-Authenticate': 'Basic realm="ActiveSync"' });
    expect(challengeFor('both', 'ActiveSync')).toEqual({
      'WWW-Authenticate': 'Basic realm="ActiveSync", Bearer realm="ActiveSync"',
    });
  });
});
