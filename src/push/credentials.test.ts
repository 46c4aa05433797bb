import { describe, expect, it } from 'vitest';
import { loadConfig, type PushWatcher, type ServerConfig } from '../config.ts';
import { pushStartupNotice, watcherLoginGap } from './credentials.ts';

const KEY = Buffer.alloc(32, 7).toString('base64');

function config(env: Record<string, string>, watcher?: PushWatcher): ServerConfig {
  const c = loadConfig({ IMAP_HOST: 'imap.example.test', TENANT: 't', ...env });
  return { ...c, push: { ...c.push, watcher } };
}

describe('watcherLoginGap: which waiting folders no watcher can log in for', () => {
  const mailOnly = { password: 'pw', mail: true, dav: false };

  it('Node (in-process) takes the password in memory: nothing missing for a password login', () => {
    expect(watcherLoginGap(config({}, 'in-process').push, mailOnly)).toBeUndefined();
    expect(watcherLoginGap(config({}).push, { ...mailOnly, dav: true })).toBeUndefined();
  });

  it('Workers and Lambda without master user or key: mail has no login, named per runtime', () => {
    expect(watcherLoginGap(config({}, 'cron-sweep').push, mailOnly)).toBe(
      "mail: the Worker's cron sweep has no login without IMAP_MASTER_USER or CREDENTIAL_KEY",
    );
    expect(watcherLoginGap(config({}, 'watch-function').push, mailOnly)).toBe(
      'mail: the watch function has no login without IMAP_MASTER_USER or CREDENTIAL_KEY',
    );
  });

  it('a master user serves mail, not DAV; a key serves both', () => {
    const master = config({ IMAP_MASTER_USER: 'm', IMAP_MASTER_PASSWORD: 'mp' }, 'cron-sweep').push;
    expect(watcherLoginGap(master, mailOnly)).toBeUndefined();
    expect(watcherLoginGap(master, { password: 'pw', mail: true, dav: true })).toBe(
      "calendars/contacts: the Worker's cron sweep has no login without CREDENTIAL_KEY",
    );
    const key = config({ CREDENTIAL_KEY: KEY }, 'cron-sweep').push;
    expect(watcherLoginGap(key, { password: 'pw', mail: true, dav: true })).toBeUndefined();
  });

  it('a Bearer login (no password) is no login for any watcher, on Node too', () => {
    expect(
      watcherLoginGap(config({ CREDENTIAL_KEY: KEY }, 'in-process').push, { ...mailOnly, password: undefined }),
    ).toBe('mail: a Bearer token is no login for the watcher, it needs IMAP_MASTER_USER');
  });
});

describe('pushStartupNotice: what a tenant leaves push unable to do on its runtime', () => {
  it('Node on SQLite, and any runtime with a master user or a key: nothing', () => {
    expect(pushStartupNotice(config({}, 'in-process'))).toBeUndefined();
    expect(pushStartupNotice(config({ CREDENTIAL_KEY: KEY }, 'cron-sweep'))).toBeUndefined();
    expect(
      pushStartupNotice(config({ IMAP_MASTER_USER: 'm', IMAP_MASTER_PASSWORD: 'mp' }, 'watch-function')),
    ).toBeUndefined();
  });

  it('Workers and Lambda without either: push cannot work, named per runtime', () => {
    expect(pushStartupNotice(config({}, 'cron-sweep'))).toMatch(/^push cannot work: the Worker's cron sweep /);
    expect(pushStartupNotice(config({}, 'watch-function'))).toMatch(/^push cannot work: the watch function /);
  });

  it('Node on a shared DynamoDB table: only Pings of the instance that watches the account', () => {
    expect(pushStartupNotice(config({ STATE_STORE: 'dynamodb', DYNAMODB_TABLE: 'ase' }, 'in-process'))).toMatch(
      /another instance watches/,
    );
  });

  it('calendars and contacts outside Node need CREDENTIAL_KEY, also with a master user', () => {
    expect(
      pushStartupNotice(
        config(
          { IMAP_MASTER_USER: 'm', IMAP_MASTER_PASSWORD: 'mp', CALDAV_URL: 'https://dav.example.test/' },
          'cron-sweep',
        ),
      ),
    ).toMatch(/^calendars and contacts get no push/);
  });
});
