/**
 * @peculiar/x509 (X.509 over WebCrypto: it runs in Node and in workerd alike), loaded with what it needs first: its
 * dependency tsyringe refuses to load without a Reflect metadata polyfill. Everything here imports X.509 from this
 * module, never from the package.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

// The runtime's WebCrypto (Node's global `crypto`, workerd's), named once rather than found by the library's guess.
x509.cryptoProvider.set(crypto);

export { x509 };

/** `bytes` in an ArrayBuffer of their own, as the library's parsers take them. */
export function ownBytes(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(bytes);
}
