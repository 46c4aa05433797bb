// Makes sure the Debian packages the test services need are installed.
// CI and fresh machines start without them; as root we install them with apt-get,
// otherwise we fail with a message that names what is missing.
import { execFileSync, spawnSync } from 'node:child_process';

/**
 * Every package the test suite needs from Debian: the services, the libwbxml cross-check, and the browser the console
 * test drives (test/e2e/console.test.ts: playwright-core with /usr/bin/chromium, no browser download).
 */
export const TEST_DEBIAN_PACKAGES: readonly string[] = [
  'dovecot-imapd',
  'dovecot-lmtpd',
  'dovecot-sieve',
  'dovecot-managesieved',
  'radicale',
  'postfix',
  'libwbxml2-utils',
  'chromium',
];

// Postfix asks questions on install; answer them up front.
const DEBCONF_PRESEED = [
  'postfix postfix/main_mailer_type select Local only',
  'postfix postfix/mailname string localhost',
].join('\n');

const APT_ENV = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };

/** True when dpkg reports the package as fully installed. */
export function isDebianPackageInstalled(pkg: string): boolean {
  // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax, not a template
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() === 'install ok installed';
}

export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function aptGet(args: string[]): { ok: boolean; output: string } {
  // Wait for the dpkg lock rather than failing when another run installs at the same time.
  const r = spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=300', ...args], {
    env: APT_ENV,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

/**
 * Installs the missing ones of `pkgs` (noninteractive, as root). Runs `apt-get update`
 * only when the first install attempt fails (stale or missing package lists).
 * Throws an error naming the packages when they are missing and cannot be installed.
 */
export function ensureDebianPackages(pkgs: readonly string[]): void {
  const missing = pkgs.filter((p) => !isDebianPackageInstalled(p));
  if (missing.length === 0) return;
  const hint = `apt-get install -y ${missing.join(' ')}`;
  if (!isRoot()) {
    throw new Error(
      `Missing Debian packages: ${missing.join(', ')}. Not root, so cannot install them; run as root: ${hint}`,
    );
  }
  if (missing.includes('postfix')) {
    execFileSync('debconf-set-selections', { input: `${DEBCONF_PRESEED}\n`, env: APT_ENV });
  }
  const installArgs = ['install', '-y', '-q', ...missing];
  let result = aptGet(installArgs);
  if (!result.ok) {
    const update = aptGet(['update', '-q']);
    result = update.ok ? aptGet(installArgs) : update;
  }
  const still = missing.filter((p) => !isDebianPackageInstalled(p));
  if (!result.ok || still.length > 0) {
    throw new Error(
      `Could not install Debian packages: ${(still.length ? still : missing).join(', ')} (${hint}).\n` +
        result.output.slice(-2000),
    );
  }
}
