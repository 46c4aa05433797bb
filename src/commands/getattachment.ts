/**
 * GetAttachment (MS-ASCMD §2.2.1.7; protocol 2.5–12.1, which 14.0+ replaces by ItemOperations Fetch): the
 * attachment named by the `AttachmentName` parameter (the FileReference Sync handed out, MS-ASAIRS §2.2.2.24.1),
 * answered as its bytes with its Content-Type. There is no WBXML on either side, so failures are HTTP statuses: no
 * or a malformed name is 400; an attachment that is not (or no longer) there is 500, as MS-ASCMD §2.2.1.7 has
 * Exchange answer for one deleted on the server.
 */
import { withBackends } from '../backends/open.ts';
import { FolderNotFoundError } from '../backends/types.ts';
import { attachmentContent } from '../items/email.ts';
import { findMessage, parseFileReference } from '../folders/mail-lookup.ts';
import type { CommandContext, CommandResult } from '../protocol/command.ts';
import { HttpError } from '../protocol/errors.ts';
import { currentDraftId } from '../sync/drafts.ts';
import { attachmentAllowed } from '../tenants/policy.ts';
import { registerCommand } from './registry.ts';

export async function getAttachment(context: CommandContext): Promise<CommandResult> {
  const name = context.request.params.attachmentName;
  if (name === undefined || name.trim() === '') throw new HttpError(400, 'GetAttachment without AttachmentName');
  const parsed = parseFileReference(name.trim());
  if (!parsed) throw new HttpError(400, 'GetAttachment: AttachmentName is not a FileReference of this server');
  // A draft the device saved through Sync (16.0) is at another UID than its ids say: sync/drafts.ts keeps where.
  const reference = await currentDraftId(context, parsed);
  const hierarchy = (await context.state.getHierarchy(context.device))?.state;
  const attachment =
    reference &&
    (await withBackends(context, async (backends) => {
      // The folder deleted on the server since the device's FolderSync: the attachment is gone with it.
      const found = await findMessage(backends.mail, hierarchy, reference).catch((err: unknown) => {
        if (err instanceof FolderNotFoundError) return undefined;
        throw err;
      });
      return found && (await attachmentContent(found.message.source, reference.partId));
    }));
  if (!attachment) throw new HttpError(500, 'GetAttachment: no such attachment');
  // The user's policy, held to by the server as well (tenants/policy.ts attachmentAllowed): 403, as for any refusal.
  const allowed = attachmentAllowed(context.config.policy, context.user.login, attachment.content.length);
  if (allowed !== 'yes') throw new HttpError(403, `GetAttachment: attachment ${allowed} by the device policy`);
  return { kind: 'raw', contentType: attachment.contentType || 'application/octet-stream', bytes: attachment.content };
}

registerCommand({
  name: 'GetAttachment',
  handle: getAttachment,
});
