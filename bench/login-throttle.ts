/**
 * The login throttle's state operations per request (src/protocol/throttle.ts), counted on the SQLite store: a
 * device's first login from an address, its steady requests in the same process, the same on another instance (a
 * process that has not seen the login), and a wrong password. The authenticator here accepts one password without a
 * mail server: what is measured is the throttle's own reads and writes, which do not depend on who checks the
 * password (the login count per request is test/e2e/logins.test.ts's).
 */
import type { AuthOutcome, Authenticator, Credentials } from '../src/backends/auth.ts';
import { loadConfig } from '../src/config.ts';
import { forgetVerifiedLogins, guardedAuthenticate } from '../src/protocol/throttle.ts';
import { openSqliteStateStore } from '../src/state/sqlite-node.ts';
import type { StateStore } from '../src/state/types.ts';

const READS = new Set(['getAuthFailures', 'getKnownLogin']);
const WRITES = new Set(['addAuthFailure', 'refundAuthFailure', 'clearAuthFailures', 'putKnownLogin']);

export interface ThrottleFigures {
  scenario: string;
  reads: number;
  writes: number;
}

/** A store that counts the throttle's calls. */
function counting(store: StateStore): { store: StateStore; take(): { reads: number; writes: number } } {
  let reads = 0;
  let writes = 0;
  const proxy = new Proxy(store, {
    get(target, name, receiver) {
      const value = Reflect.get(target, name, receiver);
      if (typeof value !== 'function' || typeof name !== 'string') return value;
      return (...args: unknown[]) => {
        if (READS.has(name)) reads += 1;
        if (WRITES.has(name)) writes += 1;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return {
    store: proxy,
    take() {
      const out = { reads, writes };
      reads = 0;
      writes = 0;
      return out;
    },
  };
}

export async function measureLoginThrottle(): Promise<ThrottleFigures[]> {
  const { store, close } = openSqliteStateStore(':memory:');
  const counted = counting(store);
  const config = loadConfig({
    IMAP_HOST: '127.0.0.1',
    IMAP_PORT: '1',
    TENANT: 'bench',
    ALLOW_PLAINTEXT_BACKENDS: 'true',
  });
  const authenticator: Authenticator = {
    async authenticate(c: Credentials): Promise<AuthOutcome> {
      return c.password === 'right' ? { ok: true, user: { login: c.login, password: c.password } } : { ok: false };
    },
  };
  const deps = { config, state: counted.store, authenticator };
  const login = (password: string) =>
    guardedAuthenticate(deps, { login: 'alice@example.test', password, domain: undefined }, '192.0.2.1');
  const figures: ThrottleFigures[] = [];
  const run = async (scenario: string, step: () => Promise<unknown>, times = 1) => {
    counted.take();
    for (let i = 0; i < times; i++) await step();
    const { reads, writes } = counted.take();
    figures.push({ scenario, reads: reads / times, writes: writes / times });
  };
  try {
    await run('first login from an address', () => login('right'));
    await run('next requests, same process', () => login('right'), 100);
    await run(
      'next request, another instance',
      async () => {
        forgetVerifiedLogins();
        await login('right');
      },
      100,
    );
    await run('wrong password', () => login('wrong'));
    await run('right password after a typo, same process', () => login('right'));
  } finally {
    close();
  }
  return figures;
}

export async function runLoginThrottleBench(): Promise<void> {
  console.log('\nLogin throttle: state operations per request (SQLite store, AUTH_FAIL_* defaults, one address)');
  console.log('scenario                                     reads   writes');
  for (const f of await measureLoginThrottle())
    console.log(`${f.scenario.padEnd(44)} ${String(f.reads).padStart(5)}   ${String(f.writes).padStart(6)}`);
}
