/**
 * A local emulation of the one AWS Secrets Manager call the runtimes make, GetSecretValue (AWS JSON 1.1 protocol:
 * `POST /` with `X-Amz-Target: secretsmanager.GetSecretValue`), since AWS itself cannot run here and no npm package
 * emulates it. It checks what AWS checks first: the request's Signature Version 4 under the test's credentials and
 * region, then the caller's permission (the secrets a role may read, as the stack's policy grants them), and answers
 * with AWS's field and error names (ResourceNotFoundException, AccessDeniedException, InvalidSignatureException).
 */
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SecretsManagerEmulation {
  /** `AWS_ENDPOINT_URL_SECRETS_MANAGER` for the runtime under test. */
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Creates a secret (or stores a new version of it); returns its complete ARN. */
  put(name: string, value: string | object): string;
  /** The secrets the caller may read (complete ARNs, or `…-??????` patterns as IAM policies name them). */
  allow(resources: string[]): void;
  /** Every GetSecretValue the emulation answered or refused, in order. */
  calls: { secretId: string; outcome: string }[];
  close(): Promise<void>;
}

interface Stored {
  arn: string;
  name: string;
  versionId: string;
  value: string;
  created: number;
}

const ACCOUNT = '123456789012';

function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** Signature Version 4 of a request as AWS computes it (canonical request, string to sign, derived key). */
function expectedSignature(req: IncomingMessage, body: Buffer, secretKey: string, signedHeaders: string[]): string {
  const url = new URL(req.url ?? '/', 'http://x');
  const canonicalHeaders = signedHeaders
    .map(
      (h) =>
        `${h}:${String(req.headers[h] ?? '')
          .trim()
          .replace(/\s+/g, ' ')}\n`,
    )
    .join('');
  const canonicalRequest = [
    req.method,
    url.pathname,
    url.searchParams.toString(),
    canonicalHeaders,
    signedHeaders.join(';'),
    sha256Hex(body),
  ].join('\n');
  const amzDate = String(req.headers['x-amz-date']);
  const [, date, region, service] = /Credential=[^/]+\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request/.exec(
    String(req.headers.authorization),
  )!;
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${secretKey}`, date!), region!), service!), 'aws4_request');
  return createHmac('sha256', key).update(stringToSign).digest('hex');
}

function matches(pattern: string, arn: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.*+^${}()|[\]\\]/g, '\\$&').replace(/\?/g, '.')}$`);
  return re.test(arn);
}

export async function startSecretsManager(region = 'eu-west-1'): Promise<SecretsManagerEmulation> {
  const credentials = {
    accessKeyId: `AKIA${randomBytes(8).toString('hex').toUpperCase()}`,
    secretAccessKey: randomBytes(20).toString('base64'),
  };
  const secrets = new Map<string, Stored>();
  let allowed: string[] = [];
  const calls: SecretsManagerEmulation['calls'] = [];

  const answer = (res: ServerResponse, status: number, body: object): void => {
    res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID() });
    res.end(JSON.stringify(body));
  };
  const fail = (res: ServerResponse, status: number, type: string, message: string): void =>
    answer(res, status, { __type: type, message });

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const auth = String(req.headers.authorization ?? '');
      const parsed =
        /^AWS4-HMAC-SHA256 Credential=([^/]+)\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(
          auth,
        );
      if (!parsed) return fail(res, 400, 'MissingAuthenticationTokenException', 'Missing Authentication Token');
      const [, keyId, signedRegion, service, signedHeaders, signature] = parsed;
      if (keyId !== credentials.accessKeyId)
        return fail(res, 400, 'UnrecognizedClientException', 'The security token included in the request is invalid.');
      if (signedRegion !== region || service !== 'secretsmanager')
        return fail(res, 400, 'InvalidSignatureException', `Credential should be scoped to ${region}/secretsmanager.`);
      if (expectedSignature(req, body, credentials.secretAccessKey, signedHeaders!.split(';')) !== signature)
        return fail(
          res,
          400,
          'InvalidSignatureException',
          'The request signature we calculated does not match the signature you provided.',
        );
      if (req.headers['x-amz-target'] !== 'secretsmanager.GetSecretValue')
        return fail(res, 400, 'UnknownOperationException', `${String(req.headers['x-amz-target'])} is not emulated`);
      let secretId: string;
      try {
        secretId = String((JSON.parse(body.toString('utf8')) as { SecretId?: unknown }).SecretId ?? '');
      } catch {
        return fail(res, 400, 'SerializationException', 'Start of structure or map found where not expected.');
      }
      // A name, a complete ARN, or a partial ARN (without the six-character suffix), as AWS resolves them.
      const found = [...secrets.values()].find(
        (s) => secretId === s.name || secretId === s.arn || secretId === s.arn.slice(0, -7),
      );
      const resource = found?.arn ?? secretId;
      if (!allowed.some((p) => matches(p, resource))) {
        calls.push({ secretId, outcome: 'AccessDeniedException' });
        return fail(
          res,
          400,
          'AccessDeniedException',
          `User: arn:aws:sts::${ACCOUNT}:assumed-role/test/fn is not authorized to perform: secretsmanager:GetSecretValue on resource: ${secretId}`,
        );
      }
      if (!found) {
        calls.push({ secretId, outcome: 'ResourceNotFoundException' });
        return fail(res, 400, 'ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
      }
      calls.push({ secretId, outcome: 'ok' });
      answer(res, 200, {
        ARN: found.arn,
        Name: found.name,
        VersionId: found.versionId,
        SecretString: found.value,
        VersionStages: ['AWSCURRENT'],
        CreatedDate: found.created,
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    region,
    credentials,
    calls,
    put(name, value) {
      const existing = secrets.get(name);
      const arn =
        existing?.arn ?? `arn:aws:secretsmanager:${region}:${ACCOUNT}:secret:${name}-${randomBytes(3).toString('hex')}`;
      secrets.set(name, {
        arn,
        name,
        versionId: randomUUID(),
        value: typeof value === 'string' ? value : JSON.stringify(value),
        created: Date.now() / 1000,
      });
      return arn;
    },
    allow(resources) {
      allowed = resources;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
