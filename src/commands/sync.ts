/**
 * Sync (MS-ASCMD §2.2.1.21): the command's registration. The engine that carries it out is src/sync/.
 */
import { sync } from '../sync/engine.ts';
import { SyncStatus } from '../sync/status.ts';
import { registerCommand } from './registry.ts';

registerCommand({
  name: 'Sync',
  responseRoot: { ns: 'AirSync', tag: 'Sync' },
  serverErrorStatus: SyncStatus.ServerError,
  handle: sync,
});
