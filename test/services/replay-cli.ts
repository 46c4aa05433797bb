/**
 * `npx activesync-edge replay` as its own process, the way an operator runs it: the password only in
 * ASE_REPLAY_PASSWORD, never an argument.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { TestUser } from './types.ts';

const ROOT = join(import.meta.dirname, '../..');

/** `npx activesync-edge replay FILE --url … --user …` as its own process; the password only in the environment. */
export function replayCli(
  file: string,
  base: string,
  user: TestUser,
  extra: string[] = [],
): { code: number | null; stdout: string; stderr: string } {
  const run = spawnSync(
    process.execPath,
    [join(ROOT, 'bin/activesync-edge.js'), 'replay', file, '--url', base, '--user', user.email, ...extra],
    { cwd: ROOT, env: { ...process.env, ASE_REPLAY_PASSWORD: user.password }, encoding: 'utf8', timeout: 120_000 },
  );
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}
