/**
 * SMIME_TRUST_STORE on Node and Lambda (smime/trust-store.ts): a file path is read from disk, and without the setting
 * ValidateCert trusts the roots Node itself trusts (`tls.rootCertificates`, Mozilla's list bundled with Node).
 */
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import type { TrustStorePlatform } from '../smime/trust-store.ts';

export const nodeTrustStore: TrustStorePlatform = {
  readFile: (path) => readFileSync(path, 'utf8'),
  defaultRoots: rootCertificates,
  defaultName: 'Node tls.rootCertificates',
};
