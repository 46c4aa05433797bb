/**
 * The default backends: mail on IMAP, calendars and tasks on CalDAV, contacts on CardDAV (when configured), the GAL
 * on a CardDAV address book, and submission on SMTP. The app is given these as a TenantBackends (types.ts); another
 * deployment can hand it another implementation without the commands changing.
 */
import type { ServerConfig } from '../config.ts';
import { imapAuthenticator } from './imap/authenticate.ts';
import { openImapMailBackend } from './imap/mail.ts';
import { ImapNotesBackend } from './imap/notes.ts';
import { requestImapSessions, type ImapSessions } from './imap/sessions.ts';
import { imapLogin } from './imap/connection.ts';
import type { MailSubmitter } from './smtp/types.ts';
import type { AuthenticatedUser } from './auth.ts';
import type {
  AutoReplies,
  Directory,
  FolderListing,
  ItemBackend,
  MailBackend,
  TenantBackends,
  UserBackends,
} from './types.ts';

/*
 * The DAV client and ManageSieve are loaded on first use, and only by a tenant whose settings name them (CALDAV_URL,
 * CARDDAV_URL, GAL_URL, SIEVE): a mail-only process never reads their code or their packages (docs/DESIGN.md,
 * footprint). Each import() is one promise per process, resolved once.
 */
const davBackendModule = () => import('./dav/backend.ts');

/** The GAL on first search: the directory module is loaded then. */
function lazyDirectory(load: () => Promise<Directory>): Directory {
  let directory: Promise<Directory> | undefined;
  const get = (): Promise<Directory> => (directory ??= load());
  return {
    search: async (text) => (await get()).search(text),
    busyEvents: async (url, start, end) => (await get()).busyEvents(url, start, end),
  };
}

/** Automatic replies on first use: the ManageSieve client is loaded then. */
function lazyAutoReplies(load: () => Promise<AutoReplies>): AutoReplies {
  return { apply: async (oof, content) => (await load()).apply(oof, content) };
}

export type BackendSettings = Pick<
  ServerConfig,
  | 'imap'
  | 'caldavUrl'
  | 'carddavUrl'
  | 'galUrl'
  | 'davTimeoutMs'
  | 'davDefaults'
  | 'sieve'
  | 'davCredentialOrigins'
  | 'notesFolder'
>;

/** The origins a login may go to over DAV: as configured, else those of the DAV URLs themselves. */
function credentialOrigins(settings: BackendSettings): string[] {
  return (
    settings.davCredentialOrigins ??
    [settings.caldavUrl, settings.carddavUrl, settings.galUrl].flatMap((u) => (u ? [new URL(u).origin] : []))
  );
}

/**
 * IMAP + CalDAV/CardDAV + SMTP for one tenant. `sessions` is how IMAP connections are had (pooled on Node and Lambda,
 * fresh on Workers); each request's credentials check and backends share one login through requestImapSessions.
 */
export function imapDavBackends(
  settings: BackendSettings,
  sessions: ImapSessions,
  submitter: MailSubmitter,
): TenantBackends {
  return {
    forRequest() {
      const scoped = requestImapSessions(sessions);
      return {
        authenticator: imapAuthenticator(settings.imap, scoped),
        backends: {
          open: (user) => openImapDav(settings, scoped, user),
          submitter,
          directory: (user) =>
            settings.galUrl
              ? lazyDirectory(async () =>
                  (await import('./dav/directory.ts')).davDirectory(settings.galUrl!, user, {
                    credentialOrigins: credentialOrigins(settings),
                    ...(settings.davTimeoutMs !== undefined ? { timeoutMs: settings.davTimeoutMs } : {}),
                  }),
                )
              : undefined,
          // ManageSieve logs in with the password: a Bearer login has none.
          autoReplies: (user) =>
            settings.sieve && user.password
              ? lazyAutoReplies(async () =>
                  (await import('./sieve/vacation.ts')).sieveAutoReplies(settings.sieve!, {
                    login: user.login,
                    password: user.password!,
                  }),
                )
              : undefined,
        },
        end: () => scoped.end(),
      };
    },
  };
}

async function openImapDav(
  settings: BackendSettings,
  sessions: ImapSessions,
  user: AuthenticatedUser,
): Promise<UserBackends> {
  const mail = await openImapMailBackend(sessions, imapLogin(user));
  const { caldavUrl, carddavUrl, davTimeoutMs, davDefaults } = settings;
  const origins = credentialOrigins(settings);
  const DavItemBackend = caldavUrl || carddavUrl ? (await davBackendModule()).DavItemBackend : undefined;
  const dav = (url: string, kind: 'caldav' | 'carddav'): ItemBackend =>
    new DavItemBackend!(url, kind, user, davTimeoutMs, davDefaults, origins);
  return combineBackends({
    mail,
    notes: new ImapNotesBackend(mail, settings.notesFolder),
    ...(caldavUrl ? { calendars: dav(caldavUrl, 'caldav') } : {}),
    ...(carddavUrl ? { contacts: dav(carddavUrl, 'carddav') } : {}),
  });
}

/**
 * A user's backends as one: the folder listings of all of them (the notes folder typed Notes); closing closes the
 * mail session.
 */
export function combineBackends(parts: {
  mail: MailBackend;
  calendars?: ItemBackend;
  contacts?: ItemBackend;
  notes?: ImapNotesBackend;
}): UserBackends {
  const { mail, calendars, contacts, notes } = parts;
  const backends: UserBackends = {
    mail,
    ...(calendars ? { calendars } : {}),
    ...(contacts ? { contacts } : {}),
    ...(notes ? { notes } : {}),
    async listFolders() {
      return (await backends.listFoldersByBackend()).folders;
    },
    async listFoldersByBackend() {
      const mailFolders = await mail.listFolders();
      const listing: FolderListing = {
        folders: notes ? mailFolders.map((f) => notes.asNotesFolder(f)) : mailFolders,
        unavailable: new Set(),
      };
      const dav = [
        ['caldav', calendars],
        ['carddav', contacts],
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
