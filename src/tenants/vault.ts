/**
 * The credential vault: a user's password sealed for the push watcher when the tenant has no IMAP master user
 * (DESIGN §6). AES-256-GCM through WebCrypto, which Node, Lambda and workerd all have, under the tenant's
 * `CREDENTIAL_KEY` (32 random bytes, base64, from the runtime's secret store).
 *
 * Sealed form: `0x01 | 12-byte random IV | ciphertext with its 16-byte tag`. The tenant and user are bound in as
 * additional authenticated data, so a sealed credential copied onto another user's lease does not open.
 * Nothing here logs; callers must not log what goes in or comes out either.
 */
import { fromBase64 } from '../util/base64.ts';

const VERSION = 0x01;
const IV_BYTES = 12;
const KEY_BYTES = 32;

/** A credential vault key could not be used, or a sealed credential did not open (wrong key, other user, tampered). */
export class VaultError extends Error {
  override readonly name = 'VaultError';
}

/** The raw key from its base64 form; undefined unless it is exactly 32 bytes. */
export function decodeVaultKey(base64: string): Uint8Array | undefined {
  const bytes = fromBase64(base64);
  return bytes && bytes.length === KEY_BYTES ? bytes : undefined;
}

function importKey(raw: Uint8Array): Promise<CryptoKey> {
  if (raw.length !== KEY_BYTES) throw new VaultError(`a vault key has ${KEY_BYTES} bytes`);
  return crypto.subtle.importKey('raw', raw as Uint8Array<ArrayBuffer>, { name: 'AES-GCM' }, false, [
    'encrypt',
    'decrypt',
  ]);
}

function associatedData(scope: { tenant: string; user: string }): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(
    `activesync-edge credential v1\u0000${scope.tenant}\u0000${scope.user}`,
  ) as Uint8Array<ArrayBuffer>;
}

/** Seals `secret` (a password) for this tenant's user. */
export async function sealCredential(
  key: Uint8Array,
  scope: { tenant: string; user: string },
  secret: string,
): Promise<Uint8Array> {
  const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
  const cipher = await crypto.subtle.encrypt(
    { name: 'AES-GCM', iv, additionalData: associatedData(scope) },
    await importKey(key),
    new TextEncoder().encode(secret),
  );
  const out = new Uint8Array(1 + IV_BYTES + cipher.byteLength);
  out[0] = VERSION;
  out.set(iv, 1);
  out.set(new Uint8Array(cipher), 1 + IV_BYTES);
  return out;
}

/** Opens what sealCredential made for the same tenant and user under the same key; throws VaultError otherwise. */
export async function openCredential(
  key: Uint8Array,
  scope: { tenant: string; user: string },
  sealed: Uint8Array,
): Promise<string> {
  if (sealed.length < 1 + IV_BYTES + 16 || sealed[0] !== VERSION) throw new VaultError('not a sealed credential');
  const cryptoKey = await importKey(key);
  try {
    const plain = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: sealed.slice(1, 1 + IV_BYTES), additionalData: associatedData(scope) },
      cryptoKey,
      sealed.slice(1 + IV_BYTES),
    );
    return new TextDecoder().decode(plain);
  } catch {
    // WebCrypto says only "OperationError": the key, the scope or the bytes are not the ones sealed together.
    throw new VaultError('the sealed credential does not open with this key for this user');
  }
}
