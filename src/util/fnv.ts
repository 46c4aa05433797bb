/** FNV-1a, 32 bits, over UTF-16 code units: a stable, cheap hash for keys and fingerprints (not for secrets). */
export const FNV_OFFSET_BASIS = 0x811c9dc5;

export function fnv1a32(text: string, seed: number = FNV_OFFSET_BASIS): number {
  let hash = seed;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}
