/**
 * SmartReply and SmartForward whose Source is a calendar item (MS-ASCMD §2.2.3.162.4 Source: FolderId of a calendar +
 * ItemId, and InstanceId for one occurrence of a recurring meeting). The event is found through the device's DAV
 * collection state (its ServerId → href), as Sync handed it out.
 *
 * What is sent, as Exchange does:
 * - a forward: the device's message with the meeting quoted below it ("Forwarded message" block: organizer, subject,
 *   when, where, the description) and the meeting REQUEST — only that occurrence with an InstanceId — with the new
 *   recipients (To, Cc, 16.x Forwardees) added as attendees; the ORGANIZER stays, so their answers go to the organizer
 *   (Exchange also mails the organizer a "meeting forward notification"; not done here);
 * - a reply: a plain mail with the meeting quoted, to the organizer when the device's message names nobody.
 * ReplaceMime: the device's text without the quoted meeting (a forward still carries the REQUEST).
 * Nothing is flagged afterwards: an event has no \Answered or $Forwarded.
 */
import type { UserBackends } from '../backends/types.ts';
import { compactDateTime } from '../items/datetime.ts';
import { forwardedMeeting, type ForwardedMeeting } from '../items/itip.ts';
import {
  composeSmart,
  InvalidMimeError,
  mailboxes,
  parseMime,
  prepareOutgoing,
  type Mailbox,
  type OutgoingMessage,
} from '../items/outgoing.ts';
import { CommonStatus } from '../protocol/status.ts';
import type { FolderRecord, HierarchyState } from '../state/types.ts';
import { toBase64 } from '../util/base64.ts';
import { ComposeFailure, type ComposeRequest } from './compose-request.ts';
import type { CommandContext } from '../protocol/command.ts';
import { davServerId } from '../folders/server-ids.ts';

/** The device's calendar folder a Source names (by FolderId); undefined for anything else. */
export function calendarSourceFolder(
  hierarchy: HierarchyState | undefined,
  source: ComposeRequest['source'],
): FolderRecord | undefined {
  if (source?.folderId === undefined || source.longId !== undefined) return undefined;
  const folder = hierarchy?.folders.find((f) => f.serverId === source.folderId);
  return folder?.source.backend === 'caldav' ? folder : undefined;
}

/**
 * The message for a SmartReply/SmartForward of a calendar item. Throws ComposeFailure (150 not found, 107 bad MIME).
 */
export async function calendarItemMessage(
  context: CommandContext,
  backends: UserBackends,
  folder: FolderRecord,
  request: ComposeRequest,
): Promise<OutgoingMessage> {
  const ics = await findEvent(context, backends, folder, request.source?.itemId);
  if (ics === undefined) throw new ComposeFailure(CommonStatus.ItemNotFound, 'the source event is not there');
  try {
    const device = await parseMime(request.mime);
    const named = [...mailboxes(device.to), ...mailboxes(device.cc), ...mailboxes(device.bcc)];
    const forward = request.command === 'SmartForward';
    const newPeople = forward
      ? [...named, ...request.forwardees].map((m) => ({ email: m.address, ...(m.name ? { name: m.name } : {}) }))
      : [];
    const meeting = forwardedMeeting(ics, request.source?.instanceId, newPeople);
    if (!meeting)
      throw new ComposeFailure(CommonStatus.ItemNotFound, 'the InstanceId names no occurrence of the event');
    const organizer: Mailbox[] = meeting.meeting.organizer
      ? [{ name: meeting.meeting.organizer.name ?? '', address: meeting.meeting.organizer.email }]
      : [];
    const source =
      !forward && request.replaceMime
        ? request.mime
        : await composeSmart(forward ? 'forward' : 'reply', request.mime, quotedMeeting(meeting, context.user.login), {
            quoteOriginal: !request.replaceMime,
            ...(forward ? { calendar: { method: 'REQUEST', ics: meeting.request } } : {}),
          });
    const extraRecipients = forward ? request.forwardees : named.length === 0 ? organizer : [];
    return await prepareOutgoing(source, { user: context.user.login, extraRecipients });
  } catch (err) {
    if (err instanceof InvalidMimeError) throw new ComposeFailure(CommonStatus.InvalidMIME, err.message);
    throw err;
  }
}

/** The event's iCalendar text, by the ServerId the device got for it in this folder. */
async function findEvent(
  context: CommandContext,
  backends: UserBackends,
  folder: FolderRecord,
  itemId: string | undefined,
): Promise<string | undefined> {
  if (!itemId || !backends.calendars) return undefined;
  const stored = await context.state.getCollection(context.device, folder.serverId);
  const etags = stored?.state.watermark.kind === 'dav' ? stored.state.watermark.etags : {};
  const href = Object.keys(etags).find((h) => davServerId(folder.serverId, h) === itemId);
  if (!href) return undefined;
  const [item] = await backends.calendars.fetchItems(folder.source.ref, [href]);
  return item?.data;
}

/** The meeting as a small message for composeSmart to quote: from the organizer, its subject, when, where, its text. */
function quotedMeeting(forwarded: ForwardedMeeting, user: string): Uint8Array {
  const { meeting } = forwarded;
  const when = meeting.start
    ? `When: ${compactDateTime(meeting.start)}${forwarded.end ? ` - ${compactDateTime(forwarded.end)}` : ''}`
    : undefined;
  const text = [when, forwarded.location ? `Where: ${forwarded.location}` : undefined, '', forwarded.description ?? '']
    .filter((l) => l !== undefined)
    .join('\r\n');
  const address = (m: { email: string; name?: string }): string =>
    m.name ? `"${m.name.replace(/[\\"\r\n]/g, '')}" <${m.email}>` : `<${m.email}>`;
  const header = [
    `From: ${meeting.organizer ? address(meeting.organizer) : `<${user}>`}`,
    ...(meeting.attendees.length ? [`To: ${meeting.attendees.map(address).join(', ')}`] : []),
    `Subject: =?UTF-8?B?${toBase64(new TextEncoder().encode(meeting.summary))}?=`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: base64',
  ];
  return new TextEncoder().encode(`${header.join('\r\n')}\r\n\r\n${toBase64(new TextEncoder().encode(text))}\r\n`);
}
