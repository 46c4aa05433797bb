/**
 * encoding-japanese for the Worker bundle (wrangler.toml `[alias]`), without its ~90 KiB of JIS tables (~40 KiB
 * gzipped): libmime and imapflow only call `convert(bytes, { to: 'UNICODE', from, type: 'string' })` to decode
 * ISO-2022-JP, EUC-JP and Shift_JIS, which workerd's TextDecoder does. Anything else throws; both libraries catch
 * that (libmime falls back to iconv-lite, imapflow passes the bytes on undecoded).
 */
import { decode } from './iconv-lite.ts';

export interface ConvertOptions {
  to: string;
  from?: string;
  type?: string;
}

/** encoding-japanese's names (upper case, letters and digits) and aliases, as platform labels. */
function platformLabel(name: string): string | undefined {
  if (/^(JIS|ISO2022JP)/.test(name)) return 'iso-2022-jp';
  if (/^EUC/.test(name)) return 'euc-jp';
  if (/^(SJIS|SHIFTJIS|XSJIS|CP932|MSKANJI|WINDOWS31J)/.test(name)) return 'shift_jis';
  if (name === 'UTF8' || name === 'ASCII') return 'utf-8';
  if (/^UTF(16|32)(BE|LE)?$/.test(name)) return name.replace(/^UTF(\d\d)/, 'utf-$1').toLowerCase();
  if (name === 'BINARY') return 'latin1';
  return undefined;
}

/** What encoding-japanese's AUTO would find among the Japanese encodings: escapes, valid UTF-8, EUC-JP, Shift_JIS. */
function detect(bytes: Uint8Array): string {
  if (bytes.includes(0x1b)) return 'iso-2022-jp';
  for (const label of ['utf-8', 'euc-jp']) {
    try {
      new TextDecoder(label, { fatal: true, ignoreBOM: false }).decode(bytes);
      return label;
    } catch {
      // not this one
    }
  }
  return 'shift_jis';
}

export function convert(data: Uint8Array | ArrayLike<number> | string, options: ConvertOptions): string {
  if (options.to.toUpperCase() !== 'UNICODE' || options.type !== 'string' || typeof data === 'string') {
    throw new Error('encoding-japanese in the Worker build only decodes bytes to a string');
  }
  const bytes = data instanceof Uint8Array ? data : Uint8Array.from(data);
  const name = (options.from ?? 'AUTO').toUpperCase().replace(/[^A-Z0-9]+/g, '');
  return decode(bytes, platformLabel(name) ?? detect(bytes));
}

const encodingJapanese = { convert };
export default encodingJapanese;
