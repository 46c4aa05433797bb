/**
 * Out of Office as a Sieve vacation script (RFC 5230), installed over ManageSieve as the user. The script is ours
 * alone (its own name); turning Oof off deletes it, deactivating it first when it is the active one. A user's other
 * active script is replaced while Oof is on (ManageSieve has one active script); that is the trade-off of not editing
 * scripts we did not write.
 */
import type { OofSettings } from '../../state/types.ts';
import type { AutoReplies } from '../types.ts';
import {
  ManageSieveError,
  withManageSieve,
  type ManageSieveCredentials,
  type ManageSieveServer,
} from './managesieve.ts';

export const VACATION_SCRIPT_NAME = 'activesync-oof';

/** A Sieve quoted string (RFC 5228 §2.4.2): only `"` and `\` need a backslash; line breaks may stay as they are. */
export function sieveString(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** The reply text: the internal message when enabled, else an enabled external one (as plain text). */
function replyText(oof: OofSettings, toText: (message: OofSettings['messages'][number]) => string): string | undefined {
  const enabled = oof.messages.filter((m) => m.enabled && m.replyMessage.trim() !== '');
  const chosen =
    enabled.find((m) => m.audience === 'internal') ?? enabled.find((m) => m.audience === 'externalKnown') ?? enabled[0];
  return chosen ? toText(chosen) : undefined;
}

/** Sieve `date`-extension timestamp form of an ActiveSync dateTime, compared in UTC (`"iso8601"` of currentdate). */
function isoUtc(value: string): string {
  return new Date(Date.parse(value)).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * The vacation script for `oof`, or undefined when nothing should be sent (off, or no enabled message).
 * OofState 2 guards the vacation action with `currentdate :zone "+0000"` tests on the window.
 */
export function buildVacationScript(
  oof: OofSettings,
  subject: string,
  toText: (message: OofSettings['messages'][number]) => string,
): string | undefined {
  if (oof.state === 0) return undefined;
  const text = replyText(oof, toText);
  if (text === undefined) return undefined;
  const vacation = `vacation :days 1 :subject ${sieveString(subject)} ${sieveString(text)};`;
  if (oof.state === 2 && oof.startTime && oof.endTime) {
    return [
      'require ["vacation", "date", "relational"];',
      'if allof (',
      `  currentdate :zone "+0000" :value "ge" "iso8601" ${sieveString(isoUtc(oof.startTime))},`,
      `  currentdate :zone "+0000" :value "lt" "iso8601" ${sieveString(isoUtc(oof.endTime))}`,
      ') {',
      `  ${vacation}`,
      '}',
      '',
    ].join('\r\n');
  }
  return ['require ["vacation"];', vacation, ''].join('\r\n');
}

/** AutoReplies as a vacation script on the user's ManageSieve account. */
export function sieveAutoReplies(server: ManageSieveServer, credentials: ManageSieveCredentials): AutoReplies {
  return {
    apply: (oof, subject, toText) =>
      applyVacationScript(server, credentials, buildVacationScript(oof, subject, toText)),
  };
}

/** Installs and activates `script`, or (undefined) deactivates and deletes ours. */
export async function applyVacationScript(
  server: ManageSieveServer,
  credentials: ManageSieveCredentials,
  script: string | undefined,
): Promise<void> {
  await withManageSieve(server, credentials, async (session) => {
    if (script !== undefined) {
      await session.putScript(VACATION_SCRIPT_NAME, script);
      await session.setActive(VACATION_SCRIPT_NAME);
    } else {
      // Deactivate only when ours is the active one (DELETESCRIPT refuses an active script with code ACTIVE), so a
      // user's own script that is active is left alone.
      try {
        await session.deleteScript(VACATION_SCRIPT_NAME);
      } catch (err) {
        if (!(err instanceof ManageSieveError && err.code?.toUpperCase() === 'ACTIVE')) throw err;
        await session.setActive('');
        await session.deleteScript(VACATION_SCRIPT_NAME);
      }
    }
  });
}
