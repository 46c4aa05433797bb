import { cloudflareTest } from '@cloudflare/vitest-pool-workers';
import { fileURLToPath } from 'node:url';
import { configDefaults, defineConfig } from 'vitest/config';

/** Tests that run inside workerd (the Cloudflare runtime), not in Node. */
const WORKERS_TESTS = 'test/workers/**/*.test.ts';

export default defineConfig({
  test: {
    // Two test files at a time even on a 2-core machine (vitest's default there is one): most files wait on Dovecot,
    // Radicale, Postfix, workerd or a spawned server rather than use the CPU, and every test makes its own users.
    maxWorkers: 2,
    projects: [
      {
        test: {
          name: 'node',
          include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, WORKERS_TESTS],
          globalSetup: ['test/services/global-setup.ts'],
          // Every test service speaks TLS with a certificate of the test CA (test/services/tls.ts). Node reads this
          // only when a process starts: the test workers get it here, servers they spawn inherit it.
          env: { NODE_EXTRA_CA_CERTS: fileURLToPath(new URL('./test/fixtures/tls/ca.pem', import.meta.url)) },
          testTimeout: 30_000,
          hookTimeout: 120_000,
        },
      },
      {
        // The Worker of wrangler.toml, Durable Objects included, in workerd; only an IMAP server (for the push sweep).
        plugins: [cloudflareTest({ wrangler: { configPath: './wrangler.toml' } })],
        // wrangler.toml's [alias], which the pool does not apply: the tests run the modules the Worker bundle ships.
        resolve: {
          alias: {
            'iconv-lite': fileURLToPath(new URL('./src/runtimes/cloudflare/iconv-lite.ts', import.meta.url)),
            'encoding-japanese': fileURLToPath(
              new URL('./src/runtimes/cloudflare/encoding-japanese.ts', import.meta.url),
            ),
          },
        },
        test: {
          name: 'workers',
          include: [WORKERS_TESTS],
          // A Dovecot of its own for the push sweep inside workerd (inject('imap')); SMTP servers in Node for the
          // submission test inside workerd (test/workers/smtp.test.ts).
          globalSetup: ['test/services/workers-global-setup.ts', 'test/workers/smtp-global-setup.ts'],
          // The contract's 100,000-item round trip takes ~3 s in workerd; 5 s would be tight on a busy 2-core CI.
          testTimeout: 30_000,
        },
      },
    ],
  },
});
