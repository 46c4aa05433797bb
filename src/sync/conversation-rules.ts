/**
 * MoveAlways rules at work (MS-ASCMD §2.2.3.118, MS-ASCON §3.1.4.6): when a device of the user syncs a mail folder
 * other than Sent Items, new arrivals that belong to a conversation the user asked to keep moving are moved to the
 * rule's folder before the device is told of them; the device then sees them only there. The rules are the user's
 * (any device that set them), in the state store (folders/conversations.ts, with their limits).
 *
 * Limits: the move happens when some device of the user syncs the folder the message arrived in (IMAP clients see it
 * there until then); a Ping reports the arrival first.
 */
import type { MailBackend } from '../backends/types.ts';
import { conversationsOf, moveMessages } from '../folders/conversations.ts';
import { carryFlagDetails } from '../folders/mail-flags.ts';
import type { CommandContext } from '../protocol/command.ts';

/** Moves the arrivals that a rule names; returns the UIDs that left the folder. Never fails the Sync. */
export async function applyConversationRules(
  context: CommandContext,
  mail: MailBackend,
  mailbox: string,
  arrivals: number[],
): Promise<Set<number>> {
  const movedAway = new Set<number>();
  if (arrivals.length === 0) return movedAway;
  try {
    const user = { tenant: context.device.tenant, user: context.device.user };
    const rules = (await context.state.listConversationRules(user)).filter((r) => r.destination !== mailbox);
    if (rules.length === 0) return movedAway;
    const destinationOf = new Map(rules.map((r) => [r.conversationId, r.destination]));
    const byDestination = new Map<string, number[]>();
    for (const [uid, conversation] of await conversationsOf(mail, mailbox, arrivals)) {
      const destination = destinationOf.get(conversation);
      if (destination !== undefined) byDestination.set(destination, [...(byDestination.get(destination) ?? []), uid]);
    }
    for (const [destination, uids] of byDestination) {
      const moved = await moveMessages(mail, mailbox, uids, destination);
      for (const m of moved) movedAway.add(m.from.uid);
      await carryFlagDetails(context, moved);
    }
    if (movedAway.size) context.note?.({ conversationRuleMoves: movedAway.size });
  } catch (err) {
    context.note?.({ conversationRuleError: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
  }
  return movedAway;
}
