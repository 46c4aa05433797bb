/**
 * Flag tokens: how the flags a device holds are remembered in the collection state without CONDSTORE, so that a
 * flag or category another client changed is found by comparing tokens (MS-ASEMAIL §2.2.2.27 Flag, §2.2.2.53 Read).
 */
import { isCategoryKeyword } from '../items/category-keywords.ts';
import { decodeUidSet } from '../state/uidset.ts';
import { fnv1a32 } from '../util/fnv.ts';

/**
 * The flags a device sees: one hex digit (Seen 1, Flagged 2, Answered 4, $Forwarded 8), and when the message has
 * categories (keywords, see isCategoryKeyword) `:` and an 8-hex-digit hash of them, so that a category another
 * client set or removed is found without CONDSTORE too. `flagDigits` is these tokens in UID order, without separators.
 */
export function flagDigit(flags: ReadonlySet<string>): string {
  const digit = (
    (flags.has('\\Seen') ? 1 : 0) |
    (flags.has('\\Flagged') ? 2 : 0) |
    (flags.has('\\Answered') ? 4 : 0) |
    (flags.has('$Forwarded') ? 8 : 0)
  ).toString(16);
  const categories = [...flags].filter(isCategoryKeyword).sort();
  return categories.length ? `${digit}:${fnv1a32(categories.join(' ')).toString(16).padStart(8, '0')}` : digit;
}

/** `flagDigits` read back: UID → its token (see flagDigit). */
export function flagDigitsMap(uids: string, digits: string): Map<number, string> {
  const tokens = digits.match(/[0-9a-f](?::[0-9a-f]{8})?/g) ?? [];
  const map = new Map<number, string>();
  decodeUidSet(uids).forEach((uid, i) => {
    map.set(uid, tokens[i] ?? '0');
  });
  return map;
}
