/**
 * Which of the certificates a directory entry publishes a sender may encrypt to (ResolveRecipients, MS-ASCMD
 * §2.2.3.23.1: "valid certificates"): those that are X.509, within their validity now, for e-mail (validate.ts
 * checkPurpose) and not a CA's. The directory is the tenant's own, so no path to a root is asked for: a device checks
 * a recipient's certificate itself (or with ValidateCert). Newest first: the first is the one a mini certificate
 * names.
 */
import { checkPurpose } from './validate.ts';
import { ownBytes, x509 } from './x509.ts';

export function emailCertificates(ders: readonly Uint8Array[], now = new Date()): Uint8Array[] {
  const usable: { der: Uint8Array; notAfter: number }[] = [];
  for (const der of ders) {
    let cert: x509.X509Certificate;
    try {
      cert = new x509.X509Certificate(ownBytes(der));
    } catch {
      continue;
    }
    if (now < cert.notBefore || now > cert.notAfter) continue;
    if (cert.getExtension(x509.BasicConstraintsExtension)?.ca) continue;
    if (checkPurpose(cert)) continue;
    usable.push({ der, notAfter: cert.notAfter.getTime() });
  }
  return usable.sort((a, b) => b.notAfter - a.notAfter).map((u) => u.der);
}
