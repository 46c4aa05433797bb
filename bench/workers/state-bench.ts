/**
 * A Worker that measures the Durable Object state store from inside workerd, where it runs in production:
 * GET / → the figures as JSON. Used by bench/state.ts only.
 */
import { durableObjectStateStore, StateObject } from '../../src/state/durable-object.ts';
import { measureStore } from '../state-measure.ts';

export { StateObject };

interface Env {
  STATE: DurableObjectNamespace<StateObject>;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const seconds = Number(new URL(request.url).searchParams.get('seconds') ?? '2');
    return Response.json(await measureStore(durableObjectStateStore(env.STATE), seconds));
  },
};
