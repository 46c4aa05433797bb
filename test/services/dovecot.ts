// Dovecot (IMAP + LMTP) for tests: a self-contained config in the run dir (never
// /etc/dovecot/conf.d), on loopback, free ports, our own users and master user. IMAP and ManageSieve offer STARTTLS
// and IMAP also listens with implicit TLS, with the localhost certificate of the test CA (test/fixtures/tls).
import { execFileSync } from 'node:child_process';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { DOVECOT_USERS_DIR, MASTER_USER, writeDovecotUser } from './accounts.ts';
import {
  freePorts,
  isPortOpen,
  readPidFile,
  retry,
  runDaemonStarter,
  signal,
  tailFile,
  terminate,
  waitPortsClosed,
  waitUntil,
  type RunningService,
} from './process.ts';
import type { TestUser } from './types.ts';
import { TLS_DIR } from './tls.ts';

export interface DovecotService extends RunningService {
  /** IMAP; offers STARTTLS unless started with `tls: false`. */
  imapPort: number;
  /** IMAP with implicit TLS (993-style); 0 when started with `tls: false`. */
  imapsPort: number;
  lmtpPort: number;
  /** ManageSieve (RFC 5804); offers STARTTLS unless `tls: false`. LMTP deliveries run the user's active script. */
  sievePort: number;
  /** ManageSieve with implicit TLS from the first byte; 0 when started with `tls: false`. */
  sievesPort: number;
}

/** Which system accounts Dovecot runs as: vmail/dovecot/dovenull as root, ourselves otherwise. */
interface DovecotAccounts {
  mailUser: string;
  mailGroup: string;
  internalUser: string;
  internalGroup: string;
  loginUser: string;
}

function accountsFor(isRoot: boolean): DovecotAccounts {
  if (!isRoot) {
    const me = userInfo().username;
    const group = execFileSync('id', ['-gn'], { encoding: 'utf8' }).trim();
    return { mailUser: me, mailGroup: group, internalUser: me, internalGroup: group, loginUser: me };
  }
  ensureSystemUser('vmail');
  return {
    mailUser: 'vmail',
    mailGroup: 'vmail',
    internalUser: 'dovecot',
    internalGroup: 'dovecot',
    loginUser: 'dovenull',
  };
}

/** Mail files belong to a dedicated unprivileged user, as on a real server. */
function ensureSystemUser(name: string): void {
  try {
    execFileSync('id', ['-u', name], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', [
      '--system',
      '--no-create-home',
      '--home-dir',
      '/nonexistent',
      '--shell',
      '/usr/sbin/nologin',
      name,
    ]);
  }
}

/**
 * Dovecot's sendmail_path for Sieve (vacation replies): `node lmtp-sendmail.mjs <host> <port> [-f sender] -- <rcpt>…`
 * reads the message on stdin and delivers it over LMTP with a null return path (as auto-replies are sent).
 */
const LMTP_SENDMAIL = 'lmtp-sendmail.mjs';
const LMTP_SENDMAIL_SOURCE = `import { connect } from 'node:net';
const [host, port, ...args] = process.argv.slice(2);
const dash = args.indexOf('--');
const rcpts = dash >= 0 ? args.slice(dash + 1) : args.filter((a) => a.includes('@'));
const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const body = Buffer.concat(chunks).toString('latin1').replace(/\\r?\\n/g, '\\r\\n').replace(/^\\./gm, '..');
const commands = ['LHLO localhost', 'MAIL FROM:<>', ...rcpts.map((r) => 'RCPT TO:<' + r + '>'), 'DATA', body.replace(/(\\r\\n)?$/, '\\r\\n') + '.', 'QUIT'];
const socket = connect(Number(port), host);
socket.setEncoding('latin1');
let buffer = '';
let step = -1;
socket.on('data', (d) => {
  buffer += d;
  let i;
  while ((i = buffer.indexOf('\\r\\n')) >= 0) {
    const line = buffer.slice(0, i);
    buffer = buffer.slice(i + 2);
    if (line[3] === '-') continue;
    if (!/^[23]/.test(line)) { process.stderr.write(line + '\\n'); process.exit(75); }
    step++;
    if (step < commands.length) socket.write(commands[step] + '\\r\\n', 'latin1');
    else socket.end();
  }
});
socket.on('close', () => process.exit(step >= commands.length - 1 ? 0 : 75));
socket.on('error', (e) => { process.stderr.write(String(e) + '\\n'); process.exit(75); });
`;

function specialFolder(name: string, flag: string): string {
  return `  mailbox ${name} {\n    special_use = \\${flag}\n    auto = subscribe\n  }\n`;
}

/** What a second, differently configured Dovecot (e.g. without CONDSTORE) needs; the default start uses none of it. */
export interface DovecotOptions {
  /** Appended to the generated dovecot.conf (later settings override earlier ones), e.g. `imap_capability = …`. */
  extraConfig?: string;
  /**
   * false: no TLS at all (`ssl = no`: no STARTTLS offered, no implicit-TLS listener), for tests of what a client does
   * with a server that offers no encryption. Default true.
   */
  tls?: boolean;
}

interface DovecotPorts {
  imap: number;
  imaps: number;
  lmtp: number;
  sieve: number;
  sieves: number;
}

function dovecotConf(runDir: string, ports: DovecotPorts, acc: DovecotAccounts, tls: boolean): string {
  const d = `${runDir}/dovecot`;
  const { imap: imapPort, imaps: imapsPort, lmtp: lmtpPort, sieve: sievePort, sieves: sievesPort } = ports;
  // STARTTLS on the IMAP and ManageSieve ports and implicit TLS on the imaps one, with the test CA's localhost
  // certificate (SAN 127.0.0.1 and localhost). Plaintext logins stay allowed for tests of the plaintext setting.
  const ssl = tls
    ? `ssl = yes\nssl_cert = <${TLS_DIR}localhost.pem\nssl_key = <${TLS_DIR}localhost.key\nssl_min_protocol = TLSv1.2`
    : 'ssl = no';
  const imaps = tls ? `    address = 127.0.0.1\n    port = ${imapsPort}\n    ssl = yes` : '    port = 0';
  const sieves = tls ? `    address = 127.0.0.1\n    port = ${sievesPort}\n    ssl = yes` : '    port = 0';
  return `# Generated by test/services/dovecot.ts
base_dir = ${d}/run
state_dir = ${d}/state
log_path = ${d}/dovecot.log
listen = 127.0.0.1
protocols = imap lmtp sieve
${ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
# Tests log in many times a second; no artificial delays.
auth_failure_delay = 0 secs
# Log failed logins (with the reason) to dovecot.log.
auth_verbose = yes
auth_master_user_separator = ${MASTER_USER.separator}
default_internal_user = ${acc.internalUser}
default_internal_group = ${acc.internalGroup}
default_login_user = ${acc.loginUser}
mail_uid = ${acc.mailUser}
mail_gid = ${acc.mailGroup}
first_valid_uid = 1
# %n (user without domain): alice and alice@example.test share one mailbox.
mail_home = ${runDir}/mail/%n
# mdbox: Dovecot's own indexed format; Maildir rescans a directory of every message whenever it changes, which
# makes a Sync of a 100,000-message folder cost what the folder size says, not what changed.
mail_location = mdbox:~/mdbox
# No fsync on commit: a throw-away test store needs no crash safety (a killed process loses nothing that reached
# the page cache), and every APPEND, flag change and LMTP delivery of the tests would wait for the disk.
mail_fsync = never
# Fast IDLE notifications (default 30 s when inotify misses a change).
mailbox_idle_check_interval = 1 secs

namespace inbox {
  inbox = yes
  separator = /
${specialFolder('Sent', 'Sent')}${specialFolder('Drafts', 'Drafts')}${specialFolder('Trash', 'Trash')}${specialFolder('Junk', 'Junk')}${specialFolder('Archive', 'Archive')}}

# Master users first: "alice*syncmaster" + master password logs in as alice.
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${d}/master-users
  master = yes
  result_success = continue
}
# One file per user (%n = name without domain), see accounts.ts; a missing file = unknown user.
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${runDir}/${DOVECOT_USERS_DIR}/%n
}
userdb {
  driver = static
  args = uid=${acc.mailUser} gid=${acc.mailGroup} home=${runDir}/mail/%n
}

service imap-login {
  chroot =
  # A TLS session keeps its login process as the proxy for its whole life: one process per connection (Dovecot's
  # default) would cap the suite's parallel TLS connections at default_process_limit (100). Serve many per process.
  service_count = 0
  client_limit = 1000
  process_min_avail = 2
  inet_listener imap {
    address = 127.0.0.1
    port = ${imapPort}
  }
  inet_listener imaps {
${imaps}
  }
}
service anvil {
  chroot =
  # No per-IP penalty after failed logins: every test connects from 127.0.0.1, and one wrong-password test would
  # slow down everyone else's logins by seconds.
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service lmtp {
  # Sieve's sendmail stand-in is node, which reserves more address space than the default 256 MB limit allows.
  vsz_limit = 0
  inet_listener lmtp {
    address = 127.0.0.1
    port = ${lmtpPort}
  }
}
protocol imap {
  # Many parallel test connections from one IP.
  mail_max_userip_connections = 500
}
# Sieve: scripts uploaded over ManageSieve run on LMTP delivery; what they send (vacation replies) goes back into
# Dovecot over LMTP through a small sendmail stand-in, so replies land in local users' INBOXes.
service managesieve-login {
  chroot =
  service_count = 0
  client_limit = 1000
  inet_listener sieve {
    address = 127.0.0.1
    port = ${sievePort}
  }
  inet_listener sieves {
${sieves}
  }
}
protocol lmtp {
  mail_plugins = $mail_plugins sieve
}
plugin {
  sieve = file:~/sieve;active=~/.dovecot.sieve
}
sendmail_path = ${process.execPath} ${d}/${LMTP_SENDMAIL} 127.0.0.1 ${lmtpPort}
`;
}

function writeConfig(
  runDir: string,
  ports: DovecotPorts,
  acc: DovecotAccounts,
  users: readonly TestUser[],
  options: DovecotOptions,
): string {
  const d = `${runDir}/dovecot`;
  for (const sub of ['run', 'state']) mkdirSync(`${d}/${sub}`, { recursive: true });
  const mailDir = `${runDir}/mail`;
  mkdirSync(mailDir, { recursive: true });
  if (acc.mailUser === 'vmail') {
    const uid = Number(execFileSync('id', ['-u', 'vmail'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'vmail'], { encoding: 'utf8' }).trim());
    chownSync(mailDir, uid, gid);
  }
  mkdirSync(`${runDir}/${DOVECOT_USERS_DIR}`, { recursive: true });
  for (const u of users) writeDovecotUser(runDir, u);
  writeFileSync(`${d}/master-users`, `${MASTER_USER.user}:{PLAIN}${MASTER_USER.password}::::::\n`, { mode: 0o644 });
  const conf = `${d}/dovecot.conf`;
  const extra = options.extraConfig ? `\n# Extra settings of this instance\n${options.extraConfig}\n` : '';
  writeFileSync(`${d}/${LMTP_SENDMAIL}`, LMTP_SENDMAIL_SOURCE, { mode: 0o755 });
  writeFileSync(conf, dovecotConf(runDir, ports, acc, options.tls ?? true) + extra);
  return conf;
}

async function startOnce(
  runDir: string,
  users: readonly TestUser[],
  isRoot: boolean,
  options: DovecotOptions,
): Promise<DovecotService> {
  const d = `${runDir}/dovecot`;
  const tls = options.tls ?? true;
  const [imapPort = 0, lmtpPort = 0, sievePort = 0, imapsPort = 0, sievesPort = 0] = await freePorts(tls ? 5 : 3);
  const ports = { imap: imapPort, imaps: imapsPort, lmtp: lmtpPort, sieve: sievePort, sieves: sievesPort };
  const conf = writeConfig(runDir, ports, accountsFor(isRoot), users, options);
  const listening = [imapPort, lmtpPort, sievePort, ...(tls ? [imapsPort, sievesPort] : [])];
  const pidFile = `${d}/run/master.pid`;
  // `dovecot` binds its listeners, then daemonises; a bind error shows up as a failed exit.
  try {
    await runDaemonStarter('dovecot', ['-c', conf], `${d}/start.log`);
  } catch (err) {
    throw new Error(`dovecot failed to start: ${(err as Error).message}\n${tailFile(`${d}/dovecot.log`)}`);
  }
  let pid: number | null = null;
  try {
    await waitUntil(
      () => {
        pid = readPidFile(pidFile);
        return pid !== null;
      },
      'dovecot master.pid',
      5_000,
    );
    await waitUntil(
      async () => (await Promise.all(listening.map((p) => isPortOpen(p)))).every(Boolean),
      'dovecot ports',
      5_000,
    );
  } catch (err) {
    if (pid !== null) await terminate(pid);
    throw new Error(`${(err as Error).message}\n${tailFile(`${d}/dovecot.log`)}`);
  }
  const masterPid: number = pid ?? 0;
  return {
    name: 'dovecot',
    imapPort,
    imapsPort,
    lmtpPort,
    sievePort,
    sievesPort,
    async stop() {
      // The master closes its listeners at once but sleeps ~2.5 s (built in) before it exits.
      await terminate(masterPid);
      await waitPortsClosed(listening);
    },
    killNow() {
      signal(masterPid, 'SIGTERM');
    },
  };
}

/**
 * Starts Dovecot with its files in `<runDir>/dovecot` and mail in `<runDir>/mail`. A second instance needs its own
 * run dir; `options.extraConfig` changes its settings (see DovecotOptions).
 */
export async function startDovecot(
  runDir: string,
  users: readonly TestUser[],
  isRoot: boolean,
  options: DovecotOptions = {},
): Promise<DovecotService> {
  mkdirSync(`${runDir}/dovecot`, { recursive: true });
  // Retry with new ports in case another process took one between freePort() and bind.
  return retry(3, () => startOnce(runDir, users, isRoot, options));
}
