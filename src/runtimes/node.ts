/**
 * Node.js runtime: `npm start`. Reads the settings from the environment, serves the app with @hono/node-server.
 */
import { serve } from '@hono/node-server';
import { createApp } from '../app.ts';
import { imapAuthenticator } from '../backends/imap/authenticate.ts';
import { defaultRegistry } from '../commands/index.ts';
import { ConfigError, loadConfig } from '../config.ts';
import { stdoutLog } from '../log.ts';

function main(): void {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`activesync-edge: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
  const app = createApp({
    config,
    authenticator: imapAuthenticator(config.imap),
    commands: defaultRegistry,
    log: stdoutLog,
  });
  const server = serve({ fetch: app.fetch, port: config.port, hostname: process.env.HOST ?? '0.0.0.0' }, (info) => {
    stdoutLog({ time: new Date().toISOString(), event: 'listening', port: info.port, imap: `${config.imap.host}:${config.imap.port}` });
  });
  const stop = (): void => {
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 5_000).unref();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main();
