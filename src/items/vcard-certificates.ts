/**
 * The X.509 certificates a vCard carries in KEY (RFC 6350 §6.8.1; vCard 3.0: RFC 2426 §3.7.1), as a directory
 * publishes its people's S/MIME certificates: `KEY;ENCODING=b;TYPE=X509:<base64>` (3.0) or
 * `KEY:data:application/pkix-cert;base64,<base64>` (4.0). A KEY that is a URL is not fetched, and one marked as
 * another kind of key (PGP) is not a certificate. The bytes are DER as found; whether they are a certificate fit for
 * e-mail is for the reader (smime/).
 */
import ICAL from 'ical.js';
import { fromBase64 } from '../util/base64.ts';

const OTHER_KEY_TYPES = /pgp|gpg|ssh/i;

export function certificatesOfVcard(card: ICAL.Component): Uint8Array[] {
  return card.getAllProperties('key').flatMap((key) => {
    const value = key.getFirstValue() as unknown;
    // A server that stores KEY as text escapes the data URI's ';' and ',' (RFC 6350 §3.4): Radicale does.
    const raw = value instanceof ICAL.Binary ? value.value : String(value ?? '').replace(/\\([,;])/g, '$1');
    const type = [key.getFirstParameter('type'), key.getFirstParameter('mediatype')]
      .map((t) => String(t ?? ''))
      .join(' ');
    const dataUri = /^data:([^,;]*)(?:;[^,]*)?;base64,(.*)$/is.exec(raw.trim());
    if (dataUri) {
      if (OTHER_KEY_TYPES.test(dataUri[1]!)) return [];
      const der = fromBase64(dataUri[2]!);
      return der?.length ? [der] : [];
    }
    const encoding = String(key.getFirstParameter('encoding') ?? '').toLowerCase();
    if (!(value instanceof ICAL.Binary || encoding === 'b' || encoding === 'base64')) return []; // a URL or text
    if (OTHER_KEY_TYPES.test(type)) return [];
    const der = fromBase64(raw);
    return der?.length ? [der] : [];
  });
}
