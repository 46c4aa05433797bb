/** `activesync-edge wbxml decode|encode`: read captured ActiveSync traffic as XML, and turn XML back into WBXML. */
import { readFile } from 'node:fs/promises';
import { decodeWbxml } from './decoder.ts';
import { encodeWbxml } from './encoder.ts';
import { fromXml, toXml } from './xml.ts';

/** Reads a file, or stdin for `-`. */
export async function readInput(file: string): Promise<Uint8Array> {
  if (file !== '-') return new Uint8Array(await readFile(file));
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return new Uint8Array(Buffer.concat(chunks));
}

export async function decodeCommand(file: string, write: (s: string) => void): Promise<void> {
  write(toXml(decodeWbxml(await readInput(file))));
}

export async function encodeCommand(file: string, write: (b: Uint8Array) => void): Promise<void> {
  write(encodeWbxml(fromXml(new TextDecoder().decode(await readInput(file)))));
}
