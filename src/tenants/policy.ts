/**
 * The POLICY setting (MS-ASPROV §2.2.2.28 EASProvisionDoc): every policy element with its default, the JSON a tenant
 * configures (with per-user overrides), and one user's effective policy. The Provision command and the per-request
 * policy check are src/commands/provision.ts and src/protocol/policy.ts.
 */
import * as z from 'zod'; // a namespace import lets the bundler drop the unused parts of zod (see src/config.ts)

export type ProvisioningMode = 'strict' | 'loose';

type FieldKind =
  | { kind: 'bool' }
  | { kind: 'uint'; min?: number; max?: number; empty?: true; values?: readonly number[] }
  | { kind: 'int' }
  | { kind: 'list'; item: 'ApplicationName' | 'Hash' };

export interface FieldDefinition {
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
  {
    name: 'MaxDevicePasswordFailedAttempts',
    since: '12.0',
    type: { kind: 'uint', min: 4, max: 16, empty: true },
    default: 8,
  },
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
  {
    name: 'AllowSMIMEEncryptionAlgorithmNegotiation',
    since: '12.1',
    type: { kind: 'uint', min: 0, max: 2 },
    default: 2,
  },
  { name: 'AllowSMIMESoftCerts', since: '12.1', type: bool, default: 1 },
  { name: 'AllowBrowser', since: '12.1', type: bool, default: 1 },
  { name: 'AllowConsumerEmail', since: '12.1', type: bool, default: 1 },
  { name: 'AllowRemoteDesktop', since: '12.1', type: bool, default: 1 },
  { name: 'AllowInternetSharing', since: '12.1', type: bool, default: 1 },
  {
    name: 'UnapprovedInROMApplicationList',
    since: '12.1',
    type: { kind: 'list', item: 'ApplicationName' },
    default: [],
  },
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
      let n = z
        .number()
        .int()
        .min(t.min ?? 0);
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
  // The server keeps no recovery password (Settings DevicePassword, MS-ASCMD §2.2.3.45, is refused with Status 7:
  // it would be a secret at rest), so a policy must not tell devices it does (MS-ASPROV §2.2.2.43).
  const promisesRecovery = [base, ...Object.values(users ?? {})].some(
    (o) => o.PasswordRecoveryEnabled === 1 || o.PasswordRecoveryEnabled === true,
  );
  if (promisesRecovery)
    throw new Error(
      'PasswordRecoveryEnabled: this server keeps no recovery password (Settings DevicePassword is refused), so a policy cannot turn it on',
    );
  const split = (o: Record<string, unknown>): Partial<Record<string, PolicyValue>> =>
    Object.fromEntries(
      Object.entries(o).filter(([k, v]) => k !== 'AllowNonProvisionableDevices' && v !== undefined),
    ) as Partial<Record<string, PolicyValue>>;
  return {
    base: split(base),
    allowNonProvisionableDevices: AllowNonProvisionableDevices ?? true,
    users: Object.fromEntries(
      Object.entries(users ?? {}).map(([login, o]) => [
        login.toLowerCase(),
        {
          values: split(o),
          ...(typeof o.AllowNonProvisionableDevices === 'boolean'
            ? { allowNonProvisionableDevices: o.AllowNonProvisionableDevices }
            : {}),
        },
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
  return {
    values,
    allowNonProvisionableDevices: override?.allowNonProvisionableDevices ?? config.allowNonProvisionableDevices,
  };
}

/**
 * Whether a user's policy lets a device download an attachment of `size` bytes: AttachmentsEnabled and
 * MaxAttachmentSize (MS-ASPROV §2.2.2.4, §2.2.2.33). The server holds to them too, for devices that ignore the policy
 * (PROVISIONING=loose, or a client that acknowledges what it does not apply).
 */
export function attachmentAllowed(config: PolicyConfig, login: string, size: number): 'yes' | 'disabled' | 'too-large' {
  const { values } = effectivePolicy(config, login);
  if (values.AttachmentsEnabled === 0) return 'disabled';
  const max = values.MaxAttachmentSize;
  return typeof max === 'number' && size > max ? 'too-large' : 'yes';
}
