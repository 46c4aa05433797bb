/**
 * Per-user protocol capture: while an admin's rule is on (one user, or one of the user's devices, for a limited time),
 * each ActiveSync request of theirs and its answer is kept in the state store (capture-record.ts says what of it) until
 * CAPTURE_RETENTION_HOURS, and exported as a session file for reading or replaying.
 *
 * The pipeline hands every authenticated request to `captureExchange`, the hook the builder installs (app/build.ts).
 * Whether a rule matches is answered from the tenant's rules as read at most every RULES_CACHE_MS per process, so a
 * request without capture costs no state read; a rule started or stopped through this process's admin API applies
 * at once, on other instances within RULES_CACHE_MS.
 */
import type { CaptureConfig } from '../config.ts';
import type { CaptureRule, CapturedExchange, DeviceScope, StateStore } from '../state/types.ts';
import type { ExchangeInput } from './capture-record.ts';

export const RULES_CACHE_MS = 10_000;
/** The longest capture an admin may start. */
export const MAX_CAPTURE_MINUTES = 24 * 60;
export const DEFAULT_CAPTURE: CaptureConfig = { maxBodyBytes: 2048, retentionHours: 72 };

const HOUR_MS = 3_600_000;

/** The tenant's rules as last read, per store (WeakMap: a store a test throws away takes its cache with it). */
const rulesByStore = new WeakMap<StateStore, Map<string, { readAt: number; rules: Promise<CaptureRule[]> }>>();

function cachedRules(state: StateStore, tenant: string, now: number): Promise<CaptureRule[]> {
  let byTenant = rulesByStore.get(state);
  if (!byTenant) {
    byTenant = new Map();
    rulesByStore.set(state, byTenant);
  }
  const cached = byTenant.get(tenant);
  if (cached && now - cached.readAt < RULES_CACHE_MS) return cached.rules;
  // One read for all the requests that arrive while it runs; a failed read is not kept, the next request retries.
  const rules = state.listCaptureRules(tenant);
  byTenant.set(tenant, { readAt: now, rules });
  rules.catch(() => {
    if (byTenant.get(tenant)?.rules === rules) byTenant.delete(tenant);
  });
  return rules;
}

/** After a change through the admin API: this process reads the rules again at the next request. */
export function forgetCaptureRules(state: StateStore, tenant: string): void {
  rulesByStore.get(state)?.delete(tenant);
}

/** The rule that covers the device, if any: the device's own before the user's. */
export function ruleFor(rules: CaptureRule[], device: DeviceScope, now = Date.now()): CaptureRule | undefined {
  const live = rules.filter((r) => r.user === device.user && r.until > now);
  return live.find((r) => r.deviceId === device.deviceId) ?? live.find((r) => r.deviceId === undefined);
}

/** One authenticated request, from the pipeline. */
export interface CaptureInput extends ExchangeInput {
  device: DeviceScope;
}

/**
 * The hook: keeps the exchange when a rule covers its device. Throws when the store does; the pipeline notes that in
 * the request's log line and the answer stands.
 */
export async function captureExchange(
  state: StateStore,
  input: CaptureInput,
  config: CaptureConfig = DEFAULT_CAPTURE,
  now = Date.now(),
): Promise<void> {
  const rule = ruleFor(await cachedRules(state, input.device.tenant, now), input.device, now);
  if (!rule) return;
  // Loaded at the first capture: the XML rendering (and its parser package) is no part of an uncaptured request.
  const { captureExchangeRecord } = await import('./capture-record.ts');
  const exchange = await captureExchangeRecord(input, rule.maxBodyBytes);
  await state.addCaptureRecord(input.device, {
    at: input.started,
    id: crypto.randomUUID(),
    expiresAt: now + config.retentionHours * HOUR_MS,
    exchange,
  });
}

export interface CaptureRequest {
  user: string;
  deviceId?: string;
  minutes: number;
  maxBodyBytes?: number;
}

/** Starts (or extends, or changes) the capture of a user or one device. */
export async function startCapture(
  state: StateStore,
  tenant: string,
  request: CaptureRequest,
  config: CaptureConfig = DEFAULT_CAPTURE,
  now = Date.now(),
): Promise<CaptureRule> {
  const rule: CaptureRule = {
    user: request.user.toLowerCase(),
    ...(request.deviceId !== undefined ? { deviceId: request.deviceId } : {}),
    startedAt: now,
    until: now + request.minutes * 60_000,
    maxBodyBytes: request.maxBodyBytes ?? config.maxBodyBytes,
  };
  await state.putCaptureRule(tenant, rule);
  forgetCaptureRules(state, tenant);
  return rule;
}

export async function stopCapture(
  state: StateStore,
  tenant: string,
  user: string,
  deviceId: string | undefined,
): Promise<void> {
  await state.deleteCaptureRule(tenant, user.toLowerCase(), deviceId);
  forgetCaptureRules(state, tenant);
}

/** The export: a device's captured exchanges in the order they arrived, for people and the replay tool. */
export interface CaptureSession {
  format: 'activesync-edge-capture';
  version: 1;
  tenant: string;
  user: string;
  deviceId: string;
  exportedAt: string;
  requests: (Omit<CapturedExchange, 'time'> & { time: string })[];
}

export async function exportCapture(state: StateStore, device: DeviceScope, now = Date.now()): Promise<CaptureSession> {
  const records = await state.listCaptureRecords(device);
  return {
    format: 'activesync-edge-capture',
    version: 1,
    tenant: device.tenant,
    user: device.user,
    deviceId: device.deviceId,
    exportedAt: new Date(now).toISOString(),
    requests: records.map(({ exchange }) => ({ ...exchange, time: new Date(exchange.time).toISOString() })),
  };
}
