/**
 * ItemOperations Move (MS-ASCMD §2.2.3.117.1, 14.0+; MS-ASCON §3.1.4.5–3.1.4.6): moves a whole conversation, named by
 * its ConversationId, to DstFldId, from every mail folder but Sent Items; with Options/MoveAlways the user's later
 * messages of it are moved there too (folders/conversations.ts, applied by Sync: sync/conversation-rules.ts).
 * "Ignoring" a conversation is this with Deleted Items as the destination.
 *
 * Status (MS-ASCMD §2.2.3.177.8, MS-ASCON §2.2.2.10): 2 malformed (no ConversationId or DstFldId, a MoveAlways with
 * content, a version before 14.0); 155 without MoveAlways, which MS-ASCMD §2.2.3.118 makes required; 6 no such
 * conversation or destination; 105 the destination is the Recipient Information Cache; 156 it is not a mail folder.
 */
import { Buffer } from 'node:buffer';
import { FolderType, type MailBackend } from '../backends/types.ts';
import { findFolder } from '../folders/hierarchy.ts';
import { moveConversation, rememberConversationRule } from '../folders/conversations.ts';
import { conversationHex } from '../items/conversation.ts';
import type { CommandContext } from '../protocol/command.ts';
import { atLeast } from '../protocol/versions.ts';
import type { HierarchyState } from '../state/types.ts';
import { UidSet } from '../state/uidset.ts';
import { bytesOf, child, childText, el, type WbxmlElement } from '../wbxml/tree.ts';

const MoveStatus = {
  Success: 1,
  ProtocolError: 2,
  ObjectNotFound: 6,
  InvalidCombinationOfIds: 105,
  MissingElement: 155,
  ActionNotSupported: 156,
} as const;

export async function moveConversationOperation(
  op: WbxmlElement,
  context: CommandContext,
  hierarchy: HierarchyState | undefined,
  mail: () => Promise<MailBackend>,
): Promise<WbxmlElement> {
  const idElement = child(op, 'ConversationId', 'ItemOperations');
  const answer = (status: number): WbxmlElement =>
    el('ItemOperations', 'Move', [el('ItemOperations', 'Status', status), idElement]);

  const conversation = idElement && conversationOfElement(idElement);
  const dstFldId = childText(op, 'DstFldId', 'ItemOperations');
  const options = child(op, 'Options', 'ItemOperations');
  const moveAlways = child(options, 'MoveAlways', 'ItemOperations');
  if (!atLeast(context.request.version, '14.0') || !conversation || dstFldId === undefined)
    return answer(MoveStatus.ProtocolError);
  // An empty tag (MS-ASCMD §2.2.3.118): content in it is invalid XML for it.
  if (moveAlways && (moveAlways.children.length > 0 || (moveAlways.text ?? '') !== '' || moveAlways.opaque))
    return answer(MoveStatus.ProtocolError);
  if (!moveAlways) return answer(MoveStatus.MissingElement);

  const destination = findFolder(hierarchy, dstFldId);
  if (!destination) return answer(MoveStatus.ObjectNotFound);
  if (destination.type === FolderType.RecipientInfoCache) return answer(MoveStatus.InvalidCombinationOfIds);
  if (destination.source.backend !== 'imap') return answer(MoveStatus.ActionNotSupported);

  const held = await heldMessages(context, hierarchy);
  const { found } = await moveConversation(context, await mail(), conversation, destination.source.ref, held);
  if (found === 0) return answer(MoveStatus.ObjectNotFound);
  await rememberConversationRule(context, conversation, destination.source.ref);
  return answer(MoveStatus.Success);
}

/** The UIDs the device holds in each mail folder it syncs (from its collection states), by mailbox. */
async function heldMessages(
  context: CommandContext,
  hierarchy: HierarchyState | undefined,
): Promise<Map<string, number[]>> {
  const held = new Map<string, number[]>();
  const synced = new Set(await context.state.listCollections(context.device));
  for (const folder of hierarchy?.folders ?? []) {
    if (folder.source.backend !== 'imap' || !synced.has(folder.serverId)) continue;
    const watermark = (await context.state.getCollection(context.device, folder.serverId))?.state.watermark;
    if (watermark?.kind === 'imap') held.set(folder.source.ref, [...UidSet.parse(watermark.uids)]);
  }
  return held;
}

/**
 * The conversation a request names, as lower-case hex: the element's bytes (WBXML opaque, as our ConversationIds are
 * sent); a text value is read as the base64 or hex that some clients and tools write. Undefined when empty.
 */
function conversationOfElement(element: WbxmlElement): string | undefined {
  if (element.opaque) return element.opaque.length ? conversationHex(element.opaque) : undefined;
  const text = (element.text ?? '').trim();
  if (text === '') return undefined;
  if (/^[0-9a-f]{32}$/i.test(text)) return text.toLowerCase();
  const bytes = Buffer.from(text, 'base64');
  return bytes.length ? conversationHex(new Uint8Array(bytes)) : conversationHex(bytesOf(element));
}
