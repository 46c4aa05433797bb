/**
 * A compact text form for sets of IMAP UIDs: runs of consecutive UIDs as ranges, each range written as the gap
 * from the previous range and its length, in base 36. A folder whose 100,000 UIDs are contiguous is a few bytes;
 * one with every other message deleted is about 4 bytes per message.
 *
 *   {1..5, 9, 10, 200} → "1:4,4:1,5a"   (start 1 (+4 more), then +4 → 9 (+1 more), then +190 → 200)
 */

export function encodeUidSet(uids: Iterable<number>): string {
  const sorted = Uint32Array.from(uids).sort();
  const parts: string[] = [];
  let previousEnd = 0;
  for (let i = 0; i < sorted.length; ) {
    const start = sorted[i]!;
    let end = start;
    while (i + 1 < sorted.length && sorted[i + 1]! <= end + 1) end = sorted[++i]!;
    i++;
    const gap = (start - previousEnd).toString(36);
    parts.push(end > start ? `${gap}:${(end - start).toString(36)}` : gap);
    previousEnd = end;
  }
  return parts.join(',');
}

export function decodeUidSet(encoded: string): number[] {
  const uids: number[] = [];
  if (encoded === '') return uids;
  let previousEnd = 0;
  for (const part of encoded.split(',')) {
    const colon = part.indexOf(':');
    const start = previousEnd + parseBase36(colon < 0 ? part : part.slice(0, colon), encoded);
    const extra = colon < 0 ? 0 : parseBase36(part.slice(colon + 1), encoded);
    for (let uid = start; uid <= start + extra; uid++) uids.push(uid);
    previousEnd = start + extra;
  }
  return uids;
}

function parseBase36(text: string, whole: string): number {
  const n = /^[0-9a-z]{1,7}$/.test(text) ? parseInt(text, 36) : NaN;
  if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`malformed UID set near "${whole.slice(0, 40)}"`);
  return n;
}
