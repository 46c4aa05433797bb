// Radicale (CalDAV + CardDAV) for tests, as a child process with its files in <runDir>/radicale. Devices' servers reach
// it over https, as in production behind a TLS-terminating proxy: a small TLS front in this process (the test CA's
// localhost certificate) forwards to Radicale's own plain listener, which is also offered (`plainUrl`) for tests of
// ALLOW_PLAINTEXT_BACKENDS. (Radicale's own `ssl = True` closes connections without a TLS close_notify, which workerd's
// fetch reports as a lost connection; nginx or a load balancer in front is the usual deployment anyway.)
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { RADICALE_USERS_FILE, radicaleUserLine, TEST_DOMAIN } from './accounts.ts';
import { connect as connectTcp, type AddressInfo } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { freePort, retry, tailFile, waitPortsClosed, waitUntil, type RunningService } from './process.ts';
import type { TestUser } from './types.ts';
import { TLS_CERT_PATH, TLS_KEY_PATH } from './tls.ts';

/** A TLS listener on a free loopback port that pipes every connection to `port` in plaintext. */
async function startTlsFront(port: number): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<import('node:net').Socket>();
  const server: TlsServer = createTlsServer(
    { key: readFileSync(TLS_KEY_PATH), cert: readFileSync(TLS_CERT_PATH) },
    (client) => {
      const upstream = connectTcp(port, '127.0.0.1');
      sockets.add(client);
      sockets.add(upstream);
      const close = (): void => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      };
      client.on('error', close);
      upstream.on('error', close);
      // Radicale answers HTTP/1.0 and closes: end the TLS side cleanly (close_notify) once the answer is through.
      client.pipe(upstream).on('close', close);
      upstream.pipe(client);
    },
  );
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

export interface RadicaleService extends RunningService {
  /** Base URL with trailing slash: https://127.0.0.1:<port>/. */
  url: string;
  /** The same Radicale without TLS: http://127.0.0.1:<port>/. */
  plainUrl: string;
}

// Debian's radicale must run on Debian's python (a pyenv python3 on PATH lacks its modules).
const PYTHON = '/usr/bin/python3';
const RADICALE = '/usr/bin/radicale';
const AUTH_MODULE = 'ase_test_auth';
const STORAGE_MODULE = 'ase_test_storage';

// Radicale's multifilesystem store without fsync: a throw-away test store needs no crash safety (a killed process
// loses nothing that reached the page cache), and with fsync a seed of hundreds of items waits for the disk. Radicale
// 3.1 reads its _filesystem_fsync option from no config file, so the store turns it off itself.
const STORAGE_PLUGIN = `from radicale.storage import multifilesystem


class Storage(multifilesystem.Storage):
    def __init__(self, configuration):
        super().__init__(configuration)
        self._filesystem_fsync = False
`;

// htpasswd auth that also accepts the bare name ("alice" -> "alice@example.test"), so both
// login forms reach the same principal, as they reach the same mailbox in Dovecot. With an introspection URL it also
// takes `Authorization: Bearer` tokens, asking that endpoint (RFC 7662, POST token=…) whom each was issued to, as a
// DAV server behind an identity provider would; Radicale reads only Basic itself, so the token comes in through
// get_external_login.
function authPlugin(bearerIntrospectionUrl?: string): string {
  return `import json
import urllib.parse
import urllib.request

from radicale.auth import htpasswd

INTROSPECTION_URL = ${JSON.stringify(bearerIntrospectionUrl ?? '')}
BEARER = "bearer-token"


class Auth(htpasswd.Auth):
    def get_external_login(self, environ):
        header = environ.get("HTTP_AUTHORIZATION", "")
        if INTROSPECTION_URL and header.startswith("Bearer "):
            return (BEARER, header[len("Bearer "):].strip())
        return ()

    def login(self, login, password):
        if login == BEARER:
            data = urllib.parse.urlencode({"token": password}).encode()
            with urllib.request.urlopen(INTROSPECTION_URL, data=data, timeout=5) as answer:
                grant = json.load(answer)
            return grant.get("email", "") if grant.get("active") is True else ""
        if login and "@" not in login:
            login = login + "@${TEST_DOMAIN}"
        return super().login(login, password)
`;
}

function radicaleConf(d: string, runDir: string, port: number): string {
  return `# Generated by test/services/radicale.ts
[server]
hosts = 127.0.0.1:${port}

[auth]
type = ${AUTH_MODULE}
htpasswd_filename = ${runDir}/${RADICALE_USERS_FILE}
htpasswd_encryption = plain
# No delay after a failed login (tests may probe bad passwords).
delay = 0

[rights]
# owner_only, plus what every user may read: address books named directory* (the GAL) and calendars named
# public* (free/busy for ResolveRecipients). See RIGHTS below.
type = from_file
file = ${d}/rights

[storage]
filesystem_folder = ${d}/collections
# Radicale's file store without fsync (STORAGE_PLUGIN).
type = ${STORAGE_MODULE}

[web]
type = none

[logging]
level = info
`;
}

// First matching section wins. The first three are owner_only's rules; the last two let any logged-in user read
// another user's collections named `directory…` (a GAL address book) or `public…` (a calendar shared for free/busy).
const RIGHTS = `[root]
user: .+
collection:
permissions: R

[principal]
user: .+
collection: {user}
permissions: RW

[own-collections]
user: .+
collection: {user}/[^/]+
permissions: rw

[directory]
user: .+
collection: [^/]+/directory[^/]*
permissions: r

[public-calendars]
user: .+
collection: [^/]+/public[^/]*
permissions: r
`;

function writeFiles(runDir: string, port: number, users: readonly TestUser[], options: RadicaleOptions): string {
  const d = `${runDir}/radicale`;
  mkdirSync(`${d}/py`, { recursive: true });
  writeFileSync(`${d}/rights`, RIGHTS);
  mkdirSync(`${d}/collections`, { recursive: true });
  writeFileSync(`${d}/py/${AUTH_MODULE}.py`, authPlugin(options.bearerIntrospectionUrl));
  writeFileSync(`${d}/py/${STORAGE_MODULE}.py`, STORAGE_PLUGIN);
  writeFileSync(`${runDir}/${RADICALE_USERS_FILE}`, users.map(radicaleUserLine).join(''), { mode: 0o644 });
  const conf = `${d}/config`;
  writeFileSync(conf, radicaleConf(d, runDir, port));
  return conf;
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function startOnce(
  runDir: string,
  users: readonly TestUser[],
  options: RadicaleOptions,
): Promise<RadicaleService> {
  const port = await freePort();
  const conf = writeFiles(runDir, port, users, options);
  const log = `${runDir}/radicale/radicale.log`;
  const out = openSync(log, 'w');
  const env: NodeJS.ProcessEnv = { ...process.env, PYTHONPATH: `${runDir}/radicale/py`, PYTHONDONTWRITEBYTECODE: '1' };
  delete env.PYTHONHOME;
  const child = spawn(PYTHON, [RADICALE, '--config', conf], { env, stdio: ['ignore', out, out] });
  closeSync(out);
  let exited = false;
  child.once('exit', () => (exited = true));

  const stop = async (): Promise<void> => {
    child.kill('SIGTERM');
    if (!(await waitForExit(child, 5_000))) {
      child.kill('SIGKILL');
      await waitForExit(child, 5_000);
    }
    await waitPortsClosed([port]);
  };
  try {
    // Radicale logs "Listening on" once its socket is bound; exiting first means it failed (port taken).
    await waitUntil(
      () => {
        if (exited) throw new Error('radicale exited during start-up');
        return existsSync(log) && readFileSync(log, 'utf8').includes('Listening on');
      },
      'radicale to listen',
      15_000,
    );
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n${tailFile(log)}`);
  }
  const front = await startTlsFront(port);
  return {
    name: 'radicale',
    url: `https://127.0.0.1:${front.port}/`,
    plainUrl: `http://127.0.0.1:${port}/`,
    async stop() {
      await front.close();
      await stop();
    },
    killNow() {
      child.kill('SIGKILL');
    },
  };
}

export interface RadicaleOptions {
  /** Also take Bearer tokens, checked at this RFC 7662 introspection endpoint (its `email` is the user). */
  bearerIntrospectionUrl?: string;
}

export async function startRadicale(
  runDir: string,
  users: readonly TestUser[],
  options: RadicaleOptions = {},
): Promise<RadicaleService> {
  return retry(3, () => startOnce(runDir, users, options));
}
