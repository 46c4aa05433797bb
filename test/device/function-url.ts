/**
 * A Lambda Function URL as the test device sees it: each fetch becomes the event a Function URL hands to the function
 * (payload format 2.0, APIGatewayProxyEventV2), and the function's result becomes the HTTP response the device gets.
 *
 * Both cross a JSON boundary, as they do in Lambda: a body is base64 text with `isBase64Encoded: true` (what a
 * Function URL does for any non-text Content-Type, WBXML included), and the result's body is decoded only when the
 * function says it is base64. A runtime that lost a byte of WBXML on the way fails here, as it would on a phone.
 */
import { randomUUID } from 'node:crypto';
import type { LambdaEvent } from 'hono/aws-lambda';
import type { FunctionUrlResult } from '../../src/runtimes/lambda.ts';

/** The Function URL event type (the adapter's LambdaEvent union has it by this shape). */
export type FunctionUrlEvent = Extract<LambdaEvent, { rawPath: string; requestContext: { http: unknown } }>;

export type FunctionUrlHandler = (event: FunctionUrlEvent) => Promise<FunctionUrlResult>;

/** The event a Function URL builds for this request. */
export async function functionUrlEvent(request: Request): Promise<FunctionUrlEvent> {
  const url = new URL(request.url);
  const bytes = new Uint8Array(await request.arrayBuffer());
  const headers: Record<string, string> = {};
  request.headers.forEach((value, name) => {
    headers[name] = value;
  });
  headers.host = url.host;
  const now = new Date();
  const query: Record<string, string> = {};
  url.searchParams.forEach((value, name) => {
    query[name] = query[name] === undefined ? value : `${query[name]},${value}`;
  });
  const event = {
    version: '2.0',
    routeKey: '$default',
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    ...(url.search ? { queryStringParameters: query } : {}),
    requestContext: {
      accountId: 'anonymous',
      apiId: url.hostname.split('.')[0]!,
      domainName: url.hostname,
      domainPrefix: url.hostname.split('.')[0]!,
      http: {
        method: request.method,
        path: url.pathname,
        protocol: 'HTTP/1.1',
        sourceIp: '127.0.0.1',
        userAgent: headers['user-agent'] ?? '',
      },
      requestId: randomUUID(),
      routeKey: '$default',
      stage: '$default',
      time: now.toUTCString(),
      timeEpoch: now.getTime(),
    },
    // A Function URL leaves `body` out of a request without one.
    ...(bytes.length
      ? { body: Buffer.from(bytes).toString('base64'), isBase64Encoded: true }
      : { isBase64Encoded: false }),
  };
  // Through JSON, as Lambda delivers it.
  return JSON.parse(JSON.stringify(event)) as FunctionUrlEvent;
}

/** The HTTP response a Function URL makes of the function's result. */
export function functionUrlResponse(result: FunctionUrlResult): Response {
  const wire = JSON.parse(JSON.stringify(result)) as FunctionUrlResult;
  const body = wire.body
    ? wire.isBase64Encoded
      ? Buffer.from(wire.body, 'base64')
      : Buffer.from(wire.body, 'utf8')
    : undefined;
  const headers = new Headers();
  for (const [name, value] of Object.entries(wire.headers ?? {})) headers.set(name, String(value));
  const noBody = wire.statusCode === 204 || wire.statusCode === 304;
  return new Response(noBody ? null : (body as BodyInit | undefined), { status: wire.statusCode, headers });
}

/** A fetch that goes through the function as a Function URL would call it. */
export function functionUrlFetch(
  handler: FunctionUrlHandler,
  base = 'https://abcdefghij.lambda-url.eu-west-1.on.aws',
): (url: string, init?: RequestInit) => Promise<Response> {
  return async (url, init) => {
    // The device's URLs name its own host; a Function URL is reached at its own.
    const target = new URL(url, base);
    return functionUrlResponse(await handler(await functionUrlEvent(new Request(target, init))));
  };
}
