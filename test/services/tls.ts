// The throwaway test CA and localhost certificate of test/fixtures/tls, which every test service serves TLS with.
// Node trusts the CA through NODE_EXTRA_CA_CERTS (read when a process starts: vitest.config.ts sets it for the test
// workers, spawned servers inherit it); workerd through SSL_CERT_FILE (BoringSSL reads it: wrangler-dev.ts and
// test/workers/smtp-global-setup.ts).
import { fileURLToPath } from 'node:url';

/** The folder of the fixtures, with a trailing slash. */
export const TLS_DIR = fileURLToPath(new URL('../fixtures/tls/', import.meta.url));
export const TEST_CA_PATH = `${TLS_DIR}ca.pem`;
export const TLS_CERT_PATH = `${TLS_DIR}localhost.pem`;
export const TLS_KEY_PATH = `${TLS_DIR}localhost.key`;
