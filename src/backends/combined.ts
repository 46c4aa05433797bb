/**
 * All of one user's backends for one request, and which backend holds which folder. Mail is IMAP; calendar, tasks
 * and contacts (CalDAV/CardDAV) join here when configured, without the commands changing.
 */
import type { CommandContext } from '../commands/registry.ts';
import { DavItemBackend } from './dav/backend.ts';
import { openImapMailBackend } from './imap/mail.ts';
import type { BackendFolder, ItemBackend, MailBackend } from './types.ts';

export interface UserBackends {
  mail: MailBackend;
  /** CalDAV (calendars, task lists) and CardDAV (address books), when configured: the CalDAV/CardDAV issue fills these. */
  calendars?: ItemBackend;
  contacts?: ItemBackend;
  /** Every folder of every backend, for FolderSync. */
  listFolders(): Promise<BackendFolder[]>;
  close(): Promise<void>;
}

export async function openBackends(context: Pick<CommandContext, 'imapSessions' | 'user' | 'config'>): Promise<UserBackends> {
  const login = { user: context.user.login, password: context.user.password };
  const mail = await openImapMailBackend(context.imapSessions, login);
  const { caldavUrl, carddavUrl } = context.config;
  const backends: UserBackends = {
    mail,
    ...(caldavUrl ? { calendars: new DavItemBackend(caldavUrl, 'caldav', login) } : {}),
    ...(carddavUrl ? { contacts: new DavItemBackend(carddavUrl, 'carddav', login) } : {}),
    async listFolders() {
      const lists = await Promise.all([mail, backends.calendars, backends.contacts].map((b) => b?.listFolders() ?? []));
      return lists.flat();
    },
    close: () => mail.close(),
  };
  return backends;
}

/** Runs `work` with the user's backends open, and closes them whatever happens. */
export async function withBackends<T>(context: Pick<CommandContext, 'imapSessions' | 'user' | 'config'>, work: (backends: UserBackends) => Promise<T>): Promise<T> {
  const backends = await openBackends(context);
  try {
    return await work(backends);
  } finally {
    await backends.close();
  }
}
