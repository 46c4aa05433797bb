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
