/**
 * All of one user's backends for one request, and which backend holds which folder. Mail is IMAP; calendar, tasks
 * and contacts (CalDAV/CardDAV) join here when configured, without the commands changing.
 */
import type { CommandContext } from '../protocol/command.ts';
import { DavItemBackend } from './dav/backend.ts';
import { openImapMailBackend } from './imap/mail.ts';
import type { BackendFolder, ItemBackend, MailBackend } from './types.ts';

export interface FolderListing {
  folders: BackendFolder[];
  unavailable: Set<BackendFolder['backend']>;
}

export interface UserBackends {
  mail: MailBackend;
  /** CalDAV (calendars, task lists) and CardDAV (address books), when configured: the CalDAV/CardDAV issue fills these. */
  calendars?: ItemBackend;
  contacts?: ItemBackend;
  /** Every folder of every backend that answered. */
  listFolders(): Promise<BackendFolder[]>;
  /**
   * The same, and which backends did not answer (a DAV server down, or without this user): FolderSync keeps the
   * folders it knows from those rather than telling the device they are gone.
   */
  listFoldersByBackend(): Promise<FolderListing>;
  close(): Promise<void>;
}

export async function openBackends(context: Pick<CommandContext, 'imapSessions' | 'user' | 'config'>): Promise<UserBackends> {
  const login = { user: context.user.login, password: context.user.password, ...(context.user.accessToken !== undefined ? { accessToken: context.user.accessToken } : {}) };
  const mail = await openImapMailBackend(context.imapSessions, login);
  const { caldavUrl, carddavUrl } = context.config;
  const backends: UserBackends = {
    mail,
    ...(caldavUrl ? { calendars: new DavItemBackend(caldavUrl, 'caldav', login, context.config.davTimeoutMs, context.config.davDefaults) } : {}),
    ...(carddavUrl ? { contacts: new DavItemBackend(carddavUrl, 'carddav', login, context.config.davTimeoutMs, context.config.davDefaults) } : {}),
    async listFolders() {
      return (await backends.listFoldersByBackend()).folders;
    },
    async listFoldersByBackend() {
      const listing: FolderListing = { folders: await mail.listFolders(), unavailable: new Set() };
      const dav = [
        ['caldav', backends.calendars],
        ['carddav', backends.contacts],
      ] as const;
      await Promise.all(
        dav.map(async ([name, backend]) => {
          if (!backend) return;
          try {
            listing.folders.push(...(await backend.listFolders()));
          } catch {
            listing.unavailable.add(name);
          }
        }),
      );
      return listing;
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
