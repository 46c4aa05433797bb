/**
 * Where a mail flag's details live (items/email-flag.ts): per user and message, keyed by the mailbox, its UIDVALIDITY
 * and the UID (StateStore.getMailFlags), not by a device's sync key, so that a resync from SyncKey 0 and the user's
 * other devices see what was set. A renamed mailbox, or one whose UIDVALIDITY changed, starts without details.
 */
import type { MailBackend } from '../backends/types.ts';
import type { CommandContext } from '../protocol/command.ts';
import { type FlagDetails, mailFolderKey } from '../state/types.ts';

/** The flag details of one mailbox of the request's user. */
export interface MailFlagStore {
  read(uidValidity: number): Promise<Record<string, FlagDetails>>;
  write(uidValidity: number, changes: Record<string, FlagDetails | null>): Promise<void>;
}

export function mailFlagStore(context: CommandContext, mailbox: string): MailFlagStore {
  const user = { tenant: context.device.tenant, user: context.device.user };
  return {
    read: (uidValidity) => context.state.getMailFlags(user, mailFolderKey(mailbox, uidValidity)),
    write: (uidValidity, changes) => context.state.putMailFlags(user, mailFolderKey(mailbox, uidValidity), changes),
  };
}

/**
 * The details kept for one message, read for an answer outside Sync (ItemOperations Fetch); the mailbox's
 * UIDVALIDITY from the backend, so that details of a recreated mailbox never apply.
 */
export async function flagDetailsOf(
  context: CommandContext,
  mail: MailBackend,
  mailbox: string,
  uid: number,
): Promise<FlagDetails | undefined> {
  // The UIDVALIDITY the caller's read of the message ran under (no second SELECT).
  const uidValidity = await mail.uidValidityOf(mailbox);
  return (await mailFlagStore(context, mailbox).read(uidValidity))[uid];
}

/** A message that moved between mailboxes: where it was and where it is now. */
export interface MovedMessage {
  from: { mailbox: string; uidValidity: number; uid: number };
  to: { mailbox: string; uidValidity: number; uid: number };
}

/** Moved messages take their flag details along (MoveItems, a conversation's Move): one read and write per mailbox. */
export async function carryFlagDetails(context: CommandContext, moves: MovedMessage[]): Promise<void> {
  const key = (f: MovedMessage['from']): string => `${f.uidValidity}\n${f.mailbox}`;
  const arrivals = new Map<string, { to: MovedMessage['to']; changes: Record<string, FlagDetails> }>();
  const departures: { store: MailFlagStore; uidValidity: number; leaving: Record<string, null> }[] = [];
  for (const fromKey of new Set(moves.map((m) => key(m.from)))) {
    const group = moves.filter((m) => key(m.from) === fromKey);
    const { mailbox, uidValidity } = group[0]!.from;
    const store = mailFlagStore(context, mailbox);
    const details = await store.read(uidValidity);
    const leaving: Record<string, null> = {};
    for (const m of group) {
      const kept = details[m.from.uid];
      if (!kept) continue;
      leaving[m.from.uid] = null;
      const arrival = arrivals.get(key(m.to)) ?? { to: m.to, changes: {} };
      arrival.changes[m.to.uid] = kept;
      arrivals.set(key(m.to), arrival);
    }
    if (Object.keys(leaving).length) departures.push({ store, uidValidity, leaving });
  }
  // Arrivals first: a failure in between leaves a copy of the details, never none.
  for (const { to, changes } of arrivals.values())
    await mailFlagStore(context, to.mailbox).write(to.uidValidity, changes);
  for (const { store, uidValidity, leaving } of departures) await store.write(uidValidity, leaving);
}
