/**
 * The ServerIds of CalDAV/CardDAV items: `<collectionId>:<hash of the href>`, short and stable for as long as the
 * resource keeps its href (MS-ASCMD §2.2.3.166.x ServerId: at most 64 characters).
 */
import { fnv1a32 } from '../util/fnv.ts';

/** FNV-1a over the href, twice with different seeds: 64 bits, 13 base-36 characters. */
export function davServerId(collectionId: string, href: string): string {
  return `${collectionId}:${fnv1a32(href).toString(36)}${fnv1a32(href, 0x050c5d1f).toString(36)}`;
}
