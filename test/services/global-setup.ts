// vitest globalSetup: starts real backends for one test run and stops them afterwards.
//   Dovecot (IMAP + LMTP), Radicale (CalDAV/CardDAV), Postfix (SMTP -> LMTP), dynalite (DynamoDB).
// Each run gets a fresh folder /tmp/ase-XXXXXX and free ports, so parallel runs do not meet.
// Tests read the endpoints with `inject('services')` (see types.ts); helpers are in seed.ts.
// Set TEST_SERVICES_KEEP=1 to keep the run folder (configs, logs, mail) after the run.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import type { TestProject } from 'vitest/node';
import { MASTER_USER, TEST_DOMAIN, TEST_USERS } from './accounts.ts';
import { ensureDebianPackages, isRoot, TEST_DEBIAN_PACKAGES } from './apt.ts';
import { startDovecot } from './dovecot.ts';
import { startDynalite } from './dynalite.ts';
import { postfixSkipReason, startPostfix } from './postfix.ts';
import type { RunningService } from './process.ts';
import { startRadicale } from './radicale.ts';
import { TEST_CA_PATH } from './tls.ts';
import type { TestServices } from './types.ts';

const LOG_PREFIX = '[test services]';

/** Stops services in parallel; one failing stop does not keep the others running. */
async function stopAll(services: readonly RunningService[]): Promise<void> {
  const results = await Promise.allSettled(services.map((s) => s.stop()));
  results.forEach((r, i) => {
    if (r.status === 'rejected') console.error(`${LOG_PREFIX} stopping ${services[i]?.name}: ${String(r.reason)}`);
  });
}

/** Runs the starts in parallel, records every service that came up, then rethrows the first failure. */
async function startAllInto<T extends readonly Promise<RunningService>[]>(
  started: RunningService[],
  starts: T,
): Promise<{ [K in keyof T]: Awaited<T[K]> }> {
  const results = await Promise.allSettled(starts);
  for (const r of results) if (r.status === 'fulfilled') started.push(r.value);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<RunningService>).value) as { [K in keyof T]: Awaited<T[K]> };
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const t0 = performance.now();
  const root = isRoot();
  ensureDebianPackages(root ? TEST_DEBIAN_PACKAGES : TEST_DEBIAN_PACKAGES.filter((p) => p !== 'postfix'));
  const tInstalled = performance.now();

  const runDir = mkdtempSync('/tmp/ase-');
  // Dovecot's login/mail users and Postfix's daemons must traverse it.
  chmodSync(runDir, 0o755);
  const keep = process.env.TEST_SERVICES_KEEP === '1';
  const removeRunDir = (): void => {
    if (!keep) rmSync(runDir, { recursive: true, force: true });
  };

  const started: RunningService[] = [];
  // If vitest is interrupted and never calls the teardown, do not leave daemons behind.
  const killOnExit = (): void => {
    for (const s of started) s.killNow();
  };
  process.once('exit', killOnExit);

  let services: TestServices;
  try {
    const [dynamo, radicale, dovecot] = await startAllInto(started, [
      startDynalite(),
      startRadicale(runDir, TEST_USERS),
      startDovecot(runDir, TEST_USERS, root),
    ] as const);
    const smtpSkipReason = postfixSkipReason(root);
    // Postfix comes last: it relays into Dovecot's LMTP port.
    const postfix = smtpSkipReason === null ? await startPostfix(runDir, dovecot.lmtpPort) : null;
    if (postfix) started.push(postfix);
    if (smtpSkipReason) console.warn(`${LOG_PREFIX} ${smtpSkipReason}`);

    services = {
      dir: runDir,
      domain: TEST_DOMAIN,
      imap: { host: '127.0.0.1', port: dovecot.imapPort, secure: false },
      imaps: { host: '127.0.0.1', port: dovecot.imapsPort, secure: true },
      tlsCa: TEST_CA_PATH,
      lmtp: { host: '127.0.0.1', port: dovecot.lmtpPort },
      sieve: { host: '127.0.0.1', port: dovecot.sievePort },
      sieves: { host: '127.0.0.1', port: dovecot.sievesPort },
      smtp: postfix ? { host: '127.0.0.1', port: postfix.smtpPort } : null,
      smtps: postfix ? { host: '127.0.0.1', port: postfix.smtpsPort } : null,
      smtpSkipReason,
      caldavUrl: radicale.url,
      carddavUrl: radicale.url,
      davPlainUrl: radicale.plainUrl,
      dynamodb: {
        endpoint: dynamo.endpoint,
        region: 'local',
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      },
      users: TEST_USERS.map((u) => ({ ...u })),
      master: { ...MASTER_USER },
    };
  } catch (err) {
    await stopAll(started);
    process.off('exit', killOnExit);
    removeRunDir();
    throw err;
  }

  project.provide('services', services);
  const ms = (a: number, b: number): string => `${Math.round(b - a)} ms`;
  console.log(
    `${LOG_PREFIX} up in ${ms(tInstalled, performance.now())} (packages check ${ms(t0, tInstalled)}) in ${runDir}: ` +
      `imap ${services.imap.port} (imaps ${services.imaps.port}), lmtp ${services.lmtp.port}, smtp ${services.smtp?.port ?? 'off'}, ` +
      `dav ${services.caldavUrl}, dynamodb ${services.dynamodb.endpoint}`,
  );

  return async () => {
    const t = performance.now();
    await stopAll(started);
    process.off('exit', killOnExit);
    removeRunDir();
    console.log(`${LOG_PREFIX} stopped in ${ms(t, performance.now())}${keep ? `; kept ${runDir}` : ''}`);
  };
}
