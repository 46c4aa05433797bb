// `env` from cloudflare:test (and cloudflare:workers) carries the bindings of the Worker in wrangler.toml.
import type { Env as WorkerEnv } from '../../src/runtimes/cloudflare/worker.ts';

declare global {
  namespace Cloudflare {
    interface Env extends WorkerEnv {}
  }
}
