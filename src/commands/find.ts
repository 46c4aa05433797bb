/**
 * Find (MS-ASCMD §2.2.1.2, 16.1): the mailbox search of 16.1 clients. Same query as Search's Mailbox
 * store (mail-lookup.ts), but results carry the real ServerId (`<collectionId>:<uid>`), usable in Sync and
 * ItemOperations, and a fixed set of list properties instead of a whole item: Subject, DateReceived, DisplayTo,
 * DisplayCc, Importance, Read, IsDraft, Preview, HasAttachments, From.
 *
 * GalSearchCriterion: no GAL backend yet; answered as a search that found nothing (Status 1, Total 0).
 */
import { addressParser } from 'postal-mime';
import { withBackends } from '../backends/open.ts';
import type { MailBackend, MessageParts } from '../backends/types.ts';
import { BodyType } from '../items/body.ts';
import type { MailPolicy } from '../items/email.ts';
import { mailPolicy } from '../protocol/policy.ts';
import { child, childText, el, textOf, type WbxmlElement } from '../wbxml/tree.ts';
import {
  DEFAULT_SEARCH_RANGE,
  emailItemData,
  emailOutput,
  parseMailboxQuery,
  parseRange,
  searchPage,
  searchScope,
} from '../folders/mail-lookup.ts';
import { registerCommand } from './registry.ts';
import type { CommandContext, CommandResult } from '../protocol/command.ts';

export const FindStatus = {
  Success: 1,
  InvalidRequest: 2,
  FolderSyncRequired: 3,
  /** Common status (MS-ASCMD §2.2.2), valid in 16.1. */
  ServerError: 110,
} as const;

/** The most a Find Preview carries (MS-ASCMD §2.2.3.137). */
const PREVIEW_CHARS = 255;

/** A Find result's body: its Preview only (read as far as that needs, MailBackend.fetchMessageParts). */
const FIND_BODY = {
  bodyPreferences: [{ type: BodyType.PlainText, truncationSize: 0, preview: PREVIEW_CHARS }],
  bodyPartPreferences: [],
  mimeSupport: 0 as const,
};

function failed(status: number): CommandResult {
  return { kind: 'wbxml', body: el('Find', 'Find', [el('Find', 'Status', status)]) };
}

/** Top-level Status 1 (the request was understood) and the Response with the search's own Status. */
function answer(store: 'Mailbox' | 'GAL', status: number, content: (WbxmlElement | false)[] = []): CommandResult {
  return {
    kind: 'wbxml',
    body: el('Find', 'Find', [
      el('Find', 'Status', FindStatus.Success),
      el('Find', 'Response', [el('ItemOperations', 'Store', store), el('Find', 'Status', status), ...content]),
    ]),
  };
}

export async function find(context: CommandContext): Promise<CommandResult> {
  const execute = child(context.body, 'ExecuteSearch', 'Find');
  if (context.body?.tag !== 'Find' || !execute) return failed(FindStatus.InvalidRequest);
  if (child(execute, 'GalSearchCriterion', 'Find')) return answer('GAL', FindStatus.Success, [el('Find', 'Total', 0)]);
  const criterion = child(execute, 'MailBoxSearchCriterion', 'Find');
  const queryElement = child(criterion, 'Query', 'Find');
  const query = queryElement ? parseMailboxQuery(queryElement, 'Find') : 'invalid';
  if (typeof query === 'string') return failed(FindStatus.InvalidRequest);
  const options = child(criterion, 'Options', 'Find');
  const rangeText = childText(options, 'Range', 'Find');
  const range = rangeText === undefined ? DEFAULT_SEARCH_RANGE : parseRange(rangeText);
  if (!range) return failed(FindStatus.InvalidRequest);
  if (query.class !== undefined && query.class !== 'Email')
    return answer('Mailbox', FindStatus.Success, [el('Find', 'Total', 0)]);

  const hierarchy = (await context.state.getHierarchy(context.device))?.state;
  const folders = searchScope(hierarchy, query.collectionIds, child(options, 'DeepTraversal', 'Find') !== undefined);
  if (!folders) return answer('Mailbox', FindStatus.FolderSyncRequired);

  const policy = mailPolicy(context.config.policy, context.user.login);
  return withBackends(context, async ({ mail }) => {
    const page = await searchPage(mail, folders, query, range, {
      ...FIND_BODY,
      version: context.request.version,
      policy,
    });
    const results: WbxmlElement[] = [];
    for (const { hit, message } of page.found) {
      const collectionId = hit.folder.serverId;
      results.push(
        el('Find', 'Result', [
          el('AirSync', 'Class', 'Email'),
          el('AirSync', 'ServerId', `${collectionId}:${hit.uid}`),
          el('AirSync', 'CollectionId', collectionId),
          el(
            'Find',
            'Properties',
            await findProperties(mail, hit.folder.source.ref, message, context.request.version, collectionId, policy),
          ),
        ]),
      );
    }
    return answer('Mailbox', FindStatus.Success, [
      ...results,
      page.range !== undefined && el('Find', 'Range', page.range),
      el('Find', 'Total', page.total),
    ]);
  });
}

/**
 * The Find list properties, taken from the item as Sync would send it, with a plain-text body reduced to its Preview.
 */
async function findProperties(
  mail: MailBackend,
  folderRef: string,
  message: MessageParts,
  version: string,
  collectionId: string,
  policy: MailPolicy,
): Promise<WbxmlElement[]> {
  const item = await emailItemData(
    mail,
    folderRef,
    message,
    emailOutput(version, collectionId, message.uid, FIND_BODY, policy),
  );
  const property = (tag: string, ns: WbxmlElement['ns'] = 'Email'): WbxmlElement | undefined =>
    item.find((p) => p.tag === tag && p.ns === ns);
  const cc = property('Cc');
  const preview = child(property('Body', 'AirSyncBase'), 'Preview', 'AirSyncBase');
  const attachments = property('Attachments', 'AirSyncBase')?.children ?? [];
  return [
    property('Subject'),
    property('DateReceived'),
    property('DisplayTo'),
    cc && el('Find', 'DisplayCc', displayNames(textOf(cc))),
    property('Importance'),
    property('Read'),
    el('Email2', 'IsDraft', [...message.flags].some((f) => f.toLowerCase() === '\\draft') ? 1 : 0),
    preview && el('Find', 'Preview', textOf(preview)),
    // Inline images are part of the body, not attachments a person would look for.
    el('Find', 'HasAttachments', attachments.some((a) => childText(a, 'IsInline', 'AirSyncBase') !== '1') ? 1 : 0),
    property('From'),
  ].filter((p): p is WbxmlElement => !!p);
}

/** An address list as people read it: names (the address where there is none), `; `-separated as DisplayTo is. */
function displayNames(list: string): string {
  return addressParser(list)
    .flatMap((a) => a.group ?? [a])
    .map((m) => m.name || m.address)
    .join('; ');
}

registerCommand({
  name: 'Find',
  responseRoot: { ns: 'Find', tag: 'Find' },
  serverErrorStatus: FindStatus.ServerError,
  handle: find,
});
