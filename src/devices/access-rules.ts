/**
 * Device access rules: Exchange's Allow/Block/Quarantine list. A tenant keeps an ordered list of rules in the state
 * store; each matches on DeviceType, model, user agent (regular expressions, whole value, case-insensitive) and the
 * user (the login, whole, case-insensitive). The first rule that matches decides, else the tenant's default; an
 * admin's decision for one device (allow, which also releases it from quarantine, or block) beats both.
 *
 * What a device is told (MS-ASCMD §2.2.2, common status 129 DeviceIsBlockedForThisUser; HTTP 403 below 14.0):
 * - blocked: every command is refused;
 * - quarantined: Provision and Settings still work, so the device can provision and describe itself (its model and
 *   OS are what admins decide on), everything else is refused until an admin allows the device.
 * A device that has a wipe due gets it whatever the rules say (protocol/policy.ts runs after this check).
 *
 * Quarantine, compared with Exchange (checked for issue 8; sources: MS-ASCMD §2.2.2 status 129, the Exchange 2010
 * ABQ documentation, client reports such as TbSync's): Exchange lets a quarantined device connect and answers its
 * FolderSync and Sync with success, but the only content it gets is a notification mail in the Inbox ("your device
 * is temporarily blocked … content will be downloaded as soon as access is granted"), also delivered to the user's
 * mailbox; a blocked device gets 129 (HTTP 403 below 14.0), as here. Status 141 (LegacyDeviceOnStrictPolicy) is a
 * provisioning status (MS-ASPROV §3.1.5.2: a policy is required and the device cannot provision), not an access
 * rule's, so it is not used for either. We answer a quarantined device with 129 rather than an empty success on
 * purpose: we have no notification item to show in its Inbox, and an empty success would show the user a mailbox
 * that looks empty with no reason given, while 129 makes clients say the administrator holds the device. Clients
 * retry, so a released device syncs on its next attempt, as with Exchange. Provision and Settings stay open as
 * Exchange keeps them: the device gets its policy and says what it is (the model admins release it by). Like Exchange,
 * the user finds a notice mail in their Inbox when a device becomes blocked or quarantined (access-notice.ts).
 */
import type { CommandName } from '../protocol/commands.ts';
import { HttpError } from '../protocol/errors.ts';
import { wipeDue } from '../protocol/policy.ts';
import { CommonStatus } from '../protocol/status.ts';
import { atLeast, type ProtocolVersion } from '../protocol/versions.ts';
import type { CommandResult } from '../protocol/command.ts';
import type {
  AccessRule,
  AccessRules,
  DeviceAccessState,
  DeviceRecord,
  DeviceScope,
  StateStore,
} from '../state/types.ts';
import type { Namespace } from '../wbxml/codepages.ts';

export const NO_RULES: AccessRules = { defaultAccess: 'allow', rules: [], updatedAt: 0 };

/** Commands a quarantined device may still send. */
const QUARANTINE_ALLOWED: ReadonlySet<CommandName> = new Set<CommandName>(['Provision', 'Settings']);

/** Rules read from the store are reused this long by one process: a change reaches other instances within it. */
const RULES_CACHE_MS = 10_000;

const ACTION_STATE: Record<AccessRule['action'], DeviceAccessState> = {
  allow: 'allowed',
  block: 'blocked',
  quarantine: 'quarantined',
};
const ACTIONS = ['allow', 'block', 'quarantine'] as const;
const PATTERN_FIELDS = ['deviceType', 'model', 'userAgent'] as const;
const MAX_RULES = 500;
const MAX_PATTERN_LENGTH = 500;
/** What of a value a pattern sees: user agents come from the device, and matching time must stay bounded. */
const MAX_MATCHED_LENGTH = 256;
const UNBOUNDED_QUANTIFIER = /^(?:[+*]|\{\d+,\d*\})/;

/**
 * Whether an unbounded repeat applies to a group that itself repeats something, e.g. `(a+)+`, `((\w*))*` or
 * `(x*y){2,}`: the shape that makes a backtracking engine take exponential time on a crafted user agent. Such
 * patterns are refused when saved (a heuristic: it does not see overlapping alternatives like `(a|aa)+`).
 */
export function repeatsARepeat(pattern: string): boolean {
  const open: boolean[] = []; // per open group: whether it contains a repeat so far
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') {
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') inClass = true;
    else if (c === '(') open.push(false);
    else if (c === ')') {
      const repeats = open.pop() ?? false;
      const quantified = UNBOUNDED_QUANTIFIER.test(pattern.slice(i + 1));
      if (repeats && quantified) return true;
      if ((repeats || quantified) && open.length) open[open.length - 1] = true;
    } else if (UNBOUNDED_QUANTIFIER.test(pattern.slice(i)) && open.length) open[open.length - 1] = true;
  }
  return false;
}

export interface AccessDecision {
  state: DeviceAccessState;
  /** `admin`, `rule <id>` or `default`. */
  reason: string;
}

/** Rules an admin sent that cannot be stored (bad regular expression, unknown action, …). */
export class AccessRuleError extends Error {
  override readonly name = 'AccessRuleError';
}

/** The device's access state under `rules`, for the user `login`. */
export function decideAccess(rules: AccessRules, device: DeviceRecord, login: string): AccessDecision {
  if (device.accessOverride === 'allow') return { state: 'allowed', reason: 'admin' };
  if (device.accessOverride === 'block') return { state: 'blocked', reason: 'admin' };
  for (const rule of rules.rules) {
    if (ruleMatches(rule, device, login)) return { state: ACTION_STATE[rule.action], reason: `rule ${rule.id}` };
  }
  return { state: ACTION_STATE[rules.defaultAccess], reason: 'default' };
}

export function ruleMatches(rule: AccessRule, device: DeviceRecord, login: string): boolean {
  if (rule.user !== undefined && rule.user.toLowerCase() !== login.toLowerCase()) return false;
  for (const field of PATTERN_FIELDS) {
    const pattern = rule[field];
    if (pattern === undefined) continue;
    let re: RegExp;
    try {
      re = wholeMatch(pattern);
    } catch {
      return false; // stored by hand and broken: matches nothing
    }
    if (!re.test((device[field] ?? '').slice(0, MAX_MATCHED_LENGTH))) return false;
  }
  return true;
}

const compiled = new Map<string, RegExp>();
function wholeMatch(pattern: string): RegExp {
  let re = compiled.get(pattern);
  if (!re) {
    re = new RegExp(`^(?:${pattern})$`, 'i');
    if (compiled.size > 1000) compiled.clear();
    compiled.set(pattern, re);
  }
  return re;
}

/** Checks rules as an admin sent them (JSON) and returns them in stored form. */
export function parseAccessRules(input: unknown, now = Date.now()): AccessRules {
  if (typeof input !== 'object' || input === null) throw new AccessRuleError('rules must be an object');
  const { defaultAccess = 'allow', rules = [] } = input as { defaultAccess?: unknown; rules?: unknown };
  if (!isAction(defaultAccess)) throw new AccessRuleError(`defaultAccess must be one of ${ACTIONS.join(', ')}`);
  if (!Array.isArray(rules)) throw new AccessRuleError('rules must be a list');
  if (rules.length > MAX_RULES) throw new AccessRuleError(`at most ${MAX_RULES} rules`);
  const parsed = rules.map((r: unknown, i) => parseAccessRule(r, `rule ${i + 1}`));
  const ids = new Set<string>();
  for (const rule of parsed) {
    if (ids.has(rule.id)) throw new AccessRuleError(`two rules have the id ${rule.id}`);
    ids.add(rule.id);
  }
  return { defaultAccess, rules: parsed, updatedAt: now };
}

/** One rule as an admin sent it; without an id it gets a new one. */
export function parseAccessRule(input: unknown, where = 'rule'): AccessRule {
  if (typeof input !== 'object' || input === null) throw new AccessRuleError(`${where} must be an object`);
  const r = input as Record<string, unknown>;
  for (const key of Object.keys(r)) {
    if (!['id', 'action', 'user', ...PATTERN_FIELDS].includes(key))
      throw new AccessRuleError(`${where}: unknown field ${key}`);
  }
  if (!isAction(r.action)) throw new AccessRuleError(`${where}: action must be one of ${ACTIONS.join(', ')}`);
  const rule: AccessRule = {
    id: r.id === undefined ? crypto.randomUUID().slice(0, 8) : text(r.id, `${where}: id`),
    action: r.action,
  };
  if (r.user !== undefined) rule.user = text(r.user, `${where}: user`);
  for (const field of PATTERN_FIELDS) {
    if (r[field] === undefined) continue;
    const pattern = text(r[field], `${where}: ${field}`);
    if (pattern.length > MAX_PATTERN_LENGTH)
      throw new AccessRuleError(`${where}: ${field} is longer than ${MAX_PATTERN_LENGTH}`);
    if (repeatsARepeat(pattern))
      throw new AccessRuleError(
        `${where}: ${field} repeats a repeated group, which can take exponential time: ${pattern}`,
      );
    try {
      wholeMatch(pattern);
    } catch {
      throw new AccessRuleError(`${where}: ${field} is not a regular expression: ${pattern}`);
    }
    rule[field] = pattern;
  }
  return rule;
}

function isAction(value: unknown): value is AccessRule['action'] {
  return typeof value === 'string' && (ACTIONS as readonly string[]).includes(value);
}

function text(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.trim() === '') throw new AccessRuleError(`${what} must be a non-empty string`);
  return value.trim();
}

// The rules of a tenant, with a short per-process cache (the check runs on every request).

// A read under way is shared: the pipeline starts it beside the device's read, the check takes it (app/activesync.ts).
const cache = new WeakMap<StateStore, Map<string, { rules: Promise<AccessRules>; readAt: number }>>();

export async function loadAccessRules(state: StateStore, tenant: string, now = Date.now()): Promise<AccessRules> {
  const perStore = cache.get(state) ?? new Map<string, { rules: Promise<AccessRules>; readAt: number }>();
  cache.set(state, perStore);
  const hit = perStore.get(tenant);
  if (hit && now - hit.readAt < RULES_CACHE_MS) return hit.rules;
  const rules = state.getAccessRules(tenant).then((r) => r ?? NO_RULES);
  const entry = { rules, readAt: now };
  perStore.set(tenant, entry);
  // A failed read is not kept: the next request reads again.
  rules.catch(() => {
    if (perStore.get(tenant) === entry) perStore.delete(tenant);
  });
  return rules;
}

export async function saveAccessRules(state: StateStore, tenant: string, rules: AccessRules): Promise<void> {
  await state.putAccessRules(tenant, rules);
  const perStore = cache.get(state) ?? new Map<string, { rules: Promise<AccessRules>; readAt: number }>();
  cache.set(state, perStore);
  perStore.set(tenant, { rules: Promise.resolve(rules), readAt: Date.now() });
}

export interface AccessCheck {
  state: StateStore;
  /** The store whose cached rules apply (the process's, not a request's view of it); `state` when absent. */
  rulesFrom?: StateStore;
  device: DeviceScope;
  known: DeviceRecord;
  login: string;
  command: CommandName;
}

/**
 * The request-path check: the device's access state (recorded on the device when it changed, for admins) and
 * whether this command is refused for it. A device with a wipe due is never refused here.
 */
export async function checkDeviceAccess(
  check: AccessCheck,
): Promise<{ decision: AccessDecision; refused: boolean; newlyHeld: boolean }> {
  const { known } = check;
  const rules = await loadAccessRules(check.rulesFrom ?? check.state, check.device.tenant);
  const decision = decideAccess(rules, known, check.login);
  // Just now blocked or quarantined (not before): the user gets Exchange's notice mail (access-notice.ts), once.
  const newlyHeld = decision.state !== 'allowed' && known.accessState !== decision.state;
  if (known.accessState !== decision.state || known.accessReason !== decision.reason) {
    await check.state.updateDevice(check.device, {
      deviceType: known.deviceType,
      accessState: decision.state,
      accessReason: decision.reason,
    });
  }
  if (wipeDue(known)) return { decision, refused: false, newlyHeld };
  const refused =
    decision.state === 'blocked' || (decision.state === 'quarantined' && !QUARANTINE_ALLOWED.has(check.command));
  return { decision, refused, newlyHeld };
}

/** The answer to a refused device: Status 129 in the command's response from 14.0 on, else HTTP 403. */
export function accessRefusalResponse(
  version: ProtocolVersion,
  root: { ns: Namespace; tag: string } | undefined,
): CommandResult {
  if (!atLeast(version, '14.0') || !root) throw new HttpError(403, 'device blocked or quarantined');
  const status = { ns: root.ns, tag: 'Status', children: [], text: String(CommonStatus.DeviceIsBlockedForThisUser) };
  return { kind: 'wbxml', body: { ns: root.ns, tag: root.tag, children: [status] } };
}
