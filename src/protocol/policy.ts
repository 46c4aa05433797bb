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
import * as z from 'zod'; // a namespace import lets the bundler drop the unused parts of zod (see src/config.ts)
import type { CommandResult } from '../commands/registry.ts';
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

export type ProvisioningMode = 'strict' | 'loose';

type FieldKind =
  | { kind: 'bool' }
  | { kind: 'uint'; min?: number; max?: number; empty?: true; values?: readonly number[] }
  | { kind: 'int' }
  | { kind: 'list'; item: 'ApplicationName' | 'Hash' };

interface FieldDefinition {
  name: string;
  /** The first protocol version whose EASProvisionDoc has the element. */
  since: '12.0' | '12.1';
  type: FieldKind;
  /** Permissive: what a tenant gets without a POLICY setting (Exchange's default mailbox policy, no password). */
  default: PolicyValue;
}

/** A setting's value: 0/1 for booleans, a number, null for an empty element, or a list. */
export type PolicyValue = number | null | readonly string[];

const bool = { kind: 'bool' } as const;

/** Every EASProvisionDoc element (MS-ASPROV §2.2.2.28), in the order Exchange sends them. */
export const POLICY_FIELDS: readonly FieldDefinition[] = [
  { name: 'DevicePasswordEnabled', since: '12.0', type: bool, default: 0 },
  { name: 'AlphanumericDevicePasswordRequired', since: '12.0', type: bool, default: 0 },
  { name: 'PasswordRecoveryEnabled', since: '12.0', type: bool, default: 0 },
  { name: 'RequireStorageCardEncryption', since: '12.0', type: bool, default: 0 },
  { name: 'AttachmentsEnabled', since: '12.0', type: bool, default: 1 },
  { name: 'MinDevicePasswordLength', since: '12.0', type: { kind: 'uint', min: 1, max: 16, empty: true }, default: 4 },
  { name: 'MaxInactivityTimeDeviceLock', since: '12.0', type: { kind: 'uint', empty: true }, default: 900 },
  { name: 'MaxDevicePasswordFailedAttempts', since: '12.0', type: { kind: 'uint', min: 4, max: 16, empty: true }, default: 8 },
  { name: 'MaxAttachmentSize', since: '12.0', type: { kind: 'uint', empty: true }, default: null },
  { name: 'AllowSimpleDevicePassword', since: '12.0', type: bool, default: 1 },
  { name: 'DevicePasswordExpiration', since: '12.0', type: { kind: 'uint', empty: true }, default: null },
  { name: 'DevicePasswordHistory', since: '12.0', type: { kind: 'uint' }, default: 0 },
  { name: 'AllowStorageCard', since: '12.1', type: bool, default: 1 },
  { name: 'AllowCamera', since: '12.1', type: bool, default: 1 },
  { name: 'RequireDeviceEncryption', since: '12.1', type: bool, default: 0 },
  { name: 'AllowUnsignedApplications', since: '12.1', type: bool, default: 1 },
  { name: 'AllowUnsignedInstallationPackages', since: '12.1', type: bool, default: 1 },
  { name: 'MinDevicePasswordComplexCharacters', since: '12.1', type: { kind: 'uint', min: 1, max: 4 }, default: 3 },
  { name: 'AllowWiFi', since: '12.1', type: bool, default: 1 },
  { name: 'AllowTextMessaging', since: '12.1', type: bool, default: 1 },
  { name: 'AllowPOPIMAPEmail', since: '12.1', type: bool, default: 1 },
  { name: 'AllowBluetooth', since: '12.1', type: { kind: 'uint', min: 0, max: 2 }, default: 2 },
  { name: 'AllowIrDA', since: '12.1', type: bool, default: 1 },
  { name: 'RequireManualSyncWhenRoaming', since: '12.1', type: bool, default: 0 },
  { name: 'AllowDesktopSync', since: '12.1', type: bool, default: 1 },
  { name: 'MaxCalendarAgeFilter', since: '12.1', type: { kind: 'uint', values: [0, 4, 5, 6, 7] }, default: 0 },
  { name: 'AllowHTMLEmail', since: '12.1', type: bool, default: 1 },
  { name: 'MaxEmailAgeFilter', since: '12.1', type: { kind: 'uint', min: 0, max: 5 }, default: 0 },
  { name: 'MaxEmailBodyTruncationSize', since: '12.1', type: { kind: 'int' }, default: -1 },
  { name: 'MaxEmailHTMLBodyTruncationSize', since: '12.1', type: { kind: 'int' }, default: -1 },
  { name: 'RequireSignedSMIMEMessages', since: '12.1', type: bool, default: 0 },
  { name: 'RequireEncryptedSMIMEMessages', since: '12.1', type: bool, default: 0 },
  { name: 'RequireSignedSMIMEAlgorithm', since: '12.1', type: { kind: 'uint', min: 0, max: 1 }, default: 0 },
  { name: 'RequireEncryptionSMIMEAlgorithm', since: '12.1', type: { kind: 'uint', min: 0, max: 4 }, default: 0 },
  { name: 'AllowSMIMEEncryptionAlgorithmNegotiation', since: '12.1', type: { kind: 'uint', min: 0, max: 2 }, default: 2 },
  { name: 'AllowSMIMESoftCerts', since: '12.1', type: bool, default: 1 },
  { name: 'AllowBrowser', since: '12.1', type: bool, default: 1 },
  { name: 'AllowConsumerEmail', since: '12.1', type: bool, default: 1 },
  { name: 'AllowRemoteDesktop', since: '12.1', type: bool, default: 1 },
  { name: 'AllowInternetSharing', since: '12.1', type: bool, default: 1 },
  { name: 'UnapprovedInROMApplicationList', since: '12.1', type: { kind: 'list', item: 'ApplicationName' }, default: [] },
  { name: 'ApprovedApplicationList', since: '12.1', type: { kind: 'list', item: 'Hash' }, default: [] },
];

export type PolicyValues = Readonly<Record<string, PolicyValue>>;

/** One user's policy: the document and whether partial acknowledgements are accepted. */
export interface EffectivePolicy {
  values: PolicyValues;
  /**
   * Exchange's AllowNonProvisionableDevices: accept a device that acknowledges the policy as only partly applied
   * (Status 2/3) or applied by someone else (4). When false such an acknowledgement gets Status 139 (145 for 4).
   */
  allowNonProvisionableDevices: boolean;
}

/** The POLICY setting, parsed: tenant-wide settings and per-user overrides (keys are logins, lower case). */
export interface PolicyConfig {
  base: Partial<Record<string, PolicyValue>>;
  allowNonProvisionableDevices: boolean;
  users: Record<string, { values: Partial<Record<string, PolicyValue>>; allowNonProvisionableDevices?: boolean }>;
}

export const DEFAULT_POLICY_CONFIG: PolicyConfig = { base: {}, allowNonProvisionableDevices: true, users: {} };

function valueSchema(field: FieldDefinition): z.ZodType<PolicyValue> {
  const t = field.type;
  switch (t.kind) {
    case 'bool':
      return z.union([z.boolean(), z.literal(0), z.literal(1)]).transform((v) => (v === true || v === 1 ? 1 : 0));
    case 'int':
      return z.number().int().min(-1);
    case 'list':
      return z.array(z.string().trim().min(1));
    case 'uint': {
      let n = z.number().int().min(t.min ?? 0);
      if (t.max !== undefined) n = n.max(t.max);
      const checked = t.values ? n.refine((v) => t.values!.includes(v), `must be one of ${t.values.join(', ')}`) : n;
      return t.empty ? checked.nullable() : checked;
    }
  }
}

const fieldShape = Object.fromEntries(POLICY_FIELDS.map((f) => [f.name, valueSchema(f).optional()]));
const overrideSchema = z.object({ ...fieldShape, AllowNonProvisionableDevices: z.boolean().optional() }).strict();
const policySchema = overrideSchema.extend({ users: z.record(z.string().min(1), overrideSchema).optional() }).strict();

/**
 * Parses the POLICY setting (JSON): any EASProvisionDoc element by its name (booleans as true/false or 0/1, null
 * for an empty element), `AllowNonProvisionableDevices`, and `users: { "<login>": { …overrides… } }`. Unknown names
 * are errors, so that a typo does not silently leave a setting out.
 */
export function parsePolicyConfig(json: string): PolicyConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new Error('is not JSON');
  }
  const parsed = policySchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; '));
  }
  const { users, AllowNonProvisionableDevices, ...base } = parsed.data as Record<string, unknown> & {
    users?: Record<string, Record<string, unknown>>;
    AllowNonProvisionableDevices?: boolean;
  };
  const split = (o: Record<string, unknown>): Partial<Record<string, PolicyValue>> =>
    Object.fromEntries(Object.entries(o).filter(([k, v]) => k !== 'AllowNonProvisionableDevices' && v !== undefined)) as Partial<Record<string, PolicyValue>>;
  return {
    base: split(base),
    allowNonProvisionableDevices: AllowNonProvisionableDevices ?? true,
    users: Object.fromEntries(
      Object.entries(users ?? {}).map(([login, o]) => [
        login.toLowerCase(),
        { values: split(o), ...(typeof o.AllowNonProvisionableDevices === 'boolean' ? { allowNonProvisionableDevices: o.AllowNonProvisionableDevices } : {}) },
      ]),
    ),
  };
}

/** The policy of one user: defaults, then the tenant's settings, then the user's overrides. */
export function effectivePolicy(config: PolicyConfig, login: string): EffectivePolicy {
  const override = config.users[login.toLowerCase()];
  const values: Record<string, PolicyValue> = {};
  for (const f of POLICY_FIELDS) {
    // An explicit null (an empty element) counts as set.
    if (override && f.name in override.values) values[f.name] = override.values[f.name]!;
    else if (f.name in config.base) values[f.name] = config.base[f.name]!;
    else values[f.name] = f.default;
  }
  return { values, allowNonProvisionableDevices: override?.allowNonProvisionableDevices ?? config.allowNonProvisionableDevices };
}

/** A setting's value; null (an empty element) is a value, not a gap. */
function valueOf(values: PolicyValues, field: FieldDefinition): PolicyValue {
  return field.name in values ? values[field.name]! : field.default;
}

/** The EASProvisionDoc for a protocol version: the elements that version has (12.0 has twelve of them). */
export function provisionDoc(values: PolicyValues, version: ProtocolVersion): WbxmlElement {
  const children: WbxmlElement[] = [];
  for (const f of POLICY_FIELDS) {
    if (!atLeast(version, f.since)) continue;
    const value = valueOf(values, f);
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
  const canonical = JSON.stringify([POLICY_FIELDS.map((f) => valueOf(policy.values, f)), policy.allowNonProvisionableDevices]);
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
  return body?.tag === 'Settings' && body.ns === 'Settings' && body.children.length > 0 && body.children.every((c) => c.ns === 'Settings' && c.tag === 'DeviceInformation');
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
export function refusalResponse(refusal: Refusal, version: ProtocolVersion, command: CommandName, root?: { ns: Namespace; tag: string }): CommandResult {
  const where = root ?? RESPONSE_ROOTS[command];
  if (!atLeast(version, '14.0') || !where) throw new HttpError(449, `provisioning required (${refusal})`);
  const status: WbxmlElement = { ns: where.ns, tag: 'Status', children: [], text: String(REFUSAL_STATUS[refusal]) };
  return { kind: 'wbxml', body: { ns: where.ns, tag: where.tag, children: [status] } };
}
