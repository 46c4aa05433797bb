/**
 * Large values in chunks. A head item holds `syncKey`, the encoded state (`state`, Binary) and the previous key's
 * response (`replayKey`, `replayExpiresAt`, `replay`). A state or response too large for DynamoDB's 400 KB item limit
 * is cut into CHUNK items under a fresh random blob id (`stateBlob`/`stateChunks`, `replayBlob`/`replayChunks` in the
 * head instead of the bytes). Chunks are written before the head and never changed, so a head always points at
 * complete data; the store deletes the chunks a head stops pointing at (it was replaced, or lost its race).
 */
import { plainBytes, readOptionalNumber, toKeyItem, TTL_ATTRIBUTE, type Item, type Key } from './keys.ts';

/**
 * Bytes per chunk item, and the most a head carries inline (state and replay together). The 400 KB item limit also
 * counts keys (pk ≤ 2 KB, sk ≤ 1 KB), attribute names and the few short strings beside the bytes; 16 KB covers them.
 */
export const CHUNK_BYTES = 384 * 1024;

interface BlobRef {
  id: string;
  chunks: number;
}

/**
 * Cuts `bytes` into chunk items under a new blob id (appended to `chunks`), and returns the head attributes that
 * point at them.
 */
export function blobReference(
  name: 'state' | 'replay',
  pk: string,
  bytes: Uint8Array,
  chunks: Item[],
  ttl?: number,
): Item {
  const blob: BlobRef = { id: crypto.randomUUID(), chunks: Math.ceil(bytes.length / CHUNK_BYTES) };
  chunkKeys(pk, blob).forEach((key, i) => {
    const item: Item = { ...toKeyItem(key), data: { B: bytes.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES) } };
    if (ttl !== undefined) item[TTL_ATTRIBUTE] = { N: String(ttl) };
    chunks.push(item);
  });
  return { [`${name}Blob`]: { S: blob.id }, [`${name}Chunks`]: { N: String(blob.chunks) } };
}

function blobOf(head: Item, name: 'state' | 'replay'): BlobRef | undefined {
  const id = head[`${name}Blob`]?.S;
  const chunks = readOptionalNumber(head, `${name}Chunks`);
  return id !== undefined && chunks !== undefined ? { id, chunks } : undefined;
}

function chunkKeys(pk: string, blob: BlobRef): Key[] {
  return Array.from({ length: blob.chunks }, (_, i) => ({ pk, sk: `CHUNK#${blob.id}#${i}` }));
}

/** The chunk items a head points at. */
export function chunkKeysOf(pk: string, head: Item): Key[] {
  return (['state', 'replay'] as const).flatMap((name) => {
    const blob = blobOf(head, name);
    return blob ? chunkKeys(pk, blob) : [];
  });
}

/** The bytes of a head's `state` or `replay`, inline or from its chunks; undefined when a chunk is missing. */
export async function readChunked(
  pk: string,
  head: Item,
  name: 'state' | 'replay',
  getItem: (key: Key) => Promise<Item | undefined>,
): Promise<Uint8Array | undefined> {
  const inline = head[name]?.B;
  if (inline) return plainBytes(inline);
  const blob = blobOf(head, name);
  if (!blob) return undefined;
  const pieces = await Promise.all(chunkKeys(pk, blob).map((key) => getItem(key)));
  const parts: Uint8Array[] = [];
  for (const piece of pieces) {
    const data = piece?.data?.B;
    if (!data) return undefined;
    parts.push(data);
  }
  return concatBytes(parts);
}

function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
