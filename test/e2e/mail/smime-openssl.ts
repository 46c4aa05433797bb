/**
 * S/MIME material for the tests, made at test time with the openssl command line (OpenSSL's `cms`, RFC 5652 and
 * RFC 8551): a test CA, a signer and a recipient certificate for email protection, and messages signed (clear,
 * multipart/signed; opaque, application/pkcs7-mime signed-data) or encrypted (enveloped-data) as a mail client makes
 * them. Checks run openssl too: `cms -verify` against the test CA, `cms -decrypt` with the recipient's key.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Buffer } from 'node:buffer';

export type SmimeKind = 'clear-signed' | 'opaque-signed' | 'encrypted';

export interface SmimeParty {
  email: string;
  cert: string;
  key: string;
}

export class SmimeLab {
  private readonly dir = mkdtempSync(join(tmpdir(), 'smime-lab-'));
  private readonly ca = join(this.dir, 'ca.pem');
  private files = 0;

  constructor() {
    this.openssl([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      join(this.dir, 'ca.key'),
      '-out',
      this.ca,
      '-days',
      '2',
      '-subj',
      '/CN=activesync-edge test SMIME CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
  }

  /** A certificate for `email`, issued by the test CA for S/MIME (RFC 8550 §4.4: emailProtection, the address in the SAN). */
  party(email: string): SmimeParty {
    const name = email.replace(/[^a-z0-9]/gi, '_');
    const key = join(this.dir, `${name}.key`);
    const csr = join(this.dir, `${name}.csr`);
    const cert = join(this.dir, `${name}.pem`);
    const ext = join(this.dir, `${name}.ext`);
    writeFileSync(
      ext,
      [
        'basicConstraints=CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        'extendedKeyUsage=emailProtection',
        `subjectAltName=email:${email}`,
      ].join('\n'),
    );
    this.openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${email}`]);
    this.openssl([
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      this.ca,
      '-CAkey',
      join(this.dir, 'ca.key'),
      '-set_serial',
      String(Date.now()),
      '-days',
      '2',
      '-extfile',
      ext,
      '-out',
      cert,
    ]);
    return { email, cert, key };
  }

  /**
   * A whole message of this kind from `from` to `to` whose content is `entity` (a MIME entity: its header fields, a
   * blank line, its body). Encrypted messages are signed first and then encrypted, as Outlook and iOS send them.
   * Line ends are CRLF throughout (openssl writes the base64 of a signature with bare LF).
   */
  message(kind: SmimeKind, o: { from: SmimeParty; to: SmimeParty; subject: string; entity: string }): Buffer {
    const sign = (args: string[], input: Buffer): Buffer =>
      this.cms(['-sign', '-signer', o.from.cert, '-inkey', o.from.key, ...args], input);
    const entity = crlf(Buffer.from(o.entity));
    let body: Buffer;
    if (kind === 'clear-signed') body = sign([], entity);
    else if (kind === 'opaque-signed') body = sign(['-nodetach'], entity);
    else body = this.cms(['-encrypt', '-aes256', '-recip', o.to.cert], crlf(sign([], entity)));
    const header = [
      `From: ${o.from.email}`,
      `To: ${o.to.email}`,
      `Subject: ${o.subject}`,
      `Date: ${new Date().toUTCString().replace('GMT', '+0000')}`,
      `Message-ID: <${Math.random().toString(36).slice(2)}@example.test>`,
    ].join('\r\n');
    return Buffer.concat([Buffer.from(`${header}\r\n`), crlf(body)]);
  }

  /** The signed content when the signature verifies against the test CA; throws (openssl's reason) when not. */
  verify(message: Uint8Array): Buffer {
    return this.cms(['-verify', '-CAfile', this.ca], Buffer.from(message));
  }

  /** The decrypted content of an enveloped message (or DER blob) for `recipient`; throws when it cannot be. */
  decrypt(message: Uint8Array, recipient: SmimeParty, der = false): Buffer {
    return this.cms(
      ['-decrypt', '-recip', recipient.cert, '-inkey', recipient.key, ...(der ? ['-inform', 'DER'] : [])],
      Buffer.from(message),
    );
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private cms(args: string[], input: Buffer): Buffer {
    const file = join(this.dir, `in-${++this.files}`);
    const out = `${file}.out`;
    writeFileSync(file, input);
    this.openssl(['cms', ...args, '-crlfeol', '-in', file, '-out', out]);
    return readFileSync(out);
  }

  private openssl(args: string[]): void {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  }
}

/** Every line end as CRLF. */
export function crlf(bytes: Buffer): Buffer {
  return Buffer.from(bytes.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');
}

/** The bytes after a message's header block (its first empty line). */
export function bodyOf(message: Uint8Array): Buffer {
  const bytes = Buffer.from(message);
  const end = bytes.indexOf('\r\n\r\n');
  if (end < 0) throw new Error('the message has no header block end');
  return bytes.subarray(end + 4);
}

/** The raw value of a top-level header field (unfolded), or undefined. */
export function headerOf(message: Uint8Array, name: string): string | undefined {
  const block = Buffer.from(message).subarray(0, Buffer.from(message).indexOf('\r\n\r\n')).toString('latin1');
  const match = new RegExp(`^${name}:[ \\t]*((?:.*)(?:\\r\\n[ \\t].*)*)`, 'im').exec(block);
  return match?.[1]?.replace(/\r\n[ \t]/g, ' ');
}
