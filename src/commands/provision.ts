/**
 * Provision (MS-ASPROV): the two-phase policy handshake and the remote wipe directive.
 *
 * - Initial request (Policies/Policy/PolicyType): the device gets the policy document of its user (protocol/policy.ts)
 *   and a temporary policy key; it is 'pending'. From 14.1 on the request carries settings:DeviceInformation, which is
 *   recorded and answered with its own Status; 16.x without it gets Status 165 (DeviceInformationRequired).
 * - Acknowledgement (the temporary key, in the body or in X-MS-PolicyKey, and the device's Status): the device gets
 *   its final key, which every later request must carry; it is 'provisioned', with the fingerprint of the policy it
 *   acknowledged. A wrong key gets Policy Status 5 and changes nothing. Keys are random non-zero uint32s (iOS rejects
 *   a 0 key in responses).
 * - Remote wipe: while a wipe is due, any Provision request is answered with the directive only (RemoteWipe, or
 *   AccountOnlyRemoteWipe for an account-only wipe), and the device's acknowledgement is recorded with its time.
 */
import { newPolicyKey, POLICY_TYPE, policyHash, provisionDoc, wipeDue } from '../protocol/policy.ts';
import { effectivePolicy } from '../tenants/policy.ts';
import { HttpError } from '../protocol/errors.ts';
import { atLeast } from '../protocol/versions.ts';
import type { DeviceRecord } from '../state/types.ts';
import { child, childText, el, type WbxmlElement } from '../wbxml/tree.ts';
import { readDeviceInformation } from './device-information.ts';
import { registerCommand } from './registry.ts';
import type { CommandContext, CommandResult } from '../protocol/command.ts';

/** Provision's top-level Status (MS-ASPROV §2.2.2.54.2, §3.1.5.2, and MS-ASCMD §2.2.2). */
export const ProvisionStatus = {
  Success: 1,
  ProtocolError: 2,
  ServerError: 3,
  DeviceNotFullyProvisionable: 139,
  ExternallyManagedDevicesNotAllowed: 145,
  DeviceInformationRequired: 165,
} as const;

/** Policy/Status in a response (MS-ASPROV §2.2.2.54.1). */
export const PolicyStatus = {
  Success: 1,
  NoPolicy: 2,
  UnknownPolicyType: 3,
  PolicyDataCorrupt: 4,
  WrongPolicyKey: 5,
} as const;

function respond(status: number, ...rest: (WbxmlElement | undefined)[]): CommandResult {
  return { kind: 'wbxml', body: el('Provision', 'Provision', [el('Provision', 'Status', String(status)), ...rest]) };
}

/** The response with settings:DeviceInformation/Status first, as the schema orders it (MS-ASPROV §6.3). */
function respondWithInformation(
  information: WbxmlElement | undefined,
  status: number,
  ...rest: (WbxmlElement | undefined)[]
): CommandResult {
  const result = respond(status, ...rest) as { kind: 'wbxml'; body: WbxmlElement };
  if (information) result.body.children.unshift(information);
  return result;
}

function policies(type: string, status: number, key?: string, data?: WbxmlElement): WbxmlElement {
  return el('Provision', 'Policies', [
    el('Provision', 'Policy', [
      el('Provision', 'PolicyType', type),
      el('Provision', 'Status', String(status)),
      key !== undefined ? el('Provision', 'PolicyKey', key) : undefined,
      data ? el('Provision', 'Data', [data]) : undefined,
    ]),
  ]);
}

function wipeDirective(device: DeviceRecord): WbxmlElement {
  return device.wipeKind === 'account' ? el('Provision', 'AccountOnlyRemoteWipe') : el('Provision', 'RemoteWipe');
}

export async function provision(context: CommandContext): Promise<CommandResult> {
  // A device answering a wipe request may send an empty Provision (MS-ASPROV §3.1.5.1.1); no body is read the same way.
  const body = context.body ?? el('Provision', 'Provision');
  if (body.tag !== 'Provision' || body.ns !== 'Provision') return respond(ProvisionStatus.ProtocolError);
  const device = await context.state.getDevice(context.device);
  if (!device) throw new Error('the device was not recorded before Provision');

  const wipeAck = child(body, 'RemoteWipe') ?? child(body, 'AccountOnlyRemoteWipe');
  if (wipeAck) return acknowledgeWipe(context, device, wipeAck);
  if (wipeDue(device)) {
    if (device.wipe === 'requested')
      await context.state.updateDevice(context.device, { deviceType: device.deviceType, wipe: 'pending' });
    return respond(ProvisionStatus.Success, wipeDirective(device));
  }

  const version = context.request.version;
  const informationElement = child(body, 'DeviceInformation', 'Settings');
  let information: WbxmlElement | undefined;
  if (informationElement) {
    const fields = readDeviceInformation(informationElement);
    if (fields && Object.keys(fields).length > 0)
      await context.state.updateDevice(context.device, { deviceType: device.deviceType, ...fields });
    // The element exists in Provision from 14.1 on; an older client that sends it anyway is not answered with it.
    if (atLeast(version, '14.1'))
      information = el('Settings', 'DeviceInformation', [el('Settings', 'Status', fields ? '1' : '2')]);
  }

  const policy = child(child(body, 'Policies'), 'Policy');
  if (!policy) return respondWithInformation(information, ProvisionStatus.ProtocolError);
  const type = childText(policy, 'PolicyType') ?? '';
  if (type !== POLICY_TYPE)
    return respondWithInformation(information, ProvisionStatus.Success, policies(type, PolicyStatus.UnknownPolicyType));

  const ackKey = childText(policy, 'PolicyKey');
  const ackStatus = childText(policy, 'Status');
  const userPolicy = effectivePolicy(context.config.policy, context.user.login);

  if (ackKey === undefined && ackStatus === undefined) {
    // Phase 1. 16.x clients must describe themselves here (MS-ASPROV §2.2.2.53). The same section asks it of 14.1
    // clients too, but the specifications' own 14.1 examples (test/fixtures/clients/ms-as-spec) leave it out, so a
    // 14.1 device without it is provisioned, as Exchange 2010 provisioned them; when it sends it, it is recorded.
    if (atLeast(version, '16.0') && !informationElement) return respond(ProvisionStatus.DeviceInformationRequired);
    const temporary = newPolicyKey(device.policyKey);
    await context.state.updateDevice(context.device, {
      deviceType: device.deviceType,
      policyKey: temporary,
      provisioning: 'pending',
    });
    return respondWithInformation(
      information,
      ProvisionStatus.Success,
      policies(POLICY_TYPE, PolicyStatus.Success, temporary, provisionDoc(userPolicy.values, version)),
    );
  }

  // Phase 2: the acknowledgement of the temporary key.
  const key = ackKey ?? context.request.policyKey;
  if (device.provisioning !== 'pending' || key === undefined || key !== device.policyKey) {
    return respondWithInformation(
      information,
      ProvisionStatus.Success,
      policies(POLICY_TYPE, PolicyStatus.WrongPolicyKey),
    );
  }
  // The device's verdict: 1 applied, 2 partly, 3 not at all, 4 managed by someone else.
  if (ackStatus !== undefined && !['1', '2', '3', '4'].includes(ackStatus))
    return respondWithInformation(information, ProvisionStatus.ProtocolError);
  if (ackStatus !== undefined && ackStatus !== '1' && !userPolicy.allowNonProvisionableDevices) {
    if (!atLeast(version, '14.0'))
      throw new HttpError(403, `the device did not apply the policy (Status ${ackStatus})`);
    return respondWithInformation(
      information,
      ackStatus === '4'
        ? ProvisionStatus.ExternallyManagedDevicesNotAllowed
        : ProvisionStatus.DeviceNotFullyProvisionable,
    );
  }
  const final = newPolicyKey(key);
  await context.state.updateDevice(context.device, {
    deviceType: device.deviceType,
    policyKey: final,
    provisioning: 'provisioned',
    policyHash: await policyHash(userPolicy),
  });
  return respondWithInformation(
    information,
    ProvisionStatus.Success,
    policies(POLICY_TYPE, PolicyStatus.Success, final),
  );
}

/** `<RemoteWipe><Status>1|2</Status></RemoteWipe>` (or AccountOnlyRemoteWipe): the device did, or could not, wipe. */
async function acknowledgeWipe(
  context: CommandContext,
  device: DeviceRecord,
  ack: WbxmlElement,
): Promise<CommandResult> {
  const status = childText(ack, 'Status');
  // An acknowledgement of a wipe nobody asked for is a protocol error; one of a wipe cancelled after it was sent is
  // news.
  if ((status !== '1' && status !== '2') || (!wipeDue(device) && device.wipeRequestedAt === undefined)) {
    return respond(ProvisionStatus.ProtocolError);
  }
  const now = Date.now();
  if (status === '1') {
    await context.state.updateDevice(context.device, {
      deviceType: device.deviceType,
      wipe: 'acknowledged',
      wipeAcknowledgedAt: now,
      wipeAckStatus: 1,
    });
    return respond(ProvisionStatus.Success);
  }
  // The wipe failed: say so, and send the directive again (MS-ASPROV §3.2.5.1.2.2).
  await context.state.updateDevice(context.device, {
    deviceType: device.deviceType,
    wipe: 'pending',
    wipeAcknowledgedAt: now,
    wipeAckStatus: 2,
  });
  return respond(ProvisionStatus.ProtocolError, wipeDirective(device));
}

registerCommand({
  name: 'Provision',
  responseRoot: { ns: 'Provision', tag: 'Provision' },
  serverErrorStatus: ProvisionStatus.ServerError,
  handle: provision,
});
