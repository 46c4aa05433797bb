/**
 * WBXML request bodies built byte by byte, for tests of the decoder's budgets and its yielding (Node and workerd).
 */

/** A Sync holding `count` empty Collection elements (AirSync 0x0F), one byte each: the most elements a byte buys. */
export function emptyTagsSync(count: number): Uint8Array {
  const body = new Uint8Array(4 + 1 + count + 1);
  body.set([3, 1, 106, 0, 0x45]);
  body.fill(0x0f, 5, 5 + count);
  body[body.length - 1] = 0x01;
  return body;
}
