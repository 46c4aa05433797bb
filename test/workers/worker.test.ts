/**
 * The Worker entry (src/runtimes/cloudflare/worker.ts) inside workerd: the same app as the Node runtime, built from the
 * Worker's variables. What needs an IMAP login is covered by the Node end-to-end tests; these check the entry.
 */
import { createExecutionContext } from 'cloudflare:test';
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import worker from '../../src/runtimes/cloudflare/worker.ts';

const URL_ = 'https://eas.example.test/Microsoft-Server-ActiveSync';
/** Settings as Worker variables; nothing listens on port 1, and these tests never log in. */
const configured = { ...env, IMAP_HOST: '127.0.0.1', IMAP_PORT: '1', IMAP_SECURE: 'false' };

// The Worker's handler is typed for requests from the Cloudflare edge (with request.cf), as Cloudflare's templates do.
const IncomingRequest = Request<unknown, IncomingRequestCfProperties>;

function send(
  url: string,
  init: RequestInit<IncomingRequestCfProperties> = {},
  withEnv: typeof env = configured,
): Promise<Response> {
  return worker.fetch(new IncomingRequest(url, init), withEnv, createExecutionContext());
}

describe('Worker entry', () => {
  it('serves the ActiveSync endpoint', async () => {
    const info = await send(URL_);
    expect(info.status).toBe(200);
    expect(await info.text()).toContain('Exchange ActiveSync');

    // Without credentials OPTIONS is the Basic challenge, as Exchange answers (the versions come with a login).
    const options = await send(URL_, { method: 'OPTIONS' });
    expect(options.status).toBe(401);
    expect(options.headers.get('WWW-Authenticate')).toMatch(/^Basic /);

    const anonymous = await send(`${URL_}?Cmd=FolderSync&User=alice&DeviceId=D1&DeviceType=iPhone`, {
      method: 'POST',
      headers: { 'MS-ASProtocolVersion': '14.1' },
    });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('WWW-Authenticate')).toMatch(/^Basic /);
  });

  it('answers 500 without naming the missing setting when it is not configured', async () => {
    const response = await send(URL_, {}, env);
    expect(response.status).toBe(500);
    expect(await response.text()).toBe('activesync-edge: not configured\n');
  });
});
