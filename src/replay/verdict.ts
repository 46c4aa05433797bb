/**
 * Whether a live answer is the one a replayed request should get: the same HTTP status and the same command and
 * collection Status values as the captured answer, or, for a corpus request without one, success or the status the
 * session says the protocol documents for it.
 */
import type { WbxmlElement } from '../wbxml/tree.ts';
import type { ReplayExpect } from './session.ts';

/** A Status element of an answer and where it sits (`Sync/Collections/Collection/Status`). */
export interface StatusAt {
  path: string;
  value: string;
}

/** Item content: a Status there is an item's (a flag's, an attendee's), not the command's. */
const ITEM_NAMESPACES: ReadonlySet<string> = new Set([
  'Email',
  'Email2',
  'Calendar',
  'Contacts',
  'Contacts2',
  'Tasks',
  'Notes',
  'AirSyncBase',
  'RightsManagement',
  'DocumentLibrary',
  'Gal',
]);
const ITEM_CONTAINERS: ReadonlySet<string> = new Set(['ApplicationData', 'Properties']);

/** The command's, collections' and entries' Status values, in document order. */
export function statusesOf(root: WbxmlElement | undefined): StatusAt[] {
  const out: StatusAt[] = [];
  const walk = (e: WbxmlElement, path: string): void => {
    for (const c of e.children) {
      if (ITEM_NAMESPACES.has(c.ns) || ITEM_CONTAINERS.has(c.tag)) continue;
      const at = `${path}/${c.tag}`;
      if (c.tag === 'Status' && c.children.length === 0) out.push({ path: at, value: c.text ?? '' });
      else walk(c, at);
    }
  };
  if (root) walk(root, root.tag);
  return out;
}

/**
 * Status values that are success besides 1 (MS-ASCMD §2.2.3.177.x): Ping 2 (changes), MoveItems 3 (moved),
 * ResolveRecipients 2 and 3 (ambiguous: suggestions follow).
 */
const ALSO_SUCCESS: Record<string, ReadonlySet<string>> = {
  'Ping/Status': new Set(['2']),
  'MoveItems/Response/Status': new Set(['3']),
  'ResolveRecipients/Response/Status': new Set(['2', '3']),
};

export function isSuccess(s: StatusAt): boolean {
  return s.value === '1' || ALSO_SUCCESS[s.path]?.has(s.value) === true;
}

/** Ping answers 1 (interval over) or 2 (changes) depending on timing alone: both are the same answer here. */
function sameStatus(path: string, a: string, b: string): boolean {
  if (a === b) return true;
  return path === 'Ping/Status' && isSuccess({ path, value: a }) && isSuccess({ path, value: b });
}

export interface LiveAnswer {
  httpStatus: number;
  statuses: StatusAt[];
  /** The answer's headers, for what a corpus request expects of them. */
  headers?: Headers;
}

export interface CapturedAnswer {
  httpStatus: number;
  /** The captured answer's statuses; undefined when its body was not kept as XML. */
  statuses: StatusAt[] | undefined;
  /** The command status of the log line, compared when the body is not there. */
  commandStatus?: number;
}

/** How the live answer differs from the captured one, one line per difference; [] when it does not. */
export function compareWithCaptured(captured: CapturedAnswer, live: LiveAnswer): string[] {
  const out: string[] = [];
  if (captured.httpStatus !== live.httpStatus) out.push(`HTTP ${live.httpStatus}, captured ${captured.httpStatus}`);
  if (captured.statuses === undefined) {
    const root = live.statuses.find((s) => s.path.split('/').length === 2);
    if (captured.commandStatus !== undefined && root && !sameStatus(root.path, root.value, `${captured.commandStatus}`))
      out.push(`${root.path} ${root.value}, captured ${captured.commandStatus}`);
    return out;
  }
  const paths = [...new Set([...captured.statuses, ...live.statuses].map((s) => s.path))];
  for (const path of paths) {
    const was = captured.statuses.filter((s) => s.path === path).map((s) => s.value);
    const now = live.statuses.filter((s) => s.path === path).map((s) => s.value);
    const same = was.length === now.length && was.every((v, i) => sameStatus(path, v, now[i]!));
    if (!same) out.push(`${path} ${now.join(',') || '(none)'}, captured ${was.join(',') || '(none)'}`);
  }
  return out;
}

/**
 * How the live answer differs from what a corpus request expects: HTTP 200 and every status success, or the
 * expected HTTP status and the expected Status (present, and the only status that is not success), and the expected
 * headers.
 */
export function compareWithExpected(expected: ReplayExpect | undefined, live: LiveAnswer): string[] {
  const out: string[] = [];
  const http = expected?.httpStatus ?? 200;
  if (live.httpStatus !== http) out.push(`HTTP ${live.httpStatus}, expected ${http}`);
  for (const [name, prefix] of Object.entries(expected?.headers ?? {})) {
    const value = live.headers?.get(name);
    if (!value?.toLowerCase().startsWith(prefix.toLowerCase()))
      out.push(`${name}: ${value ?? '(none)'}, expected ${prefix}…`);
  }
  const want = expected?.status;
  if (want === undefined) {
    for (const s of live.statuses) if (!isSuccess(s)) out.push(`${s.path} ${s.value}, expected success`);
    return out;
  }
  const wanted = String(want);
  if (!live.statuses.some((s) => s.value === wanted))
    out.push(
      `Status ${wanted} expected, the answer has ${live.statuses.map((s) => `${s.path} ${s.value}`).join(', ') || 'none'}`,
    );
  for (const s of live.statuses)
    if (s.value !== wanted && !isSuccess(s)) out.push(`${s.path} ${s.value}, expected ${wanted} or success`);
  return out;
}
