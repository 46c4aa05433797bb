/** Sync `<Options>` (and the same shape in GetItemEstimate and ItemOperations) read into SyncOptions. */
import type { SyncOptions } from '../state/types.ts';
import { children, childText, type WbxmlElement } from '../wbxml/tree.ts';

type BodyPreference = NonNullable<SyncOptions['bodyPreferences']>[number];

function numberOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

/** AirSyncBase BodyPreference / BodyPartPreference entries of an Options element. */
export function bodyPreferencesOf(
  options: WbxmlElement,
  tag: 'BodyPreference' | 'BodyPartPreference' = 'BodyPreference',
): BodyPreference[] {
  return children(options, tag, 'AirSyncBase').flatMap((p) => {
    const type = numberOf(childText(p, 'Type', 'AirSyncBase'));
    if (type === undefined) return [];
    const preference: BodyPreference = { type };
    const truncationSize = numberOf(childText(p, 'TruncationSize', 'AirSyncBase'));
    const allOrNone = childText(p, 'AllOrNone', 'AirSyncBase');
    const preview = numberOf(childText(p, 'Preview', 'AirSyncBase'));
    if (truncationSize !== undefined) preference.truncationSize = truncationSize;
    if (allOrNone !== undefined) preference.allOrNone = allOrNone === '1';
    if (preview !== undefined) preference.preview = preview;
    return [preference];
  });
}

export function parseSyncOptions(options: WbxmlElement): SyncOptions {
  const parsed: SyncOptions = {};
  const filterType = numberOf(childText(options, 'FilterType', 'AirSync'));
  const mimeSupport = numberOf(childText(options, 'MIMESupport', 'AirSync'));
  const mimeTruncation = numberOf(childText(options, 'MIMETruncation', 'AirSync'));
  const conflict = numberOf(childText(options, 'Conflict', 'AirSync'));
  const bodyPreferences = bodyPreferencesOf(options);
  const bodyPartPreferences = bodyPreferencesOf(options, 'BodyPartPreference');
  if (filterType !== undefined) parsed.filterType = filterType;
  if (mimeSupport !== undefined) parsed.mimeSupport = mimeSupport;
  if (mimeTruncation !== undefined) parsed.mimeTruncation = mimeTruncation;
  if (conflict !== undefined) parsed.conflict = conflict;
  if (bodyPreferences.length) parsed.bodyPreferences = bodyPreferences;
  if (bodyPartPreferences.length) parsed.bodyPartPreferences = bodyPartPreferences;
  return parsed;
}

/**
 * A Sync collection's Options blocks (MS-ASCMD §2.2.3.125.6: up to two, one of them for the SMS class): a block
 * without airsync:Class holds the options of the folder's own class; a block with one is kept under that class
 * (§2.2.3.27.6). Undefined when the collection has no Options, so that the stored ones stay in force.
 */
export function parseCollectionOptions(blocks: readonly WbxmlElement[]): SyncOptions | undefined {
  if (blocks.length === 0) return undefined;
  const parsed: SyncOptions = {};
  for (const block of blocks) {
    const itemClass = childText(block, 'Class', 'AirSync')?.trim();
    if (itemClass) parsed.perClass = { ...parsed.perClass, [itemClass]: parseSyncOptions(block) };
    else Object.assign(parsed, parseSyncOptions(block));
  }
  return parsed;
}

/**
 * The options that apply to a collection of `itemClass`: the block naming that class, else the block without a
 * Class (MS-ASCMD §2.2.3.27.6). Blocks for another class (SMS in the Inbox, which this server does not sync) do not.
 */
export function optionsForClass(options: SyncOptions, itemClass: string): SyncOptions {
  const { perClass, ...own } = options;
  return perClass?.[itemClass] ?? own;
}
