/**
 * A conversation's messages across the user's mail folders (MS-ASCON): finding them by their ConversationId, moving
 * them (ItemOperations Move, MS-ASCMD §2.2.3.117.1), and the rules that keep moving later ones (MoveAlways,
 * MS-ASCMD §2.2.3.118). A ConversationId is derived from a message's own headers (items/conversation.ts), so finding
 * a conversation means reading those few header fields of a folder's messages: IMAP cannot search by our hash.
 */
import { FolderType, type MailBackend } from '../backends/types.ts';
import { conversationHex, conversationIdOf } from '../items/conversation.ts';
import { threadHeadersOf } from '../items/email.ts';
import type { CommandContext } from '../protocol/command.ts';
import type { ConversationRule } from '../state/types.ts';
import { carryFlagDetails, type MovedMessage } from './mail-flags.ts';

/** The header fields a conversation is derived from (items/email.ts threadHeadersOf). */
const THREAD_FIELDS = ['message-id', 'in-reply-to', 'references', 'subject', 'thread-topic'];

/** How long a MoveAlways rule lasts, and how many one user keeps (the oldest go first). */
export const CONVERSATION_RULE_DAYS = 180;
export const CONVERSATION_RULES_PER_USER = 200;

/** The UIDs of a folder's messages (or of these UIDs) that belong to the conversation (lower-case hex id). */
export async function conversationUids(
  mail: MailBackend,
  mailbox: string,
  conversation: string,
  uids?: number[],
): Promise<number[]> {
  const blocks = await mail.fetchHeaderFields(mailbox, THREAD_FIELDS, uids);
  return blocks
    .filter((b) => conversationHex(conversationIdOf(threadHeadersOf(b.headers))) === conversation)
    .map((b) => b.uid);
}

/** The conversation of each of these UIDs (lower-case hex), by UID. */
export async function conversationsOf(
  mail: MailBackend,
  mailbox: string,
  uids: number[],
): Promise<Map<number, string>> {
  const blocks = await mail.fetchHeaderFields(mailbox, THREAD_FIELDS, uids);
  return new Map(blocks.map((b) => [b.uid, conversationHex(conversationIdOf(threadHeadersOf(b.headers)))]));
}

/**
 * Moves every message of the conversation to `destination` from every mail folder but Sent Items (MS-ASCON §3.2.5.6:
 * the user's own replies stay where they are) and the destination itself. `found` counts the conversation's messages
 * everywhere, the destination included: 0 means there is no such conversation. Flag details go with the messages.
 */
export async function moveConversation(
  context: CommandContext,
  mail: MailBackend,
  conversation: string,
  destination: string,
): Promise<{ found: number; moved: number }> {
  let found = 0;
  const moved: MovedMessage[] = [];
  let destinationValidity: number | undefined;
  for (const folder of await mail.listFolders()) {
    if (folder.backend !== 'imap' || folder.type === FolderType.SentItems) continue;
    const uids = await conversationUids(mail, folder.ref, conversation);
    found += uids.length;
    if (folder.ref === destination || uids.length === 0) continue;
    moved.push(...(await moveMessages(mail, folder.ref, uids, destination, () => destinationValidity)));
    destinationValidity ??= moved.length ? moved[0]!.to.uidValidity : undefined;
  }
  await carryFlagDetails(context, moved);
  return { found, moved: moved.length };
}

/** Moves messages and says where each went (for the flag details); UIDs the server did not report are left out. */
export async function moveMessages(
  mail: MailBackend,
  from: string,
  uids: number[],
  to: string,
  knownValidity: () => number | undefined = () => undefined,
): Promise<MovedMessage[]> {
  const fromValidity = (await mail.status(from)).uidValidity;
  const map = await mail.moveMessages(from, uids, to);
  const toValidity = knownValidity() ?? (await mail.status(to)).uidValidity;
  return [...map].map(([uid, newUid]) => ({
    from: { mailbox: from, uidValidity: fromValidity, uid },
    to: { mailbox: to, uidValidity: toValidity, uid: newUid },
  }));
}

/** Remembers a MoveAlways rule for the request's user; past the per-user limit the oldest rules go. */
export async function rememberConversationRule(
  context: CommandContext,
  conversation: string,
  destination: string,
): Promise<void> {
  const user = { tenant: context.device.tenant, user: context.device.user };
  const now = Date.now();
  const rule: ConversationRule = {
    conversationId: conversation,
    destination,
    deviceId: context.device.deviceId,
    createdAt: now,
    until: now + CONVERSATION_RULE_DAYS * 86_400_000,
  };
  await context.state.putConversationRule(user, rule);
  const rules = await context.state.listConversationRules(user);
  const excess = rules.length - CONVERSATION_RULES_PER_USER;
  if (excess > 0) {
    const oldest = [...rules].sort((a, b) => a.createdAt - b.createdAt).slice(0, excess);
    for (const r of oldest) await context.state.deleteConversationRule(user, r.conversationId);
  }
}
