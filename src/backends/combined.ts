/**
 * All of one user's backends for one request, and which backend holds which folder. Mail is IMAP; calendar, tasks
 * and contacts (CalDAV/CardDAV) join here when configured, without the commands changing.
 */
import type { CommandContext } from '../commands/registry.ts';
import { openImapMailBackend } from './imap/mail.ts';
import type { BackendFolder, MailBackend } from './types.ts';

export interface UserBackends {
  mail: MailBackend;
  /** Every folder of every backend, for FolderSync. */
  listFolders(): Promise<BackendFolder[]>;
  close(): Promise<void>;
}

export async function openBackends(context: Pick<CommandContext, 'imapSessions' | 'user'>): Promise<UserBackends> {
  const mail = await openImapMailBackend(context.imapSessions, { user: context.user.login, password: context.user.password });
  return {
    mail,
    listFolders: () => mail.listFolders(),
    close: () => mail.close(),
  };
}

/** Runs `work` with the user's backends open, and closes them whatever happens. */
export async function withBackends<T>(context: Pick<CommandContext, 'imapSessions' | 'user'>, work: (backends: UserBackends) => Promise<T>): Promise<T> {
  const backends = await openBackends(context);
  try {
    return await work(backends);
  } finally {
    await backends.close();
  }
}
