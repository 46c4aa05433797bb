/**
 * MeetingResponse (MS-ASCMD §2.2.1.11): the user accepts (1), tentatively accepts (2) or declines (3) a
 * meeting, named by the invitation in a mail folder (RequestId `<collectionId>:<uid>`) or, 14.1+, by its item in a
 * calendar (a DAV ServerId).
 *
 * For each Request: the user's PARTSTAT is set in their calendar copy of the meeting (the default calendar; the copy
 * is found by UID and created from the invitation when missing), then, 16.x with SendResponse, the iMIP REPLY goes to
 * the organizer by SMTP (a 16.1 ProposedStartTime/EndTime makes it a COUNTER); up to 14.1 the client sends the answer
 * itself with SendMail, as MS-ASCMD §2.2.1.11 has it, so the server sends nothing. The answer
 * carries the copy's ServerId as CalendarId (not for a decline, which keeps the copy with PARTSTAT=DECLINED).
 *
 * Statuses: 1 success; 2 not a meeting request (not found, no text/calendar REQUEST, or the user organizes it);
 * 3 no calendar to put it in, or the write failed; 4 the REPLY could not be sent (the calendar is already set, so a
 * retry does no harm). An InstanceId (14.1+) about one occurrence of a recurring meeting sets the PARTSTAT in that
 * occurrence's override only (made from the series when missing), and the REPLY carries only that override.
 * An answered invitation in a mail folder then moves to Deleted Items, as Exchange does (not one answered from a
 * calendar).
 */
import { withBackends } from '../backends/open.ts';
import type { UserBackends } from '../backends/types.ts';
import { FolderType, type DavItem } from '../backends/types.ts';
import { parseDateTime } from '../items/datetime.ts';
import {
  attendeeCopy,
  meetingSummary,
  occurrenceAnswer,
  replyCalendar,
  replySubject,
  type PartStat,
} from '../items/itip.ts';
import { calendarPartOf } from '../items/meeting-request.ts';
import { parseMime } from '../items/outgoing.ts';
import { HttpError } from '../protocol/errors.ts';
import type { FolderRecord, HierarchyState } from '../state/types.ts';
import { child, children, childText, el, type WbxmlElement } from '../wbxml/tree.ts';
import { collectionOf } from '../backends/types.ts';
import { findMessage, parseItemId } from '../folders/mail-lookup.ts';
import { warnAfterSend } from '../sending/compose.ts';
import { sendItip, userAddresses } from '../sending/meeting-mail.ts';
import { registerCommand } from './registry.ts';
import type { CommandContext, CommandResult } from '../protocol/command.ts';
import { davServerId } from '../folders/server-ids.ts';

export const MeetingResponseStatus = { Success: 1, InvalidRequest: 2, MailboxError: 3, ServerError: 4 } as const;

const PARTSTAT: Record<string, PartStat> = { '1': 'ACCEPTED', '2': 'TENTATIVE', '3': 'DECLINED' };

interface ResponseRequest {
  partstat: PartStat | undefined;
  collectionId: string;
  requestId: string;
  instanceId: string | undefined;
  sendResponse: boolean;
  proposed: { start: Date; end: Date } | undefined;
  note: string | undefined;
}

function readRequest(request: WbxmlElement, version: string): ResponseRequest {
  const sendResponse = child(request, 'SendResponse');
  const start = parseDateTime(childText(sendResponse, 'ProposedStartTime'));
  const end = parseDateTime(childText(sendResponse, 'ProposedEndTime'));
  const note = childText(child(sendResponse, 'Body', 'AirSyncBase'), 'Data', 'AirSyncBase');
  return {
    partstat: PARTSTAT[childText(request, 'UserResponse')?.trim() ?? ''],
    collectionId: childText(request, 'CollectionId')?.trim() ?? '',
    requestId: childText(request, 'RequestId')?.trim() ?? '',
    instanceId: childText(request, 'InstanceId')?.trim(),
    // 16.x: the server mails the answer when asked (SendResponse). Up to 14.1 the client does, with SendMail
    // (MS-ASCMD §2.2.1.11): the server sending too would give the organizer two answers.
    sendResponse: Number.parseFloat(version) >= 16 && sendResponse !== undefined,
    proposed: start && end && end > start ? { start, end } : undefined,
    note: note || undefined,
  };
}

function result(requestId: string, status: number, calendarId?: string): WbxmlElement {
  return el('MeetingResponse', 'Result', [
    el('MeetingResponse', 'RequestId', requestId),
    el('MeetingResponse', 'Status', status),
    calendarId !== undefined ? el('MeetingResponse', 'CalendarId', calendarId) : undefined,
  ]);
}

/** Where an invitation came from: a message (its folder and UID), or an event in a calendar. */
interface Invitation {
  ics: string;
  message?: { folder: FolderRecord; uid: number };
}

/** The invitation's iCalendar text: from the message in a mail folder, or the event in a calendar the device synced. */
async function findInvitation(
  context: CommandContext,
  backends: UserBackends,
  hierarchy: HierarchyState | undefined,
  r: ResponseRequest,
): Promise<Invitation | undefined> {
  const folder = hierarchy?.folders.find((f) => f.serverId === r.collectionId);
  if (!folder) return undefined;
  if (folder.source.backend === 'imap') {
    const id = parseItemId(r.requestId);
    if (!id || id.collectionId !== r.collectionId) return undefined;
    const found = await findMessage(backends.mail, hierarchy, id);
    if (!found) return undefined;
    const part = calendarPartOf(await parseMime(found.message.source));
    return part?.method === 'REQUEST'
      ? { ics: part.ics, message: { folder: found.folder, uid: found.message.uid } }
      : undefined;
  }
  if (folder.source.backend !== 'caldav' || !backends.calendars) return undefined;
  const stored = await context.state.getCollection(context.device, r.collectionId);
  const etags = stored?.state.watermark.kind === 'dav' ? stored.state.watermark.etags : {};
  const href = Object.keys(etags).find((h) => davServerId(r.collectionId, h) === r.requestId);
  if (!href) return undefined;
  const [item] = await backends.calendars.fetchItems(folder.source.ref, [href]);
  return item ? { ics: item.data } : undefined;
}

/** Where the user's copy of meetings goes: the default calendar (type 8) the device knows, else any calendar. */
function targetCalendar(
  hierarchy: HierarchyState | undefined,
  source: FolderRecord | undefined,
): FolderRecord | undefined {
  const calendars = (hierarchy?.folders ?? []).filter(
    (f) => f.source.backend === 'caldav' && (f.type === FolderType.Calendar || f.type === FolderType.UserCalendar),
  );
  if (source && calendars.includes(source)) return source;
  return calendars.find((f) => f.type === FolderType.Calendar) ?? calendars[0];
}

async function respond(
  context: CommandContext,
  backends: UserBackends,
  hierarchy: HierarchyState | undefined,
  r: ResponseRequest,
): Promise<WbxmlElement> {
  if (!r.partstat || !r.collectionId || !r.requestId) return result(r.requestId, MeetingResponseStatus.InvalidRequest);
  const found = await findInvitation(context, backends, hierarchy, r);
  if (!found) {
    // Answered before and moved to Deleted Items: a resent request (its answer was lost) gets the same answer.
    const earlier = await answeredBefore(context, r);
    if (earlier) return earlier;
  }
  const invitation = found?.ics;
  const meeting = invitation ? meetingSummary(invitation) : undefined;
  const me = userAddresses(context);
  if (!invitation || !meeting?.organizer || me.includes(meeting.organizer.email))
    return result(r.requestId, MeetingResponseStatus.InvalidRequest);

  const calendar = targetCalendar(
    hierarchy,
    hierarchy?.folders.find((f) => f.serverId === r.collectionId),
  );
  if (!calendar || !backends.calendars) return result(r.requestId, MeetingResponseStatus.MailboxError);
  const dav = backends.calendars;
  let written: { href: string } | undefined;
  // 14.1+: an answer about one occurrence of a recurring meeting, in that occurrence's override only.
  let occurrenceReply: string | undefined;
  for (let attempt = 0; attempt < 3 && !written; attempt++) {
    const [existing]: (DavItem | undefined)[] = await dav.findByUid(calendar.source.ref, meeting.uid);
    // A newer invitation (higher SEQUENCE) replaces the copy; an older one only sets the answer in it.
    const base =
      existing && (meetingSummary(existing.data)?.sequence ?? 0) > meeting.sequence ? existing.data : invitation;
    const occurrence = r.instanceId ? occurrenceAnswer(base, r.instanceId, me, r.partstat) : undefined;
    occurrenceReply = occurrence?.reply;
    const copy = occurrence?.copy ?? attendeeCopy(base, me, r.partstat);
    const href =
      existing?.href ??
      new URL(`${encodeURIComponent(meeting.uid.replace(/[^\w.@-]/g, '_'))}.ics`, collectionOf(calendar.source.ref))
        .href;
    const put = await dav.putItem(calendar.source.ref, href, copy, existing?.etag);
    if (put.ok) written = put;
    else if (!existing && put.reason === 'conflict') continue; // created meanwhile: read it and set the answer there
  }
  if (!written) return result(r.requestId, MeetingResponseStatus.MailboxError);
  const calendarId = r.partstat === 'DECLINED' ? undefined : davServerId(calendar.serverId, written.href);

  if (r.sendResponse) {
    // A proposal is about the series; one occurrence's answer is a plain REPLY.
    const proposed = occurrenceReply ? undefined : r.proposed;
    const ics = occurrenceReply ?? replyCalendar(invitation, me[0] ?? context.user.login, r.partstat, proposed);
    try {
      await sendItip(context, {
        to: [meeting.organizer],
        subject: replySubject(r.partstat, meeting.summary, proposed !== undefined),
        method: proposed ? 'COUNTER' : 'REPLY',
        ics,
        text: r.note ?? `${replySubject(r.partstat, meeting.summary, proposed !== undefined)}\r\n`,
      });
    } catch (err) {
      warnAfterSend(context, 'meeting-reply-failed', err);
      return result(r.requestId, MeetingResponseStatus.ServerError);
    }
  }
  if (found?.message) {
    await context.state
      .putMarker(context.device, answeredMarker(r), {
        value: calendarId ?? '',
        expiresAt: Date.now() + ANSWER_REMEMBERED_MS,
      })
      .catch((err: unknown) => warnAfterSend(context, 'meeting-answer-marker-failed', err));
    await moveToDeletedItems(backends, hierarchy, found.message).catch((err: unknown) =>
      warnAfterSend(context, 'meeting-request-move-failed', err),
    );
  }
  return result(r.requestId, MeetingResponseStatus.Success, calendarId);
}

/** How long the answer to an invitation that left its folder is remembered for a resent request. */
const ANSWER_REMEMBERED_MS = 24 * 3_600_000;

function answeredMarker(r: ResponseRequest): string {
  return `meeting-answer:${r.collectionId}:${r.requestId}:${r.partstat}:${r.instanceId ?? ''}`;
}

/**
 * The answer given to the same request before, when it is remembered (the store has no plain read: a claim that expires
 * at once).
 */
async function answeredBefore(context: CommandContext, r: ResponseRequest): Promise<WbxmlElement | undefined> {
  const held = await context.state
    .claimMarker(context.device, answeredMarker(r), { value: '', expiresAt: Date.now() + 1 })
    .catch(() => undefined);
  if (!held) return undefined;
  return result(r.requestId, MeetingResponseStatus.Success, held.value || undefined);
}

/**
 * An answered invitation leaves its mail folder for Deleted Items, as Exchange does (the device gets a Delete in its
 * next Sync of the folder, the answer lives on in the calendar). Not when it is in Deleted Items already, or the
 * account has none; a failure to move it does not change the answer (the calendar is set, the REPLY sent).
 */
async function moveToDeletedItems(
  backends: UserBackends,
  hierarchy: HierarchyState | undefined,
  message: { folder: FolderRecord; uid: number },
): Promise<void> {
  const trash = hierarchy?.folders.find((f) => f.type === FolderType.DeletedItems && f.source.backend === 'imap');
  if (!trash || trash.serverId === message.folder.serverId) return;
  await backends.mail.moveMessages(message.folder.source.ref, [message.uid], trash.source.ref);
}

export async function meetingResponse(context: CommandContext): Promise<CommandResult> {
  const body = context.body;
  if (body?.ns !== 'MeetingResponse' || body.tag !== 'MeetingResponse')
    throw new HttpError(400, 'the body is not MeetingResponse');
  const requests = children(body, 'Request').map((r) => readRequest(r, context.request.version));
  if (requests.length === 0) throw new HttpError(400, 'MeetingResponse without Request');
  const hierarchy = (await context.state.getHierarchy(context.device))?.state;
  const results = await withBackends(context, async (backends) => {
    const out: WbxmlElement[] = [];
    for (const r of requests) {
      // One request failing (a DAV or IMAP error) does not fail the others.
      out.push(
        await respond(context, backends, hierarchy, r).catch((err: unknown) => {
          warnAfterSend(context, 'meeting-response-failed', err);
          return result(r.requestId, MeetingResponseStatus.ServerError);
        }),
      );
    }
    return out;
  });
  return { kind: 'wbxml', body: el('MeetingResponse', 'MeetingResponse', results) };
}

registerCommand({
  name: 'MeetingResponse',
  responseRoot: { ns: 'MeetingResponse', tag: 'MeetingResponse' },
  handle: meetingResponse,
});
