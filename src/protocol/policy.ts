/**
 * The device policy (MS-ASPROV): the EASProvisionDoc a device gets from Provision, where it comes from (the POLICY
 * setting, with per-user overrides), and the check every request passes before its command runs (X-MS-PolicyKey,
 * remote wipe).
 *
 * The check, as Exchange does it:
 * - a device with a wipe requested, delivered or done is refused every command but Provision, so that it fetches the
 *   wipe directive (RemoteWipeRequested). A wiped device keeps being told to wipe until an admin removes it
 *   (state.deleteDevice), as Exchange keeps wiping a device whose partnership was not removed;
 * - otherwise a command needs the policy key the device got when it acknowledged the current policy: no key or no
 *   finished provisioning → DeviceNotProvisioned, another key → InvalidPolicyKey, the right key for a policy that has
 *   changed since → PolicyRefresh;
 * - below protocol 14.0 every refusal is HTTP 449; from 14.0 on it is the common status 140/142/143/144 as the
 *   command's top-level Status (MS-ASCMD §2.2.2);
 * - exempt: Provision itself, and a Settings request that only sets DeviceInformation (MS-ASCMD §3.1.5.2: clients may
 *   send it before they are provisioned). OPTIONS and Autodiscover never reach the check. Ping is checked like every
 *   other command (Exchange does; Z-Push and grommunio exempt it), which also brings a wipe or a policy change to a
 *   device that only pushes;
 * - PROVISIONING=loose lets through requests that carry no X-MS-PolicyKey at all (clients that never provision);
 *   a request that carries one, even 0, is checked as in strict mode, and a wipe is always enforced.
 */
import {
  effectivePolicy,
  POLICY_FIELDS,
  type EffectivePolicy,
  type FieldDefinition,
  type PolicyConfig,
  type PolicyValue,
  type PolicyValues,
  type ProvisioningMode,
} from '../tenants/policy.ts';
import type { MailPolicy } from '../items/email.ts';
import type { CommandResult } from './command.ts';
import type { DeviceRecord } from '../state/types.ts';
import type { Namespace } from '../wbxml/codepages.ts';
import { el, type WbxmlElement } from '../wbxml/tree.ts';
import type { CommandName } from './commands.ts';
import { HttpError } from './errors.ts';
import type { ActiveSyncRequest } from './request.ts';
import { CommonStatus } from './status.ts';
import { atLeast, type ProtocolVersion } from './versions.ts';

/** The only policy type of protocol 12.0 and later (2.5's MS-WAP-Provisioning-XML is not served: 2.5 is not spoken). */
export const POLICY_TYPE = 'MS-EAS-Provisioning-WBXML';

/** A setting's value; null (an empty element) is a value, not a gap. */
function policyValueOf(values: PolicyValues, field: FieldDefinition): PolicyValue {
  return field.name in values ? values[field.name]! : field.default;
}

/** The EASProvisionDoc for a protocol version: the elements that version has (12.0 has twelve of them). */
export function provisionDoc(values: PolicyValues, version: ProtocolVersion): WbxmlElement {
  const children: WbxmlElement[] = [];
  for (const f of POLICY_FIELDS) {
    if (!atLeast(version, f.since)) continue;
    const value = policyValueOf(values, f);
    const element: WbxmlElement = { ns: 'Provision', tag: f.name, children: [] };
    if (Array.isArray(value)) {
      const item = (f.type as { item: 'ApplicationName' | 'Hash' }).item;
      for (const v of value as readonly string[]) element.children.push(el('Provision', item, v));
    } else if (value !== null) {
      element.text = String(value);
    }
    children.push(element);
  }
  return el('Provision', 'EASProvisionDoc', children);
}

const hashes = new Map<string, string>();

/** A fingerprint of the policy: a device provisioned under another one gets PolicyRefresh. */
export async function policyHash(policy: EffectivePolicy): Promise<string> {
  const canonical = JSON.stringify([
    POLICY_FIELDS.map((f) => policyValueOf(policy.values, f)),
    policy.allowNonProvisionableDevices,
  ]);
  const known = hashes.get(canonical);
  if (known) return known;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(canonical)));
  const hex = [...digest.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join('');
  if (hashes.size > 1000) hashes.clear();
  hashes.set(canonical, hex);
  return hex;
}

/** A new policy key: a random uint32, never 0 (iOS rejects 0) and never the one the device holds. */
export function newPolicyKey(not?: string): string {
  const buf = new Uint32Array(1);
  for (;;) {
    crypto.getRandomValues(buf);
    const key = String(buf[0]!);
    if (buf[0] !== 0 && key !== not) return key;
  }
}

// The check before a command.

export type Refusal = 'wipe' | 'not-provisioned' | 'invalid-key' | 'policy-refresh';

const REFUSAL_STATUS: Record<Refusal, number> = {
  wipe: CommonStatus.RemoteWipeRequested,
  'not-provisioned': CommonStatus.DeviceNotProvisioned,
  'invalid-key': CommonStatus.InvalidPolicyKey,
  'policy-refresh': CommonStatus.PolicyRefresh,
};

export interface ProvisioningCheck {
  mode: ProvisioningMode;
  policy: PolicyConfig;
  login: string;
  device: DeviceRecord;
  request: ActiveSyncRequest;
  command: CommandName;
  body: WbxmlElement | undefined;
}

/** Whether a wipe was asked for and not withdrawn: the device gets the directive until an admin removes it. */
export function wipeDue(device: DeviceRecord): boolean {
  return device.wipe === 'requested' || device.wipe === 'pending' || device.wipe === 'acknowledged';
}

/** Why the request may not run its command, or undefined when it may. */
export async function provisioningRefusal(check: ProvisioningCheck): Promise<Refusal | undefined> {
  const { device, request } = check;
  if (check.command === 'Provision') return undefined;
  if (wipeDue(device)) return 'wipe';
  if (check.command === 'Settings' && onlySetsDeviceInformation(check.body)) return undefined;

  const key = request.policyKey;
  if (check.mode === 'loose' && key === undefined) return undefined;
  if (key === undefined || key === '0' || device.provisioning !== 'provisioned') return 'not-provisioned';
  if (key !== device.policyKey) return 'invalid-key';
  const current = await policyHash(effectivePolicy(check.policy, check.login));
  if (device.policyHash !== undefined && device.policyHash !== current) return 'policy-refresh';
  return undefined;
}

function onlySetsDeviceInformation(body: WbxmlElement | undefined): boolean {
  return (
    body?.tag === 'Settings' &&
    body.ns === 'Settings' &&
    body.children.length > 0 &&
    body.children.every((c) => c.ns === 'Settings' && c.tag === 'DeviceInformation')
  );
}

/** The root element of each command's response, where a common status goes (14.0+). */
const RESPONSE_ROOTS: Partial<Record<CommandName, { ns: Namespace; tag: string }>> = {
  Sync: { ns: 'AirSync', tag: 'Sync' },
  SendMail: { ns: 'ComposeMail', tag: 'SendMail' },
  SmartForward: { ns: 'ComposeMail', tag: 'SmartForward' },
  SmartReply: { ns: 'ComposeMail', tag: 'SmartReply' },
  FolderSync: { ns: 'FolderHierarchy', tag: 'FolderSync' },
  FolderCreate: { ns: 'FolderHierarchy', tag: 'FolderCreate' },
  FolderDelete: { ns: 'FolderHierarchy', tag: 'FolderDelete' },
  FolderUpdate: { ns: 'FolderHierarchy', tag: 'FolderUpdate' },
  MoveItems: { ns: 'Move', tag: 'MoveItems' },
  GetItemEstimate: { ns: 'GetItemEstimate', tag: 'GetItemEstimate' },
  MeetingResponse: { ns: 'MeetingResponse', tag: 'MeetingResponse' },
  Search: { ns: 'Search', tag: 'Search' },
  Settings: { ns: 'Settings', tag: 'Settings' },
  Ping: { ns: 'Ping', tag: 'Ping' },
  ItemOperations: { ns: 'ItemOperations', tag: 'ItemOperations' },
  ResolveRecipients: { ns: 'ResolveRecipients', tag: 'ResolveRecipients' },
  ValidateCert: { ns: 'ValidateCert', tag: 'ValidateCert' },
  Find: { ns: 'Find', tag: 'Find' },
};

/**
 * The answer to a refused request: HTTP 449 below 14.0 (and for a command without a WBXML response), else the
 * command's response root with the common status as its only child.
 */
export function refusalResponse(
  refusal: Refusal,
  version: ProtocolVersion,
  command: CommandName,
  root?: { ns: Namespace; tag: string },
): CommandResult {
  const where = root ?? RESPONSE_ROOTS[command];
  if (!atLeast(version, '14.0') || !where) throw new HttpError(449, `provisioning required (${refusal})`);
  const status: WbxmlElement = { ns: where.ns, tag: 'Status', children: [], text: String(REFUSAL_STATUS[refusal]) };
  return { kind: 'wbxml', body: { ns: where.ns, tag: where.tag, children: [status] } };
}

// What the server holds to itself, for devices that do not apply the policy (PROVISIONING=loose, or a client that
// acknowledges what it does not apply).

/** A truncation setting (-1: none) in bytes; MS-ASPROV gives no unit, these are kilobytes as Exchange's policy sets. */
function truncationBytes(value: PolicyValue): number | undefined {
  return typeof value === 'number' && value >= 0 ? value * 1024 : undefined;
}

/**
 * The parts of a user's policy that shape the mail a device gets (items/email.ts MailPolicy): AllowHTMLEmail,
 * MaxEmailBodyTruncationSize, MaxEmailHTMLBodyTruncationSize (MS-ASPROV §2.2.2.5, §2.2.2.34, §2.2.2.35),
 * AttachmentsEnabled and MaxAttachmentSize (§2.2.2.4, §2.2.2.33).
 */
export function mailPolicy(config: PolicyConfig, login: string): MailPolicy {
  const { values } = effectivePolicy(config, login);
  const maxAttachment = values.MaxAttachmentSize;
  return {
    allowHtml: values.AllowHTMLEmail !== 0,
    maxTextBytes: truncationBytes(values.MaxEmailBodyTruncationSize ?? -1),
    maxHtmlBytes: truncationBytes(values.MaxEmailHTMLBodyTruncationSize ?? -1),
    attachmentsEnabled: values.AttachmentsEnabled !== 0,
    maxAttachmentSize: typeof maxAttachment === 'number' ? maxAttachment : undefined,
  };
}

/**
 * The email FilterType a Sync works with: the device's, no further back than MaxEmailAgeFilter (MS-ASPROV §2.2.2.36;
 * both count 1 day … 5 one month, 0 is everything, MS-ASCMD §2.2.3.68.2). A device asking for everything, or for
 * more than the policy allows, gets the policy's window.
 */
export function emailFilterType(
  config: PolicyConfig,
  login: string,
  requested: number | undefined,
): number | undefined {
  const max = effectivePolicy(config, login).values.MaxEmailAgeFilter;
  if (typeof max !== 'number' || max <= 0) return requested;
  return requested === undefined || requested <= 0 || requested > max ? max : requested;
}
