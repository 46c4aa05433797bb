/**
 * Node.js runtime: `npm start`. Reads the settings from the environment, serves the app with @hono/node-server.
 */
import { serve } from '@hono/node-server';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { join } from 'node:path';
import { createApp } from '../app.ts';
import { imapAuthenticator } from '../backends/imap/authenticate.ts';
import { pooledImapSessions } from '../backends/imap/sessions.ts';
import { defaultRegistry } from '../commands/index.ts';
import { ConfigError, loadConfig, type StateStoreConfig } from '../config.ts';
import { stdoutLog } from '../log.ts';
import { createStateTable, DynamoDbStateStore } from '../state/dynamodb.ts';
import { openSqliteStateStore, STATE_FILE_NAME } from '../state/sqlite-node.ts';
import { startIdleWatcher } from '../push/watcher.ts';
import type { StateStore } from '../state/types.ts';

/** The state store the settings name, and how to let go of it on shutdown. */
async function openStateStore(settings: StateStoreConfig): Promise<{ store: StateStore; close(): void; where: string }> {
  if (settings.kind === 'sqlite') {
    const path = join(settings.dir, STATE_FILE_NAME);
    return { ...openSqliteStateStore(path), where: path };
  }
  const client = new DynamoDBClient({
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    ...(settings.region ? { region: settings.region } : {}),
  });
  // With an endpoint (dynalite, a local emulator) the table is ours to create; in AWS the stack template owns it.
  if (settings.endpoint) await createStateTable(client, settings.table);
  return { store: new DynamoDbStateStore({ client, table: settings.table }), close: () => client.destroy(), where: `dynamodb:${settings.table}` };
}

async function main(): Promise<void> {
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
  const state = await openStateStore(config.state);
  const imapSessions = pooledImapSessions(config.imap);
  const app = createApp({
    config,
    authenticator: imapAuthenticator(config.imap, imapSessions),
    imapSessions,
    commands: defaultRegistry,
    state: state.store,
    log: stdoutLog,
  });
  const server = serve({ fetch: app.fetch, port: config.port, hostname: process.env.HOST ?? '0.0.0.0' }, (info) => {
    stdoutLog({ time: new Date().toISOString(), event: 'listening', port: info.port, imap: `${config.imap.host}:${config.imap.port}`, state: state.where });
  });
  // Push: the IDLE watcher runs in this process (src/push/watcher.ts); it wakes this process's waiting Pings at once.
  const watcher = startIdleWatcher({ state: state.store, tenant: config.tenant, imap: config.imap, push: config.push, log: stdoutLog });
  const stop = (): void => {
    void watcher.stop();
    server.close(() => {
      state.close();
      process.exit(0);
    });
    setTimeout(() => process.exit(0), 5_000).unref();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

await main();
