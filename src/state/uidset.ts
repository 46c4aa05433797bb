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
  if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff)
    throw new Error(`malformed UID set near "${whole.slice(0, 40)}"`);
  return n;
}

/**
 * A set of UIDs kept as sorted ranges, read from and written to the text form without listing every UID: a Sync
 * of a 100,000-message folder touches only the few UIDs that changed, and should cost accordingly.
 */
export class UidSet implements Iterable<number> {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  private count = 0;

  static parse(encoded: string): UidSet {
    const set = new UidSet();
    if (encoded === '') return set;
    let previousEnd = 0;
    for (const part of encoded.split(',')) {
      const colon = part.indexOf(':');
      const start = previousEnd + parseBase36(colon < 0 ? part : part.slice(0, colon), encoded);
      const end = start + (colon < 0 ? 0 : parseBase36(part.slice(colon + 1), encoded));
      set.starts.push(start);
      set.ends.push(end);
      set.count += end - start + 1;
      previousEnd = end;
    }
    return set;
  }

  static of(uids: Iterable<number>): UidSet {
    return UidSet.parse(encodeUidSet(uids));
  }

  get size(): number {
    return this.count;
  }

  has(uid: number): boolean {
    const i = this.rangeAtOrBefore(uid);
    return i >= 0 && this.ends[i]! >= uid;
  }

  add(uid: number): void {
    const i = this.rangeAtOrBefore(uid);
    if (i >= 0 && this.ends[i]! >= uid) return;
    const joinsLeft = i >= 0 && this.ends[i] === uid - 1;
    const joinsRight = i + 1 < this.starts.length && this.starts[i + 1] === uid + 1;
    if (joinsLeft && joinsRight) {
      this.ends[i] = this.ends[i + 1]!;
      this.starts.splice(i + 1, 1);
      this.ends.splice(i + 1, 1);
    } else if (joinsLeft) {
      this.ends[i] = uid;
    } else if (joinsRight) {
      this.starts[i + 1] = uid;
    } else {
      this.starts.splice(i + 1, 0, uid);
      this.ends.splice(i + 1, 0, uid);
    }
    this.count++;
  }

  delete(uid: number): boolean {
    const i = this.rangeAtOrBefore(uid);
    if (i < 0 || this.ends[i]! < uid) return false;
    const start = this.starts[i]!;
    const end = this.ends[i]!;
    if (start === end) {
      this.starts.splice(i, 1);
      this.ends.splice(i, 1);
    } else if (uid === start) {
      this.starts[i] = uid + 1;
    } else if (uid === end) {
      this.ends[i] = uid - 1;
    } else {
      this.ends[i] = uid - 1;
      this.starts.splice(i + 1, 0, uid + 1);
      this.ends.splice(i + 1, 0, end);
    }
    this.count--;
    return true;
  }

  /** The `n` highest UIDs, highest first. */
  largest(n: number): number[] {
    const out: number[] = [];
    for (let i = this.starts.length - 1; i >= 0 && out.length < n; i--) {
      for (let uid = this.ends[i]!; uid >= this.starts[i]! && out.length < n; uid--) out.push(uid);
    }
    return out;
  }

  *[Symbol.iterator](): Iterator<number> {
    for (let i = 0; i < this.starts.length; i++) for (let uid = this.starts[i]!; uid <= this.ends[i]!; uid++) yield uid;
  }

  toString(): string {
    const parts: string[] = [];
    let previousEnd = 0;
    for (let i = 0; i < this.starts.length; i++) {
      const gap = (this.starts[i]! - previousEnd).toString(36);
      parts.push(this.ends[i]! > this.starts[i]! ? `${gap}:${(this.ends[i]! - this.starts[i]!).toString(36)}` : gap);
      previousEnd = this.ends[i]!;
    }
    return parts.join(',');
  }

  /** Index of the last range starting at or before `uid`; -1 when none does. */
  private rangeAtOrBefore(uid: number): number {
    let low = 0;
    let high = this.starts.length - 1;
    let found = -1;
    while (low <= high) {
      const mid = (low + high) >> 1;
      if (this.starts[mid]! <= uid) {
        found = mid;
        low = mid + 1;
      } else {
        high = mid - 1;
      }
    }
    return found;
  }
}
