/**
 * ActiveSync email categories (MS-ASEMAIL Categories) as IMAP keywords (RFC 3501 §2.3.2). Categories are the keywords
 * that are not system flags (`\…`), not `$…` keywords ($Forwarded, $Junk, $label1, $MDNSent, …) and not the legacy junk
 * markers Junk/NonJunk/NotJunk. A category that is not a valid IMAP atom (spaces, non-ASCII, a leading `$`) is stored
 * as a keyword in modified UTF-7 (RFC 3501 §5.1.3), with the characters an atom cannot carry inside the base64 run, so
 * that every category survives the round trip.
 */
import { fromBase64, toBase64 } from '../util/base64.ts';

const CATEGORY_EXCLUDED = new Set(['junk', 'nonjunk', 'notjunk']);

/** Whether an IMAP flag is a user keyword that we show as a category (rule above). */
export function isCategoryKeyword(flag: string): boolean {
  return flag.length > 0 && flag[0] !== '\\' && flag[0] !== '$' && !CATEGORY_EXCLUDED.has(flag.toLowerCase());
}

/** Characters an IMAP atom may hold (RFC 3501 ATOM-CHAR), minus `&`, which starts a modified UTF-7 run. */
function isAtomSafe(c: string): boolean {
  const code = c.charCodeAt(0);
  return c.length === 1 && code > 0x20 && code < 0x7f && !'(){%*"\\]&'.includes(c);
}

/** A category name as an IMAP keyword: itself when it is a plain atom, else with modified UTF-7 runs. */
export function categoryToKeyword(category: string): string {
  let out = '';
  let run = '';
  const flush = (): void => {
    if (run) out += `&${modifiedBase64(run)}-`;
    run = '';
  };
  for (const c of category) {
    // A leading `$` would read back as a system keyword, so it goes into a run too.
    if (isAtomSafe(c) && !(c === '$' && out === '' && run === '')) {
      flush();
      out += c;
    } else if (c === '&' && run === '') {
      out += '&-';
    } else run += c;
  }
  flush();
  return out;
}

/** An IMAP keyword as a category name, decoding modified UTF-7 runs. */
export function keywordToCategory(keyword: string): string {
  if (!keyword.includes('&')) return keyword;
  return keyword.replace(/&([A-Za-z0-9+,]*)-/g, (whole, run: string) => {
    if (run === '') return '&';
    const decoded = fromModifiedBase64(run);
    return decoded ?? whole;
  });
}

function modifiedBase64(text: string): string {
  const bytes = new Uint8Array(text.length * 2);
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    bytes[2 * i] = unit >> 8;
    bytes[2 * i + 1] = unit & 0xff;
  }
  return toBase64(bytes).replace(/=+$/, '').replace(/\//g, ',');
}

function fromModifiedBase64(run: string): string | undefined {
  const bytes = fromBase64(run.replace(/,/g, '/'));
  if (!bytes || bytes.length % 2 !== 0) return undefined;
  let out = '';
  for (let i = 0; i < bytes.length; i += 2) out += String.fromCharCode((bytes[i]! << 8) | bytes[i + 1]!);
  return out;
}
