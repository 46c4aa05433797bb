/**
 * How state records become bytes in a store: JSON (byte arrays as `{"$b": base64}`), deflated when that pays.
 * The first byte says which: 0x00 plain JSON, 0x01 deflate-raw JSON. CompressionStream exists in Node and workerd,
 * so every store writes the same bytes.
 */
import { fromBase64, toBase64 } from '../util/base64.ts';

const PLAIN = 0x00;
const DEFLATED = 0x01;
/** Below this, deflate saves too little to be worth its CPU. */
const DEFLATE_FROM_BYTES = 1024;

export async function encodeRecord(value: unknown): Promise<Uint8Array> {
  const json = new TextEncoder().encode(
    JSON.stringify(value, (_key, v: unknown) => (v instanceof Uint8Array ? { $b: toBase64(v) } : v)),
  );
  if (json.length < DEFLATE_FROM_BYTES) return prefixed(PLAIN, json);
  return prefixed(DEFLATED, await transform(json, new CompressionStream('deflate-raw')));
}

export async function decodeRecord<T>(bytes: Uint8Array): Promise<T> {
  let json: Uint8Array;
  if (bytes[0] === PLAIN) json = bytes.subarray(1);
  else if (bytes[0] === DEFLATED) json = await transform(bytes.subarray(1), new DecompressionStream('deflate-raw'));
  else throw new Error(`unknown state record format ${bytes[0]}`);
  return JSON.parse(new TextDecoder().decode(json), (_key, v: unknown) =>
    isBytesMarker(v) ? (fromBase64(v.$b) ?? new Uint8Array()) : v,
  ) as T;
}

function isBytesMarker(v: unknown): v is { $b: string } {
  return (
    typeof v === 'object' && v !== null && typeof (v as { $b?: unknown }).$b === 'string' && Object.keys(v).length === 1
  );
}

function prefixed(format: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(body.length + 1);
  out[0] = format;
  out.set(body, 1);
  return out;
}

async function transform(input: Uint8Array, stream: CompressionStream | DecompressionStream): Promise<Uint8Array> {
  const output = new Blob([input as Uint8Array<ArrayBuffer>]).stream().pipeThrough(stream);
  return new Uint8Array(await new Response(output).arrayBuffer());
}
