/**
 * What SendMail, SmartReply and SmartForward share (MS-ASCMD §2.2.1.17, §2.2.1.20, §2.2.1.19): reading the request in
 * either form, the source message of a reply or forward, sending once per ClientId, Sent Items, the statuses.
 *
 * Request forms:
 * - 14.0+: ComposeMail WBXML: ClientId, AccountId (ignored: one account per user), SaveInSentItems, Source
 *   (FolderId + ItemId, LongId, InstanceId), ReplaceMime, Mime (OPAQUE), Forwardees (16.x SmartForward);
 * - 12.x: the body is the message itself (`message/rfc822`); SaveInSent=T, CollectionId + ItemId or LongId in the
 *   query.
 * Success is HTTP 200 with an empty body. Failure: `<Command><Status>n</Status></Command>` (14.0+), HTTP 500 (12.x).
 *
 * The order of things, so that a failure leaves nothing behind: everything is checked and the message built first
 * (source found, MIME readable, recipients present, size within MAX_MESSAGE_BYTES); then the ClientId is claimed
 * (a second request with it gets 118); then SMTP; only after the server took the message: the ClientId is marked
 * sent, the copy goes to Sent Items (\Seen) and the original is flagged \Answered or $Forwarded.
 *
 * A signed or encrypted message (S/MIME) is sent as the device made it, ReplaceMime or not: nothing is added to its
 * body (items/outgoing.ts isSmimeMessage).
 *
 * A Source in a calendar folder (FolderId + ItemId, and InstanceId for one occurrence) is a meeting:
 * compose-calendar.ts builds that message (a forward carries the meeting REQUEST). A ClientId is remembered for
 * SENT_MARKER_TTL_MS.
 */
import { type Settled, settle, settledValue } from '../util/settled.ts';
import { withBackends } from '../backends/open.ts';
import { SubmissionError, type SubmissionResult } from '../backends/smtp/types.ts';
import { FolderNotFoundError, FolderType, type MailBackend, type MessageWithSource } from '../backends/types.ts';
import {
  composeSmart,
  InvalidMimeError,
  isSmimeMessage,
  parseMime,
  prepareOutgoing,
  referencesOf,
  type OutgoingMessage,
} from '../items/outgoing.ts';
import { HttpError } from '../protocol/errors.ts';
import { CommonStatus } from '../protocol/status.ts';
import { atLeast } from '../protocol/versions.ts';
import type { FolderRecord, HierarchyState } from '../state/types.ts';
import { bytesOf, child, children, childText, el } from '../wbxml/tree.ts';
import { calendarItemMessage, calendarSourceFolder } from './compose-calendar.ts';
import { buildNonDeliveryReport } from './non-delivery.ts';
import { userAddresses } from './meeting-mail.ts';
import { mailFolder, parseItemId } from '../folders/mail-lookup.ts';
import { ComposeFailure, type ComposeCommand, type ComposeRequest } from './compose-request.ts';
import type { CommandContext, CommandResult } from '../protocol/command.ts';

/** How long a sent ClientId is remembered: longer than any device keeps retrying a message in its outbox. */
export const SENT_MARKER_TTL_MS = 7 * 24 * 3_600_000;
/** How long a ClientId stays claimed while its message is being sent; a crashed attempt frees it after this. */
export const SENDING_MARKER_TTL_MS = 10 * 60_000;
/** ClientIds are short (a GUID or a counter); a longer one is refused rather than stored. */
const MAX_CLIENT_ID_LENGTH = 256;

/** The handler of one of the three commands. */
export function composeHandler(command: ComposeCommand): (context: CommandContext) => Promise<CommandResult> {
  return async (context) => {
    const wbxmlAnswers = atLeast(context.request.version, '14.0');
    try {
      await compose(context, readRequest(context, command));
      return { kind: 'empty' };
    } catch (err) {
      if (err instanceof ComposeFailure) {
        if (wbxmlAnswers) return statusResponse(command, err.status);
        // 12.x has no Status: a message sent before (its Message-ID seen) is answered as sent, not failed again.
        if (err.status === CommonStatus.MessagePreviouslySent) return { kind: 'empty' };
        throw new HttpError(500, `${command}: ${err.message}`);
      }
      // 12.x has no Status to carry a server error: HTTP 500 (14.0+ gets the registry's Status 110).
      if (!wbxmlAnswers && !(err instanceof HttpError))
        throw new HttpError(500, `${command} failed: ${(err as Error).message}`);
      throw err;
    }
  };
}

export function statusResponse(command: ComposeCommand, status: number): CommandResult {
  return { kind: 'wbxml', body: el('ComposeMail', command, [el('ComposeMail', 'Status', String(status))]) };
}

/** The request in its WBXML form (14.0+) or its `message/rfc822` form (12.x, or any version sending raw MIME). */
export function readRequest(context: CommandContext, command: ComposeCommand): ComposeRequest {
  const body = context.body;
  if (body === undefined) {
    const params = context.request.params;
    const source =
      command === 'SendMail'
        ? undefined
        : {
            ...(params.collectionId ? { folderId: params.collectionId } : {}),
            ...(params.itemId ? { itemId: params.itemId } : {}),
            ...(params.longId ? { longId: params.longId } : {}),
          };
    return {
      command,
      clientId: undefined,
      saveInSent: params.saveInSent === true,
      replaceMime: false,
      mime: context.rawBody,
      source,
      forwardees: [],
    };
  }
  if (body.ns !== 'ComposeMail' || body.tag !== command)
    throw new ComposeFailure(CommonStatus.InvalidXML, `the body is not ${command}`);
  const clientId = childText(body, 'ClientId')?.trim();
  const mime = child(body, 'Mime');
  if (!clientId || clientId.length > MAX_CLIENT_ID_LENGTH)
    throw new ComposeFailure(CommonStatus.InvalidXML, 'ClientId is missing or too long');
  if (!mime) throw new ComposeFailure(CommonStatus.InvalidXML, 'Mime is missing');
  // A Source in a SendMail means nothing (there is no original to include).
  const sourceElement = command === 'SendMail' ? undefined : child(body, 'Source');
  if (command !== 'SendMail' && !sourceElement) throw new ComposeFailure(CommonStatus.InvalidXML, 'Source is missing');
  const text = (tag: string): string | undefined => childText(sourceElement, tag)?.trim() || undefined;
  const source = sourceElement
    ? {
        ...(text('FolderId') ? { folderId: text('FolderId') } : {}),
        ...(text('ItemId') ? { itemId: text('ItemId') } : {}),
        ...(text('LongId') ? { longId: text('LongId') } : {}),
        ...(text('InstanceId') ? { instanceId: text('InstanceId') } : {}),
      }
    : undefined;
  const forwardees = children(child(body, 'Forwardees'), 'Forwardee').flatMap((f) => {
    const address = childText(f, 'Email')?.trim();
    return address ? [{ name: childText(f, 'Name')?.trim() ?? '', address }] : [];
  });
  return {
    command,
    clientId,
    saveInSent: child(body, 'SaveInSentItems') !== undefined,
    replaceMime: command !== 'SendMail' && child(body, 'ReplaceMime') !== undefined,
    mime: bytesOf(mime),
    source,
    forwardees,
  };
}

async function compose(context: CommandContext, request: ComposeRequest): Promise<void> {
  const maxBytes = context.config.maxMessageBytes;
  if (request.mime.length > maxBytes)
    throw new ComposeFailure(CommonStatus.AttachmentIsTooLarge, `the message is over ${maxBytes} bytes`);
  const hierarchy = request.source ? (await context.state.getHierarchy(context.device))?.state : undefined;

  await withBackends(context, async (backends) => {
    const mail = backends.mail;
    const calendar = calendarSourceFolder(hierarchy, request.source);
    const original = request.source && !calendar ? await findSource(mail, hierarchy, request.source) : undefined;
    if (request.source && !calendar && !original)
      throw new ComposeFailure(CommonStatus.ItemNotFound, 'the source message is not there');
    const message = calendar
      ? await calendarItemMessage(context, backends, calendar, request)
      : await buildMessage(context, request, original?.message);
    if (message.envelope.to.length === 0)
      throw new ComposeFailure(CommonStatus.MessageHasNoRecipient, 'the message has no recipient');
    if (message.full.length > maxBytes)
      throw new ComposeFailure(CommonStatus.AttachmentIsTooLarge, `the message is over ${maxBytes} bytes`);

    // Where the Sent copy goes is asked of IMAP while SMTP submits (the IMAP connection is idle meanwhile): at a
    // distance from the servers that LIST costs no time of its own. Settled before the backends close, also when the
    // submission fails.
    const sentFolder = request.saveInSent ? settle(sentFolderOf(mail)) : undefined;
    let outcome: Awaited<ReturnType<typeof sendOnce>>;
    try {
      outcome = await sendOnce(context, request, message);
    } finally {
      await sentFolder;
    }

    // Sent: what follows must not turn into a failure, or the device would send the message again. It is logged.
    if (outcome !== 'unconfirmed' && outcome.rejected.length > 0)
      await reportRefused(context, mail, message, outcome).catch((err: unknown) =>
        warnAfterSend(context, 'non-delivery-report-failed', err),
      );
    if (sentFolder)
      await saveInSent(mail, await sentFolder, message.full).catch((err: unknown) =>
        warnAfterSend(context, 'sent-copy-failed', err),
      );
    if (original) {
      const flag = request.command === 'SmartReply' ? '\\Answered' : '$Forwarded';
      await mail
        .setFlags(original.folder.source.ref, original.message.uid, [flag], [])
        .catch((err: unknown) => warnAfterSend(context, 'flag-original-failed', err));
    }
  });
}

/** The message to send: the device's as it is (SendMail, ReplaceMime) or built around the original. */
async function buildMessage(
  context: CommandContext,
  request: ComposeRequest,
  original: MessageWithSource | undefined,
): Promise<OutgoingMessage> {
  try {
    let threading: { inReplyTo?: string; references?: string[] } = {};
    let source = request.mime;
    if (original) {
      // A signed or encrypted message is sent as the device made it, as with ReplaceMime (MS-ASCMD §2.2.3.148): the
      // original quoted or attached into it would break its signature, or travel in clear beside its encryption.
      if (request.replaceMime || isSmimeMessage(request.mime)) {
        const parsed = await parseMime(original.source).catch(() => undefined);
        const references = parsed ? referencesOf(parsed) : [];
        if (parsed?.messageId) threading = { inReplyTo: parsed.messageId, references };
      } else {
        source = await composeSmart(
          request.command === 'SmartReply' ? 'reply' : 'forward',
          request.mime,
          original.source,
        );
      }
    }
    return await prepareOutgoing(source, {
      user: userAddresses(context)[0] ?? context.user.login,
      ...threading,
      extraRecipients: request.forwardees,
    });
  } catch (err) {
    if (err instanceof InvalidMimeError) throw new ComposeFailure(CommonStatus.InvalidMIME, err.message);
    throw err;
  }
}

/**
 * Submits the message unless it was already sent (118) or is being sent right now by another request (111, try
 * again): the claim is atomic in the StateStore, so two copies of one request cannot both send. A 14.0+ request is
 * known by its ClientId; a 12.x SendMail has none, and is known by the Message-ID the device gave its message
 * (a message without one cannot be told from a new one, and is sent).
 */
async function sendOnce(
  context: CommandContext,
  request: ComposeRequest,
  message: OutgoingMessage,
): Promise<SubmissionResult | 'unconfirmed'> {
  const marker =
    request.clientId !== undefined
      ? `compose:${request.clientId}`
      : message.deviceMessageId
        ? `compose-mid:${message.deviceMessageId.slice(0, MAX_CLIENT_ID_LENGTH)}`
        : undefined;
  return submitOnce(context, marker, message);
}

/**
 * Submits a message once per marker name (SendMail's ClientId or Message-ID, a draft's identity): 118 when it was
 * sent before, 111 while another request is sending it; SMTP failures as their ComposeMail status. Throws
 * ComposeFailure.
 *
 * A submission whose reply was lost after the whole message went out (SubmissionError 'unconfirmed', RFC 1047) counts
 * as sent: the server had the complete message, and sending it again would most likely deliver a second copy. The
 * marker stays ('unconfirmed'), so a retry is answered 118 without sending; the request's log line says
 * `submission-unconfirmed`. Resolves with the server's answer, or 'unconfirmed'.
 */
export async function submitOnce(
  context: CommandContext,
  marker: string | undefined,
  message: OutgoingMessage,
): Promise<SubmissionResult | 'unconfirmed'> {
  // The user sends as themselves only: From, Sender and the envelope sender are the user's own addresses (the login
  // or login@MAIL_DOMAIN, and SENDER_ALIASES), whatever the SMTP server would let through (SMTP_AUTH=none, a relay).
  const own = new Set(userAddresses(context));
  const strangers = [message.envelope.from, ...message.authors].filter((a) => !own.has(a.toLowerCase()));
  if (own.size === 0 || strangers.length > 0)
    throw new ComposeFailure(
      CommonStatus.MailSubmissionFailed,
      own.size === 0
        ? 'the user has no known address to send from (a login without a domain and no MAIL_DOMAIN)'
        : `the message is from ${strangers.slice(0, 3).join(', ') || 'no address'}, not one of the user's addresses`,
    );
  if (marker) {
    const held = await context.state.claimMarker(context.device, marker, {
      value: 'sending',
      expiresAt: Date.now() + SENDING_MARKER_TTL_MS,
    });
    if (held?.value === 'sent' || held?.value === 'unconfirmed')
      throw new ComposeFailure(CommonStatus.MessagePreviouslySent, `${marker} was sent before`);
    if (held)
      throw new ComposeFailure(CommonStatus.ServerErrorRetryLater, `${marker} is being sent by another request`);
  }
  let outcome: SubmissionResult | 'unconfirmed';
  try {
    outcome = await context.backends.submitter.submit(context.user, message.envelope, message.wire);
  } catch (err) {
    if (err instanceof SubmissionError && err.failure === 'unconfirmed') {
      warnAfterSend(context, 'submission-unconfirmed', err);
      outcome = 'unconfirmed';
    } else {
      if (marker) await context.state.deleteMarker(context.device, marker).catch(() => undefined);
      if (err instanceof SubmissionError) throw new ComposeFailure(submissionStatus(err), err.message);
      throw err;
    }
  }
  // Sent: a failure to remember it must not make the device send it again (the 'sending' claim still holds a while).
  if (marker)
    await context.state
      .putMarker(context.device, marker, {
        value: outcome === 'unconfirmed' ? 'unconfirmed' : 'sent',
        expiresAt: Date.now() + SENT_MARKER_TTL_MS,
      })
      .catch(() => undefined);
  return outcome;
}

/**
 * A step after the message went out failed (the Sent copy, flagging the original, removing a sent draft): the answer
 * still says sent, as Exchange's does, and the request's log line says what failed. Error text only, never credentials.
 */
export function warnAfterSend(context: Pick<CommandContext, 'note'>, what: string, err: unknown): void {
  const reason = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  // One field per kind of failure, so that two in one request both show.
  context.note?.({ [what]: reason.slice(0, 300) });
}

/** The ComposeMail Status for a submission the SMTP server refused or could not take. */
export function submissionStatus(err: SubmissionError): number {
  switch (err.failure) {
    case 'connection':
    case 'unconfirmed':
      return CommonStatus.ServerErrorRetryLater;
    case 'size':
      return CommonStatus.AttachmentIsTooLarge;
    case 'quota':
      return err.details.enhancedCode?.endsWith('.2.2')
        ? CommonStatus.MailboxQuotaExceeded
        : CommonStatus.SendQuotaExceeded;
    case 'recipients':
      return err.details.recipientAddress ? CommonStatus.MessageRecipientUnresolved : CommonStatus.MailSubmissionFailed;
    case 'auth':
    case 'rejected':
      return CommonStatus.MailSubmissionFailed;
  }
}

/**
 * The original of a SmartReply or SmartForward: by FolderId + ItemId, or by LongId (a Search result id, of the same
 * `<collectionId>:<uid>` form), in a mail folder of the device's hierarchy. InstanceId alone names no message here.
 */
async function findSource(
  mail: MailBackend,
  hierarchy: HierarchyState | undefined,
  source: NonNullable<ComposeRequest['source']>,
): Promise<{ folder: FolderRecord; message: MessageWithSource } | undefined> {
  const id = parseItemId(source.longId ?? source.itemId);
  if (!id) return undefined;
  if (source.longId === undefined && source.folderId !== undefined && source.folderId !== id.collectionId)
    return undefined;
  const folder = mailFolder(hierarchy, id.collectionId);
  if (!folder) return undefined;
  try {
    const [message] = await mail.fetchMessages(folder.source.ref, [id.uid]);
    return message ? { folder, message } : undefined;
  } catch (err) {
    if (
      err instanceof FolderNotFoundError ||
      (err as { serverResponseCode?: string }).serverResponseCode === 'NONEXISTENT'
    )
      return undefined;
    throw err;
  }
}

/**
 * Some recipients were refused while the others got the message: the device hears "sent", as from Exchange, and the
 * user finds a non-delivery report in the Inbox naming the refused ones and the server's reasons (non-delivery.ts).
 */
async function reportRefused(
  context: CommandContext,
  mail: MailBackend,
  message: OutgoingMessage,
  result: SubmissionResult,
): Promise<void> {
  context.note?.({ recipientsRefused: result.rejected.length });
  const replies = new Map((result.rejectedReplies ?? []).map((r) => [r.address.toLowerCase(), r.reply]));
  const parsed = await parseMime(message.wire).catch(() => undefined);
  const report = await buildNonDeliveryReport({
    user: message.envelope.from,
    original: message.wire,
    subject: parsed?.subject,
    refused: result.rejected.map((address) => ({
      address,
      reply: replies.get(address.toLowerCase()) ?? 'refused by the mail server',
    })),
    remoteMta: context.config.smtp.host,
    reportingMta: context.config.smtp.host,
  });
  const inbox = (await mail.listFolders()).find((f) => f.backend === 'imap' && f.type === FolderType.Inbox);
  if (!inbox) throw new Error('the account has no Inbox for the non-delivery report');
  await mail.appendMessage(inbox.ref, report, []);
}

/** The Sent folder (SPECIAL-USE \Sent); undefined when the account has none. */
async function sentFolderOf(mail: MailBackend): Promise<string | undefined> {
  return (await mail.listFolders()).find((f) => f.backend === 'imap' && f.type === FolderType.SentItems)?.ref;
}

/** Appends the sent message to the Sent folder, read; nothing when the account has none. */
async function saveInSent(mail: MailBackend, sent: Settled<string | undefined>, message: Uint8Array): Promise<void> {
  const folder = settledValue(sent);
  if (folder) await mail.appendMessage(folder, message, ['\\Seen']);
}
