/**
 * Out of Office as a Sieve vacation script (RFC 5230), installed over ManageSieve as the user. The script is ours
 * alone (its own name). ManageSieve has one active script (RFC 5804 §2.8), so while Oof is on ours is active and
 * runs the user's own previously active script first with `include :personal` (RFC 6609 §3.2): their filing, spam
 * and forwarding rules keep working, and a `stop` in them ends processing before any reply (no replies to what they
 * discard as spam). Which script was active is written into a comment header of ours; turning Oof off makes it
 * active again (SETACTIVE) and deletes ours. A server without the `include` extension is refused with an error
 * rather than having the user's rules silently switched off.
 */
import type { OofSettings } from '../../state/types.ts';
import type { AutoReplies, AutoReplyContent } from '../types.ts';
import {
  ManageSieveError,
  withManageSieve,
  type ManageSieveCredentials,
  type ManageSieveServer,
  type ManageSieveSession,
} from './managesieve.ts';

export const VACATION_SCRIPT_NAME = 'activesync-oof';

/** The comment line of our script that names the user's script to include and to make active again. */
const RESTORE_HEADER = '# activesync-edge restores: ';

/** The server lacks what keeping the user's own active script working needs. */
export class SieveIncludeUnsupportedError extends Error {}

/** A Sieve quoted string (RFC 5228 §2.4.2): only `"` and `\` need a backslash; line breaks may stay as they are. */
export function sieveString(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

type Audience = OofSettings['messages'][number]['audience'];

/** The enabled message text for the first of `audiences` that has one. */
function replyFor(
  oof: OofSettings,
  audiences: readonly Audience[],
  toText: AutoReplyContent['toText'],
): string | undefined {
  for (const audience of audiences) {
    const m = oof.messages.find((x) => x.audience === audience && x.enabled && x.replyMessage.trim() !== '');
    if (m) return toText(m);
  }
  return undefined;
}

/** Sieve `date`-extension timestamp form of an ActiveSync dateTime, compared in UTC (`"iso8601"` of currentdate). */
function isoUtc(value: string): string {
  return new Date(Date.parse(value)).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * The vacation script for `oof`, or undefined when nothing should be sent (off, or no enabled message).
 * Senders whose From address is in `internalDomain` (RFC 5228 §5.1 `address :domain`) get the AppliesToInternal
 * message, others the AppliesToExternalUnknown one (or ExternalKnown: contacts are not looked up here); an audience
 * without an enabled message gets no reply (MS-ASCMD §2.2.3.120). Without a domain every sender is external.
 * `include` names the user's own script, run first. OofState 2 guards the replies with `currentdate` tests.
 */
export function buildVacationScript(oof: OofSettings, content: AutoReplyContent, include?: string): string | undefined {
  if (oof.state === 0) return undefined;
  const internal = content.internalDomain ? replyFor(oof, ['internal'], content.toText) : undefined;
  const external = replyFor(oof, ['externalUnknown', 'externalKnown'], content.toText);
  if (internal === undefined && external === undefined) return undefined;
  const vacation = (text: string): string =>
    `vacation :days 1 :subject ${sieveString(content.subject)} ${sieveString(text)};`;

  const replies: string[] = [];
  if (internal !== undefined && content.internalDomain) {
    replies.push(`if address :domain :is "from" ${sieveString(content.internalDomain)} {`, `  ${vacation(internal)}`);
    replies.push(external !== undefined ? ['} else {', `  ${vacation(external)}`, '}'].join('\r\n') : '}');
  } else if (external !== undefined) {
    if (content.internalDomain)
      replies.push(
        `if not address :domain :is "from" ${sieveString(content.internalDomain)} {`,
        `  ${vacation(external)}`,
        '}',
      );
    else replies.push(vacation(external));
  }

  const windowed = oof.state === 2 && oof.startTime && oof.endTime;
  const extensions = [
    'vacation',
    ...(include !== undefined ? ['include'] : []),
    ...(windowed ? ['date', 'relational'] : []),
  ];
  const lines = [
    ...(include !== undefined ? [`${RESTORE_HEADER}${JSON.stringify(include)}`] : []),
    `require [${extensions.map(sieveString).join(', ')}];`,
    ...(include !== undefined ? [`include :personal ${sieveString(include)};`] : []),
  ];
  if (windowed) {
    lines.push(
      'if allof (',
      `  currentdate :zone "+0000" :value "ge" "iso8601" ${sieveString(isoUtc(oof.startTime!))},`,
      `  currentdate :zone "+0000" :value "lt" "iso8601" ${sieveString(isoUtc(oof.endTime!))}`,
      ') {',
      ...replies
        .join('\r\n')
        .split('\r\n')
        .map((l) => `  ${l}`),
      '}',
    );
  } else lines.push(...replies);
  return [...lines, ''].join('\r\n');
}

/** The user's script named in our script's header, if ours carries one. */
export function restoredScriptName(script: string): string | undefined {
  const line = script.split(/\r?\n/).find((l) => l.startsWith(RESTORE_HEADER));
  if (!line) return undefined;
  try {
    const name: unknown = JSON.parse(line.slice(RESTORE_HEADER.length));
    return typeof name === 'string' && name !== '' ? name : undefined;
  } catch {
    return undefined;
  }
}

/** AutoReplies as a vacation script on the user's ManageSieve account. */
export function sieveAutoReplies(server: ManageSieveServer, credentials: ManageSieveCredentials): AutoReplies {
  return {
    apply: (oof, content) => withManageSieve(server, credentials, (session) => applyVacation(session, oof, content)),
  };
}

/** The user's own script that ours stands in for: the active one, or the one ours already includes. */
async function userScript(session: ManageSieveSession): Promise<{ oursActive: boolean; user: string | undefined }> {
  const scripts = await session.listScripts();
  const active = scripts.find((s) => s.active);
  if (active?.name !== VACATION_SCRIPT_NAME) return { oursActive: false, user: active?.name };
  const name = restoredScriptName(await session.getScript(VACATION_SCRIPT_NAME));
  // A script the user has deleted since cannot be included or restored.
  return { oursActive: true, user: name !== undefined && scripts.some((s) => s.name === name) ? name : undefined };
}

async function applyVacation(session: ManageSieveSession, oof: OofSettings, content: AutoReplyContent): Promise<void> {
  const { oursActive, user } = await userScript(session);
  const probe = buildVacationScript(oof, content);
  if (probe !== undefined) {
    if (user !== undefined && !session.sieveExtensions().includes('include'))
      throw new SieveIncludeUnsupportedError(
        `Sieve server lacks the "include" extension (RFC 6609): activating the Oof script would switch off the user's active script "${user}"`,
      );
    await session.putScript(VACATION_SCRIPT_NAME, buildVacationScript(oof, content, user)!);
    await session.setActive(VACATION_SCRIPT_NAME);
    return;
  }
  // Off: the user's own script becomes active again (or none, when there was none), then ours goes.
  if (oursActive) await session.setActive(user ?? '');
  try {
    await session.deleteScript(VACATION_SCRIPT_NAME);
  } catch (err) {
    // DELETESCRIPT refuses an active script (code ACTIVE): ours became active again in between.
    if (!(err instanceof ManageSieveError && err.code?.toUpperCase() === 'ACTIVE')) throw err;
    await session.setActive(user ?? '');
    await session.deleteScript(VACATION_SCRIPT_NAME);
  }
}
