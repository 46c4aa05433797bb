/**
 * The app takes its backends from the factory it is given (AppParts.backends): commands open the user's backends
 * through CommandContext.backends and nothing else. Here the default IMAP + DAV factory is wrapped so that each
 * open is seen, and the mail session is a decorator over the real ImapMailBackend that records the folders read.
 */
import { describe, expect, inject, it } from 'vitest';
import { buildApp } from '../../src/app/build.ts';
import { imapDavBackends } from '../../src/backends/combined.ts';
import { pooledImapSessions } from '../../src/backends/imap/sessions.ts';
import { nodemailerSubmitter } from '../../src/backends/smtp/nodemailer.ts';
import { FolderType, type TenantBackends } from '../../src/backends/types.ts';
import { loadConfig } from '../../src/config.ts';
import { openSqliteStateStore } from '../../src/state/sqlite-node.ts';
import { TestDevice } from '../device/device.ts';
import { createUser } from '../services/seed.ts';
import { seedInbox, subjectsOf } from './session-steps.ts';

const services = inject('services');

describe('backends injected through the builder', () => {
  it('FolderSync and Sync reach mail only through the factory the app was given', async () => {
    const opened: string[] = [];
    const statusOf: string[] = [];
    const watching = (inner: TenantBackends): TenantBackends => ({
      forRequest() {
        const request = inner.forRequest();
        return {
          ...request,
          backends: {
            ...request.backends,
            async open(user) {
              opened.push(user.login);
              const backends = await request.backends.open(user);
              const real = backends.mail;
              // Every method is the real one, on the real session; status() is also recorded.
              const mail = new Proxy(real, {
                get(target, prop) {
                  if (prop === 'status') {
                    return (folder: string) => {
                      statusOf.push(folder);
                      return real.status(folder);
                    };
                  }
                  const value: unknown = Reflect.get(target, prop, target);
                  return typeof value === 'function' ? value.bind(target) : value;
                },
              });
              return { ...backends, mail };
            },
          },
        };
      },
    });
    const state = openSqliteStateStore(':memory:').store;
    const { app } = buildApp({
      settings: loadConfig({
        IMAP_HOST: services.imap.host,
        IMAP_PORT: String(services.imap.port),
        IMAP_SECURE: 'false',
        TENANT: 'test',
        PROVISIONING: 'loose',
      }),
      state,
      imapSessions: (imap) => pooledImapSessions(imap),
      backends: (config, parts) =>
        watching(imapDavBackends(config, parts.imapSessions(config.imap), nodemailerSubmitter(config.smtp))),
      log: () => {},
    });
    const user = createUser(services);
    await seedInbox(services, user);
    const device = new TestDevice({ fetch: async (url, init) => app.request(url, init), state, logs: [] }, user);

    await device.folderSync();
    const inbox = device.folderByType(FolderType.Inbox).serverId;
    await device.syncUntilDone(inbox);
    expect(subjectsOf(device, inbox)).toEqual(['Plain note', 'Scan attached']);
    expect(opened.length).toBeGreaterThanOrEqual(2);
    expect(new Set(opened)).toEqual(new Set([user.email]));
    expect(statusOf).toContain('INBOX');
  });
});
