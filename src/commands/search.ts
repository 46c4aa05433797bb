/**
 * Search (MS-ASCMD §2.2.1.16) of the Mailbox store: free text, folders (with their subfolders under
 * DeepTraversal) and received-date bounds, newest first, one Range of results at a time with the Total.
 *
 * A result's LongId is its ServerId (`<collectionId>:<uid>`, see mail-lookup.ts), so ItemOperations, SmartReply and
 * SmartForward take it as they take a synced item. Nothing is kept between requests: every Search runs the query
 * on IMAP again, so RebuildResults changes nothing.
 *
 * Notes (14.0+, MS-ASNOTE §3.1.5.2): a query with airsync:Class Notes, or naming the notes folder as its only
 * CollectionId, searches the notes folder (free text in a note's title and text, newest first); its results carry
 * the note's ServerId as LongId, which ItemOperations Fetch takes. A note has no DateReceived, so date bounds make
 * such a query invalid (Store Status 2).
 *
 * GAL: the tenant's directory address book (GAL_URL, gal.ts): entries whose name, email or nickname contain the Query,
 * by display name, one Range at a time with the Total; without GAL_URL, no match. DocumentLibrary and unknown names
 * are an invalid request (Store Status 2).
 */
import { withBackends } from '../backends/open.ts';
import { mailPolicy } from '../protocol/policy.ts';
import { child, childText, el, type WbxmlElement } from '../wbxml/tree.ts';
import {
  DEFAULT_SEARCH_RANGE,
  emailFetchOptions,
  emailItemData,
  emailOutput,
  MAX_SEARCH_RESULTS,
  type MailboxQuery,
  parseMailboxQuery,
  parseRange,
  searchPage,
  searchScope,
} from '../folders/mail-lookup.ts';
import { registerCommand } from './registry.ts';
import type { CommandContext, CommandResult } from '../protocol/command.ts';
import { findInGal, galProperties } from './gal.ts';
import { isNotesFolder } from '../folders/dav-items.ts';
import { davServerId } from '../folders/server-ids.ts';
import { converterFor } from '../sync/dav-converters.ts';
import { userAddresses } from '../sending/meeting-mail.ts';
import type { FolderRecord } from '../state/types.ts';

export const SearchStatus = {
  Success: 1,
  InvalidRequest: 2,
  ServerError: 3,
  QueryTooComplex: 8,
  FolderSyncRequired: 11,
} as const;

/** The whole request failed: a top-level Status and no Response. */
function failed(status: number): CommandResult {
  return { kind: 'wbxml', body: el('Search', 'Search', [el('Search', 'Status', status)]) };
}

/** The request was understood: top-level Status 1, and the Store's own Status with its results. */
function storeAnswer(status: number, content: WbxmlElement[] = []): CommandResult {
  return {
    kind: 'wbxml',
    body: el('Search', 'Search', [
      el('Search', 'Status', SearchStatus.Success),
      el('Search', 'Response', [el('Search', 'Store', [el('Search', 'Status', status), ...content])]),
    ]),
  };
}

/** No match: one empty Result and the Total, as Exchange answers (clients wait for a Result element). */
function noResults(total = 0): WbxmlElement[] {
  return [el('Search', 'Result'), el('Search', 'Total', total)];
}

export async function search(context: CommandContext): Promise<CommandResult> {
  const store = child(context.body, 'Store', 'Search');
  const name = childText(store, 'Name', 'Search')?.trim().toLowerCase();
  if (context.body?.tag !== 'Search' || !store || name === undefined) return failed(SearchStatus.InvalidRequest);
  if (name === 'gal') return searchGal(context, store);
  if (name !== 'mailbox') return storeAnswer(SearchStatus.InvalidRequest);

  const queryElement = child(store, 'Query', 'Search');
  const query = queryElement ? parseMailboxQuery(queryElement, 'Search') : 'invalid';
  if (query === 'invalid') return storeAnswer(SearchStatus.InvalidRequest);
  if (query === 'too-complex') return storeAnswer(SearchStatus.QueryTooComplex);
  const options = child(store, 'Options', 'Search');
  const rangeText = childText(options, 'Range', 'Search');
  const range = rangeText === undefined ? DEFAULT_SEARCH_RANGE : parseRange(rangeText);
  if (!range) return storeAnswer(SearchStatus.InvalidRequest);
  const hierarchy = (await context.state.getHierarchy(context.device))?.state;
  const notesFolder = hierarchy?.folders.find(isNotesFolder);
  const forNotes =
    query.class === 'Notes' ||
    (query.class === undefined &&
      query.collectionIds.length > 0 &&
      query.collectionIds.every((id) => id === notesFolder?.serverId));
  if (forNotes) return searchNotes(context, query, range, options, notesFolder);
  if (query.class !== undefined && query.class !== 'Email') return storeAnswer(SearchStatus.Success, noResults());

  const folders = searchScope(hierarchy, query.collectionIds, child(options, 'DeepTraversal', 'Search') !== undefined);
  if (!folders) return storeAnswer(SearchStatus.FolderSyncRequired);

  const fetchOptions = emailFetchOptions(options);
  const policy = mailPolicy(context.config.policy, context.user.login);
  return withBackends(context, async ({ mail }) => {
    const page = await searchPage(mail, folders, query, range, {
      ...fetchOptions,
      version: context.request.version,
      policy,
    });
    if (page.range === undefined) return storeAnswer(SearchStatus.Success, noResults(page.total));
    const results: WbxmlElement[] = [];
    for (const { hit, message } of page.found) {
      const collectionId = hit.folder.serverId;
      results.push(
        el('Search', 'Result', [
          el('AirSync', 'Class', 'Email'),
          el('Search', 'LongId', `${collectionId}:${hit.uid}`),
          el('AirSync', 'CollectionId', collectionId),
          el(
            'Search',
            'Properties',
            await emailItemData(
              mail,
              hit.folder.source.ref,
              message,
              emailOutput(context.request.version, collectionId, hit.uid, fetchOptions, policy),
            ),
          ),
        ]),
      );
    }
    return storeAnswer(SearchStatus.Success, [
      ...results,
      el('Search', 'Range', page.range),
      el('Search', 'Total', page.total),
    ]);
  });
}

/** Search of the notes folder: its notes whose title or text hold the FreeText, newest first, one Range at a time. */
async function searchNotes(
  context: CommandContext,
  query: MailboxQuery,
  range: { first: number; last: number },
  options: WbxmlElement | undefined,
  folder: FolderRecord | undefined,
): Promise<CommandResult> {
  if (query.after || query.before) return storeAnswer(SearchStatus.InvalidRequest);
  // The Notes class is 14.0+ (MS-ASCMD §2.2.3.27.5); a device without the notes folder, or a query naming another
  // folder, has no notes to find.
  const converter = folder && converterFor(folder.type);
  if (
    !folder ||
    !converter ||
    Number.parseFloat(context.request.version) < 14 ||
    query.collectionIds.some((id) => id !== folder.serverId)
  )
    return storeAnswer(SearchStatus.Success, noResults());
  const bodyPreferences = emailFetchOptions(options).bodyPreferences;
  return withBackends(context, async ({ notes }) => {
    if (!notes) return storeAnswer(SearchStatus.Success, noResults());
    const hrefs = await notes.search(query.freeText || undefined);
    const last = Math.min(range.last, range.first + MAX_SEARCH_RESULTS - 1);
    const wanted = hrefs.slice(range.first, last + 1);
    const items = new Map((await notes.fetchItems(folder.source.ref, wanted)).map((item) => [item.href, item]));
    const results: WbxmlElement[] = [];
    for (const href of wanted) {
      const item = items.get(href);
      const properties =
        item &&
        (await converter.toDevice(item.data, {
          version: context.request.version,
          bodyPreferences,
          userEmails: userAddresses(context),
        }));
      if (!properties) continue;
      const serverId = davServerId(folder.serverId, href);
      results.push(
        el('Search', 'Result', [
          el('AirSync', 'Class', 'Notes'),
          el('Search', 'LongId', serverId),
          el('AirSync', 'CollectionId', folder.serverId),
          el('Search', 'Properties', properties),
        ]),
      );
    }
    if (results.length === 0) return storeAnswer(SearchStatus.Success, noResults(hrefs.length));
    return storeAnswer(SearchStatus.Success, [
      ...results,
      el('Search', 'Range', `${range.first}-${range.first + results.length - 1}`),
      el('Search', 'Total', hrefs.length),
    ]);
  });
}

/** Search of the GAL store: Query is the text, Options/Range the page (default the first 100). */
async function searchGal(context: CommandContext, store: WbxmlElement): Promise<CommandResult> {
  const query = childText(store, 'Query', 'Search');
  const rangeText = childText(child(store, 'Options', 'Search'), 'Range', 'Search');
  const range = rangeText === undefined ? DEFAULT_SEARCH_RANGE : parseRange(rangeText);
  if (query === undefined || !range) return storeAnswer(SearchStatus.InvalidRequest);
  let entries: Awaited<ReturnType<typeof findInGal>>;
  try {
    entries = await findInGal(context, query);
  } catch {
    return storeAnswer(SearchStatus.ServerError);
  }
  const page = entries.slice(range.first, range.last + 1);
  if (page.length === 0) return storeAnswer(SearchStatus.Success, noResults(entries.length));
  return storeAnswer(SearchStatus.Success, [
    ...page.map((entry) => el('Search', 'Result', [el('Search', 'Properties', galProperties(entry))])),
    el('Search', 'Range', `${range.first}-${range.first + page.length - 1}`),
    el('Search', 'Total', entries.length),
  ]);
}

registerCommand({
  name: 'Search',
  responseRoot: { ns: 'Search', tag: 'Search' },
  serverErrorStatus: SearchStatus.ServerError,
  handle: search,
});
