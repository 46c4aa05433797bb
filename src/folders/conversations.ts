/**
 * A conversation's messages across the user's mail folders (MS-ASCON): finding them by their ConversationId, moving
 * them (ItemOperations Move, MS-ASCMD §2.2.3.117.1), the rules that keep moving later ones (MoveAlways, MS-ASCMD
 * §2.2.3.118), and the older messages of a conversation that Sync's ConversationMode brings into the window
 * (MS-ASCMD §2.2.3.36.2).
 *
 * A ConversationId is a hash of the root message id a message's own headers name (items/conversation.ts), which IMAP
 * cannot search for. So a conversation is found in two steps: the headers of one of its messages (the device named the
 * conversation from a message it holds: those are read first, newest first, stopping at the first match), then an
 * IMAP SEARCH per folder for messages whose References, In-Reply-To or Message-ID contain that root (RFC 9051
 * §6.4.4 HEADER), whose few header fields are read to check the hash. Only the conversation's messages are read.
 */
import { FolderType, type MailBackend } from '../backends/types.ts';
import { conversationHex, conversationIdOf, conversationRoot, type ThreadHeaders } from '../items/conversation.ts';
import { threadHeadersOf } from '../items/email.ts';
import type { CommandContext } from '../protocol/command.ts';
import type { ConversationRule } from '../state/types.ts';
import { carryFlagDetails, type MovedMessage } from './mail-flags.ts';

/** The header fields a conversation is derived from (items/email.ts threadHeadersOf). */
const THREAD_FIELDS = ['message-id', 'in-reply-to', 'references', 'subject', 'thread-topic'];

/** How long a MoveAlways rule lasts, and how many one user keeps (the oldest go first). */
export const CONVERSATION_RULE_DAYS = 180;
export const CONVERSATION_RULES_PER_USER = 200;

/** Conversations looked for by one IMAP SEARCH (three HEADER terms each, OR-ed). */
const CONVERSATIONS_PER_SEARCH = 20;
/** Messages whose header fields are read per step while looking for one message of a conversation. */
const PROBE_CHUNK = 50;

/** The conversation of a message's thread headers, as lower-case hex. */
export function conversationOfHeaders(headers: ThreadHeaders): string {
  return conversationHex(conversationIdOf(headers));
}

/**
 * IMAP SEARCH HEADER terms that find every message of the conversation these headers belong to: a message names the
 * root in References (first), else In-Reply-To, else it is the root (Message-ID). Substrings: a superset, checked.
 * A conversation without ids is grouped by topic (Thread-Topic, else the subject without prefixes).
 */
function threadTerms(headers: ThreadHeaders): { field: string; value: string }[] {
  const root = conversationRoot(headers);
  if (root) return ['references', 'in-reply-to', 'message-id'].map((field) => ({ field, value: root }));
  const topic = headers.topic ?? '';
  return [
    { field: 'subject', value: topic },
    { field: 'thread-topic', value: topic },
  ];
}

/** The thread headers of these UIDs of a folder (the few fields only), by UID. */
export async function threadHeadersByUid(
  mail: MailBackend,
  mailbox: string,
  uids: number[],
): Promise<Map<number, ThreadHeaders>> {
  const blocks = uids.length ? await mail.fetchHeaderFields(mailbox, THREAD_FIELDS, uids) : [];
  return new Map(blocks.map((b) => [b.uid, threadHeadersOf(b.headers)]));
}

/**
 * The messages of `mailbox` (those that arrived in `range`, when given) that belong to one of the conversations of
 * `known` (thread headers of messages of them): their conversation (hex) by UID. IMAP SEARCH finds the candidates,
 * whose header fields are read to check; nothing else is read.
 */
export async function conversationMembers(
  mail: MailBackend,
  mailbox: string,
  known: Iterable<ThreadHeaders>,
  range: { since?: Date | undefined; before?: Date | undefined } = {},
): Promise<Map<number, string>> {
  const wanted = new Map<string, ThreadHeaders>();
  for (const headers of known) wanted.set(conversationOfHeaders(headers), headers);
  const representatives = [...wanted.values()];
  const candidates = new Set<number>();
  for (let at = 0; at < representatives.length; at += CONVERSATIONS_PER_SEARCH) {
    const terms = representatives.slice(at, at + CONVERSATIONS_PER_SEARCH).flatMap(threadTerms);
    for (const uid of await mail.findByHeaders(mailbox, terms, range)) candidates.add(uid);
  }
  const members = new Map<number, string>();
  for (const [uid, headers] of await threadHeadersByUid(mail, mailbox, [...candidates])) {
    const conversation = conversationOfHeaders(headers);
    if (wanted.has(conversation)) members.set(uid, conversation);
  }
  return members;
}

/** The conversation of each of these UIDs (lower-case hex), by UID. */
export async function conversationsOf(
  mail: MailBackend,
  mailbox: string,
  uids: number[],
): Promise<Map<number, string>> {
  const byUid = await threadHeadersByUid(mail, mailbox, uids);
  return new Map([...byUid].map(([uid, headers]) => [uid, conversationOfHeaders(headers)]));
}

/**
 * The thread headers of one message of the conversation: first among the messages the device holds (`held`, by
 * folder: the device named the conversation from one of them), then, for one it saw elsewhere (a Search result),
 * among every message of the folders; newest first, PROBE_CHUNK at a time, stopping at the first match.
 */
async function findConversationHeaders(
  mail: MailBackend,
  folders: string[],
  conversation: string,
  held: ReadonlyMap<string, readonly number[]>,
): Promise<ThreadHeaders | undefined> {
  const seen = new Map<string, Set<number>>();
  for (const pass of ['held', 'all'] as const) {
    for (const folder of folders) {
      const checked = seen.get(folder) ?? new Set<number>();
      seen.set(folder, checked);
      const uids = (pass === 'held' ? [...(held.get(folder) ?? [])] : await mail.listUids(folder))
        .filter((uid) => !checked.has(uid))
        .sort((a, b) => b - a);
      for (let at = 0; at < uids.length; at += PROBE_CHUNK) {
        const chunk = uids.slice(at, at + PROBE_CHUNK);
        for (const uid of chunk) checked.add(uid);
        for (const headers of (await threadHeadersByUid(mail, folder, chunk)).values())
          if (conversationOfHeaders(headers) === conversation) return headers;
      }
    }
  }
  return undefined;
}

/**
 * Moves every message of the conversation to `destination` from every mail folder but Sent Items (MS-ASCON §3.2.5.6:
 * the user's own replies stay where they are) and the destination itself. `held` are the UIDs the requesting device
 * holds, by folder (where the conversation is looked for first). `found` counts the conversation's messages
 * everywhere, the destination included: 0 means there is no such conversation. Flag details go with the messages.
 */
export async function moveConversation(
  context: CommandContext,
  mail: MailBackend,
  conversation: string,
  destination: string,
  held: ReadonlyMap<string, readonly number[]> = new Map(),
): Promise<{ found: number; moved: number }> {
  const folders = (await mail.listFolders())
    .filter((f) => f.backend === 'imap' && f.type !== FolderType.SentItems)
    .map((f) => f.ref);
  const headers = await findConversationHeaders(mail, folders, conversation, held);
  if (!headers) return { found: 0, moved: 0 };
  let found = 0;
  const moved: MovedMessage[] = [];
  let destinationValidity: number | undefined;
  // The destination last, and looked into only to tell an already moved conversation (found there alone) from none.
  for (const folder of [...folders.filter((f) => f !== destination), destination]) {
    if (folder === destination && found > 0) break;
    const uids = [...(await conversationMembers(mail, folder, [headers])).keys()];
    found += uids.length;
    if (folder === destination || uids.length === 0) continue;
    moved.push(...(await moveMessages(mail, folder, uids, destination, () => destinationValidity)));
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
