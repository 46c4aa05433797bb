/**
 * Certificate revocation lists read from a certificate's CRL distribution points (RFC 5280 §4.2.1.13) over http(s),
 * for ValidateCert with CheckCRL. Only the distribution points of certificates whose chain already verified up to a
 * trusted root are read (validate.ts), so the URL is a CA's choice, not the device's. Every read has a timeout and a
 * size cap and shares the request's budget; nothing identifying goes with it: no credentials, no cookies, a URL with
 * user information is not read, and redirects are followed by hand (at most 3, http(s) only, under the same rules).
 * A list is kept in memory until its nextUpdate (at most an hour), a few lists per process.
 */
import { readAtMost } from '../util/bounded-read.ts';
import { ownBytes, x509 } from './x509.ts';

export interface CrlFetchOptions {
  /** Aborted when the request's budget is spent or the client went away. */
  signal: AbortSignal;
  /** One read's limit, ms. */
  timeoutMs?: number;
  /** Largest list accepted, bytes. */
  maxBytes?: number;
  /** The fetch to use (tests: a counting one). */
  fetch?: typeof fetch;
}

export const CRL_TIMEOUT_MS = 5_000;
export const CRL_MAX_BYTES = 4 * 1024 * 1024;
const MAX_REDIRECTS = 3;
const CACHE_ENTRIES = 8;
const CACHE_MAX_MS = 3_600_000;

/** Why a list could not be had; the certificate's revocation status is then unknown (ValidateCert Status 14). */
export class CrlUnavailableError extends Error {
  override readonly name = 'CrlUnavailableError';
}

const cache = new Map<string, { crl: x509.X509Crl; until: number }>();

/** The http(s) URLs of a certificate's CRL distribution points, in order. */
export function crlUrls(cert: x509.X509Certificate): string[] {
  const ext = cert.getExtension(x509.CRLDistributionPointsExtension);
  if (!ext) return [];
  return ext.distributionPoints.flatMap((point) =>
    (point.distributionPoint?.fullName ?? []).flatMap((name) => {
      const uri = name.uniformResourceIdentifier;
      return uri && /^https?:\/\//i.test(uri) ? [uri] : [];
    }),
  );
}

function readableUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CrlUnavailableError(`not a URL: ${text}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CrlUnavailableError(`not http(s): ${text}`);
  if (url.username || url.password) throw new CrlUnavailableError('a URL with credentials is not read');
  return url;
}

async function readCapped(res: Response, maxBytes: number): Promise<Uint8Array> {
  const declared = Number(res.headers.get('content-length') ?? Number.NaN);
  if (declared > maxBytes) {
    await res.body?.cancel();
    throw new CrlUnavailableError(`CRL larger than ${maxBytes} bytes`);
  }
  const bytes = await readAtMost(res.body, maxBytes);
  if (!bytes) throw new CrlUnavailableError(`CRL larger than ${maxBytes} bytes`);
  return bytes;
}

/** The CRL at `url` (DER or PEM), from the cache while it is current. */
export async function fetchCrl(url: string, options: CrlFetchOptions): Promise<x509.X509Crl> {
  const cached = cache.get(url);
  if (cached && cached.until > Date.now()) return cached.crl;
  const doFetch = options.fetch ?? fetch;
  const signal = AbortSignal.any([options.signal, AbortSignal.timeout(options.timeoutMs ?? CRL_TIMEOUT_MS)]);
  let target = readableUrl(url);
  let res: Response;
  for (let hop = 0; ; hop++) {
    try {
      res = await doFetch(target.href, {
        method: 'GET',
        headers: { accept: 'application/pkix-crl, application/x-pkcs7-crl;q=0.5, */*;q=0.1' },
        // Neither runtime's fetch keeps cookies, and no Authorization is set here: the request carries nothing of
        // the user's or ours.
        redirect: 'manual',
        signal,
      });
    } catch (err) {
      throw new CrlUnavailableError(`${target.origin}: ${(err as Error).name}: ${(err as Error).message}`);
    }
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      await res.body?.cancel();
      if (hop >= MAX_REDIRECTS) throw new CrlUnavailableError(`more than ${MAX_REDIRECTS} redirects`);
      target = readableUrl(new URL(location, target).href);
      continue;
    }
    break;
  }
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new CrlUnavailableError(`${target.origin}: HTTP ${res.status}`);
  }
  let bytes: Uint8Array;
  try {
    bytes = await readCapped(res, options.maxBytes ?? CRL_MAX_BYTES);
  } catch (err) {
    if (err instanceof CrlUnavailableError) throw err;
    throw new CrlUnavailableError(`${target.origin}: ${(err as Error).message}`);
  }
  let crl: x509.X509Crl;
  try {
    const text = new TextDecoder().decode(bytes.subarray(0, 64));
    crl = text.includes('-----BEGIN')
      ? new x509.X509Crl(new TextDecoder().decode(bytes))
      : new x509.X509Crl(ownBytes(bytes));
  } catch (err) {
    throw new CrlUnavailableError(`${target.origin}: not a CRL (${(err as Error).message})`);
  }
  const until = Math.min(crl.nextUpdate?.getTime() ?? 0, Date.now() + CACHE_MAX_MS);
  if (until > Date.now()) {
    cache.delete(url);
    cache.set(url, { crl, until });
    while (cache.size > CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
  }
  return crl;
}

/** Forgets every kept list (tests that serve a changed list under the same URL). */
export function clearCrlCache(): void {
  cache.clear();
}
