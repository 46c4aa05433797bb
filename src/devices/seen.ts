/**
 * Every authenticated request tells us about the device that sent it. Exchange lists a device from its first
 * request on, with what it said about itself; so do we. To keep a Ping-heavy device from writing on every request,
 * the record is written only when something changed or lastSeen is older than LAST_SEEN_RESOLUTION_MS.
 */
import type { DeviceRecord, DeviceScope, StateStore } from '../state/types.ts';
import type { ActiveSyncRequest } from '../protocol/request.ts';

/**
 * 15 minutes: a device pinging every 480–900 s (Android, Outlook) writes its record at most 4 times an hour, within
 * the push budget of 10 writes per idle device-hour (bench:push); the admin API's idle days need no finer time.
 */
const LAST_SEEN_RESOLUTION_MS = 15 * 60_000;

/** Records the request's facts about the device; returns the device as now stored (provisioning, wipe, …). */
export async function recordDeviceSeen(
  state: StateStore,
  device: DeviceScope,
  request: ActiveSyncRequest,
  now = Date.now(),
): Promise<DeviceRecord> {
  const known = await state.getDevice(device);
  const unchanged =
    known !== undefined &&
    known.deviceType === request.deviceType &&
    known.protocolVersion === request.version &&
    (request.userAgent === undefined || known.userAgent === request.userAgent) &&
    now - known.lastSeen < LAST_SEEN_RESOLUTION_MS;
  if (unchanged) return known;
  return state.updateDevice(device, {
    deviceType: request.deviceType,
    protocolVersion: request.version,
    ...(request.userAgent !== undefined ? { userAgent: request.userAgent } : {}),
    lastSeen: now,
  });
}

/** The state scope of a request: logins are matched case-insensitively, as mail servers do. */
export function deviceScope(tenant: string, login: string, deviceId: string): DeviceScope {
  return { tenant, user: login.toLowerCase(), deviceId };
}
