/**
 * Remote wipe, from the admin's side: ask for it, or take it back before the device has done it. The device learns
 * of it on its next request (RemoteWipeRequested, then Provision carries the directive: commands/provision.ts) and
 * its acknowledgement is recorded there. A wiped device stays refused until it is removed (state.deleteDevice).
 *
 * The admin API and CLI call these; nothing here speaks HTTP.
 */
import { atLeast, isSupportedVersion } from '../protocol/versions.ts';
import type { DeviceRecord, DeviceScope, StateStore, WipeKind } from '../state/types.ts';

/** A wipe request that cannot be carried out as asked (unknown device, too late, not supported by the device). */
export class WipeError extends Error {
  override readonly name = 'WipeError';
}

/**
 * Marks the device for a wipe: `full` erases the device (RemoteWipe), `account` only this account's data on it
 * (AccountOnlyRemoteWipe, which exists from protocol 16.1 on: a device known to speak less is refused rather than
 * sent a full wipe nobody asked for).
 */
export async function requestWipe(
  state: StateStore,
  device: DeviceScope,
  kind: WipeKind = 'full',
  now = Date.now(),
): Promise<DeviceRecord> {
  const known = await state.getDevice(device);
  if (!known) throw new WipeError(`no device ${device.deviceId} for ${device.user}`);
  if (known.wipe === 'acknowledged')
    throw new WipeError(`device ${device.deviceId} is already wiped; remove it instead`);
  if (kind === 'account') {
    const version = known.protocolVersion;
    if (version !== undefined && (!isSupportedVersion(version) || !atLeast(version, '16.1'))) {
      throw new WipeError(`an account-only wipe needs protocol 16.1; device ${device.deviceId} speaks ${version}`);
    }
  }
  return state.updateDevice(device, {
    deviceType: known.deviceType,
    wipe: 'requested',
    wipeKind: kind,
    wipeRequestedAt: now,
  });
}

/** Withdraws a wipe the device has not acknowledged yet; the wipe fields stay as a record of what happened. */
export async function cancelWipe(state: StateStore, device: DeviceScope): Promise<DeviceRecord> {
  const known = await state.getDevice(device);
  if (!known) throw new WipeError(`no device ${device.deviceId} for ${device.user}`);
  if (known.wipe === 'acknowledged')
    throw new WipeError(`device ${device.deviceId} has already wiped itself; remove it instead`);
  if (known.wipe === 'none') return known;
  return state.updateDevice(device, { deviceType: known.deviceType, wipe: 'none' });
}
