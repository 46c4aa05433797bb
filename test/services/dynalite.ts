// dynalite: an in-memory DynamoDB emulator, run inside the global-setup process.
// Table state changes are instant (createTableMs: 0) so tests need not wait for ACTIVE.
import dynalite from 'dynalite';
import type { AddressInfo } from 'node:net';
import type { RunningService } from './process.ts';

export interface DynaliteService extends RunningService {
  endpoint: string;
}

export async function startDynalite(): Promise<DynaliteService> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    name: 'dynalite',
    endpoint: `http://127.0.0.1:${port}`,
    async stop() {
      // Keep-alive sockets from SDK clients would hold close() open.
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
    killNow() {
      server.closeAllConnections();
    },
  };
}
