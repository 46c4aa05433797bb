/** How commands open a user's backends: through the factory the request carries (CommandContext.backends). */
import type { AuthenticatedUser } from './auth.ts';
import type { BackendFactory, UserBackends } from './types.ts';

/** What opening needs: the request's factory and its user (a CommandContext is one). */
export interface BackendUser {
  backends: BackendFactory;
  user: AuthenticatedUser;
}

export function openBackends(context: BackendUser): Promise<UserBackends> {
  return context.backends.open(context.user);
}

/** Runs `work` with the user's backends open, and closes them whatever happens. */
export async function withBackends<T>(context: BackendUser, work: (backends: UserBackends) => Promise<T>): Promise<T> {
  const backends = await openBackends(context);
  try {
    return await work(backends);
  } finally {
    await backends.close();
  }
}
