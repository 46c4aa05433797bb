/**
 * ValidateCert (MS-ASCMD §2.2.1.22): the device sends certificates it found on S/MIME mail (Certificates), the
 * intermediates that may link them to a root (CertificateChain), and whether revocation must be known (CheckCRL,
 * §2.2.3.26); each certificate gets a Status of §2.2.3.177.18 (smime/validate.ts decides which) against the tenant's
 * trust store (SMIME_TRUST_STORE, smime/trust-store.ts). A request that is not one (no Certificates, text that is not
 * base64, more certificates than a mail carries) is Status 2, protocol error; a failure of ours is 17. The whole
 * command has a budget: CRL reads stop when it is spent, and their certificates are answered 14 (status unknown).
 */
import { fromBase64 } from '../util/base64.ts';
import { child, children, childText, el, textOf, type WbxmlElement } from '../wbxml/tree.ts';
import { registerCommand } from './registry.ts';
import type { CommandContext, CommandResult } from '../protocol/command.ts';

export const ValidateCertStatus = { Success: 1, ProtocolError: 2, ServerError: 17 } as const;

const MAX_CERTIFICATES = 50;
const MAX_CHAIN = 20;
const BUDGET_MS = 20_000;

function top(status: number, certificates: WbxmlElement[] = []): CommandResult {
  return {
    kind: 'wbxml',
    body: el('ValidateCert', 'ValidateCert', [el('ValidateCert', 'Status', status), ...certificates]),
  };
}

/** The certificates under `list` as DER; undefined when one is not base64 (or is empty). */
function certificatesIn(list: WbxmlElement | undefined): Uint8Array[] | undefined {
  const decoded = children(list, 'Certificate').map((c) => fromBase64(textOf(c)));
  return decoded.every((d): d is Uint8Array => d !== undefined && d.length >= 3) ? decoded : undefined;
}

export async function validateCert(context: CommandContext): Promise<CommandResult> {
  const body = context.body;
  if (body?.ns !== 'ValidateCert' || body.tag !== 'ValidateCert') return top(ValidateCertStatus.ProtocolError);
  const leaves = certificatesIn(child(body, 'Certificates'));
  const chainDer =
    certificatesIn(child(body, 'CertificateChain')) ?? (child(body, 'CertificateChain') ? undefined : []);
  const checkText = childText(body, 'CheckCRL')?.trim().toLowerCase();
  if (
    !leaves ||
    !chainDer ||
    leaves.length === 0 ||
    leaves.length > MAX_CERTIFICATES ||
    chainDer.length > MAX_CHAIN ||
    (checkText !== undefined && !['0', '1', 'true', 'false'].includes(checkText))
  )
    return top(ValidateCertStatus.ProtocolError);
  const trust = context.config.smimeTrust;
  if (!trust) return top(ValidateCertStatus.ServerError);
  // Loaded on the first ValidateCert: the X.509 code stays out of processes that never validate.
  const [{ validateCertificate }, { x509, ownBytes }, anchors] = await Promise.all([
    import('../smime/validate.ts'),
    import('../smime/x509.ts'),
    trust.anchors(),
  ]);
  // An intermediate that cannot be read links nothing: it is left out, and a certificate that needed it has no path.
  const chain = chainDer.flatMap((der) => {
    try {
      return [new x509.X509Certificate(ownBytes(der))];
    } catch {
      return [];
    }
  });
  const signal = AbortSignal.any([context.signal, AbortSignal.timeout(BUDGET_MS)]);
  const checkCrl = checkText === '1' || checkText === 'true';
  const results: WbxmlElement[] = [];
  const reasons: string[] = [];
  for (const der of leaves) {
    const result = await validateCertificate(der, { trust: anchors.bySubject, chain, checkCrl, signal });
    results.push(el('ValidateCert', 'Certificate', [el('ValidateCert', 'Status', result.status)]));
    reasons.push(result.reason ? `${result.status}: ${result.reason}` : String(result.status));
  }
  context.note?.({
    validateCert: reasons.join('; '),
    checkCrl,
    trustStore: trust.source,
    ...(anchors.unreadable ? { trustStoreUnreadable: anchors.unreadable } : {}),
  });
  return top(ValidateCertStatus.Success, results);
}

registerCommand({
  name: 'ValidateCert',
  responseRoot: { ns: 'ValidateCert', tag: 'ValidateCert' },
  serverErrorStatus: ValidateCertStatus.ServerError,
  handle: validateCert,
});
