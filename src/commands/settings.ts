/**
 * Settings (MS-ASCMD §2.2.1.18): each part of the request is answered in order, with its own Status.
 *
 * - DeviceInformation Set: recorded in the device record.
 * - UserInformation Get: the user's primary SMTP address: the login when it is an address, else login@MAIL_DOMAIN
 *   (nothing when neither gives one); from 14.1 on in the Accounts form.
 * - Oof Get/Set: stored per user in the StateStore (UserSettings). With SIEVE=on (Node), a Set is carried out as a
 *   Sieve vacation script installed over ManageSieve as the user (src/backends/sieve/; it includes the user's own
 *   active script, and internal senders are those of the user's domain), and answered with Status 1; Get
 *   then reports what was set. Without it (the default, and on Workers unless configured) automatic replies are never
 *   in effect: a Set that turns them on is stored and answered with Status 7 (denied by policy), and Get reports
 *   OofState 0 with the stored messages. Turning them off succeeds.
 * - DevicePassword Set: refused with Status 7; a recovery password would be a secret at rest, and is not kept
 *   until it can be kept sealed.
 * - RightsManagementInformation Get: no templates (no IRM).
 */
import { primaryAddress } from '../items/address.ts';
import { atLeast } from '../protocol/versions.ts';
import type { OofMessage, OofSettings } from '../state/types.ts';
import { child, children, childText, el, type WbxmlElement } from '../wbxml/tree.ts';
import { readDeviceInformation } from './device-information.ts';
import { registerCommand } from './registry.ts';
import type { CommandContext, CommandResult } from '../protocol/command.ts';

/** Status of Settings and of each of its parts (MS-ASCMD §2.2.3.177.15). */
export const SettingsStatus = {
  Success: 1,
  ProtocolError: 2,
  AccessDenied: 3,
  ServerUnavailable: 4,
  InvalidArguments: 5,
  ConflictingArguments: 6,
  DeniedByPolicy: 7,
} as const;

const AUDIENCES: readonly [
  OofMessage['audience'],
  'AppliesToInternal' | 'AppliesToExternalKnown' | 'AppliesToExternalUnknown',
][] = [
  ['internal', 'AppliesToInternal'],
  ['externalKnown', 'AppliesToExternalKnown'],
  ['externalUnknown', 'AppliesToExternalUnknown'],
];

function s(tag: Parameters<typeof el<'Settings'>>[1], content?: Parameters<typeof el>[2]): WbxmlElement {
  return el('Settings', tag, content);
}

function status(code: number): WbxmlElement {
  return s('Status', String(code));
}

function settingsResponse(code: number, parts: WbxmlElement[] = []): CommandResult {
  return { kind: 'wbxml', body: s('Settings', [status(code), ...parts]) };
}

export async function settings(context: CommandContext): Promise<CommandResult> {
  const body = context.body;
  if (body?.tag !== 'Settings' || body.ns !== 'Settings' || body.children.length === 0)
    return settingsResponse(SettingsStatus.ProtocolError);
  const parts: WbxmlElement[] = [];
  for (const part of body.children) {
    if (part.ns !== 'Settings') return settingsResponse(SettingsStatus.ProtocolError);
    switch (part.tag) {
      case 'Oof':
        parts.push(await oof(context, part));
        break;
      case 'DeviceInformation':
        parts.push(await deviceInformation(context, part));
        break;
      case 'UserInformation':
        parts.push(userInformation(context, part));
        break;
      case 'DevicePassword':
        parts.push(await devicePassword(context, part));
        break;
      case 'RightsManagementInformation':
        parts.push(
          child(part, 'Get')
            ? s('RightsManagementInformation', [
                status(1),
                s('Get', [el('RightsManagement', 'RightsManagementTemplates')]),
              ])
            : s('RightsManagementInformation', [status(2)]),
        );
        break;
      default:
        return settingsResponse(SettingsStatus.ProtocolError);
    }
  }
  return settingsResponse(SettingsStatus.Success, parts);
}

async function deviceInformation(context: CommandContext, part: WbxmlElement): Promise<WbxmlElement> {
  const fields = readDeviceInformation(part);
  if (!fields) return s('DeviceInformation', [status(SettingsStatus.ProtocolError)]);
  if (Object.keys(fields).length > 0) {
    const known = await context.state.getDevice(context.device);
    await context.state.updateDevice(context.device, {
      deviceType: known?.deviceType ?? context.request.deviceType,
      ...fields,
    });
  }
  return s('DeviceInformation', [status(SettingsStatus.Success)]);
}

function userInformation(context: CommandContext, part: WbxmlElement): WbxmlElement {
  if (!child(part, 'Get')) return s('UserInformation', [status(SettingsStatus.ProtocolError)]);
  const address = primaryAddress(context.user.login, context.config.mailDomain);
  let get: WbxmlElement;
  if (!address) get = s('Get');
  else if (atLeast(context.request.version, '14.1')) {
    // 14.1: the Accounts form; the user's own account has no AccountId.
    get = s('Get', [
      s('Accounts', [
        s('Account', [s('EmailAddresses', [s('SMTPAddress', address), s('PrimarySmtpAddress', address)])]),
      ]),
    ]);
  } else {
    get = s('Get', [s('EmailAddresses', [s('SMTPAddress', address)])]);
  }
  return s('UserInformation', [status(SettingsStatus.Success), get]);
}

async function devicePassword(_context: CommandContext, part: WbxmlElement): Promise<WbxmlElement> {
  const password = childText(child(part, 'Set'), 'Password');
  if (password === undefined) return s('DevicePassword', [status(SettingsStatus.ProtocolError)]);
  if (password.length > 255) return s('DevicePassword', [status(SettingsStatus.InvalidArguments)]);
  // A recovery password is a secret: it may only be kept sealed, and there is no sealing key for it yet. Refused
  // (as a policy that does not enable recovery refuses it) rather than stored in clear.
  return s('DevicePassword', [status(SettingsStatus.DeniedByPolicy)]);
}

// Out of Office.

function userScope(context: CommandContext): { tenant: string; user: string } {
  return { tenant: context.device.tenant, user: context.device.user };
}

/** Subject of the automatic replies the vacation script sends. */
const OOF_SUBJECT = 'Automatic reply';

function defaultOof(): OofSettings {
  return { state: 0, messages: [], applied: false };
}

async function oof(context: CommandContext, part: WbxmlElement): Promise<WbxmlElement> {
  const get = child(part, 'Get');
  const set = child(part, 'Set');
  if (get && !set) {
    const stored = (await context.state.getUserSettings(userScope(context)))?.oof ?? defaultOof();
    const bodyType = normalizeBodyType(childText(get, 'BodyType')) ?? 'Text';
    return s('Oof', [status(SettingsStatus.Success), oofGet(stored, bodyType)]);
  }
  if (set && !get) return oofSet(context, set);
  return s('Oof', [status(SettingsStatus.ProtocolError)]);
}

/** What is in effect: nothing is applied here, so OofState is 0 unless a vacation script carries the settings. */
function oofGet(stored: OofSettings, bodyType: 'Text' | 'HTML'): WbxmlElement {
  const state = stored.applied ? stored.state : 0;
  return s('Get', [
    s('OofState', String(state)),
    state === 2 && stored.startTime ? s('StartTime', stored.startTime) : undefined,
    state === 2 && stored.endTime ? s('EndTime', stored.endTime) : undefined,
    ...AUDIENCES.map(([audience, tag]) => {
      const m = stored.messages.find((x) => x.audience === audience);
      return s('OofMessage', [
        s(tag),
        s('Enabled', m?.enabled ? '1' : '0'),
        s('ReplyMessage', m ? convertBody(m.replyMessage, m.bodyType, bodyType) : ''),
        s('BodyType', bodyType),
      ]);
    }),
  ]);
}

async function oofSet(context: CommandContext, set: WbxmlElement): Promise<WbxmlElement> {
  const scope = userScope(context);
  const previous = (await context.state.getUserSettings(scope)) ?? { updatedAt: 0 };
  const before = previous.oof ?? defaultOof();

  const stateText = childText(set, 'OofState');
  const state = stateText === undefined ? before.state : Number(stateText);
  if (![0, 1, 2].includes(state) || (stateText !== undefined && !/^[012]$/.test(stateText)))
    return s('Oof', [status(SettingsStatus.ProtocolError)]);
  const startTime = childText(set, 'StartTime') ?? (state === 2 ? before.startTime : undefined);
  const endTime = childText(set, 'EndTime') ?? (state === 2 ? before.endTime : undefined);
  if (state === 2) {
    if (!startTime || !endTime) return s('Oof', [status(SettingsStatus.ProtocolError)]);
    const start = Date.parse(startTime);
    const end = Date.parse(endTime);
    if (Number.isNaN(start) || Number.isNaN(end)) return s('Oof', [status(SettingsStatus.InvalidArguments)]);
    if (end <= start) return s('Oof', [status(SettingsStatus.ConflictingArguments)]);
  }

  const messages = new Map(before.messages.map((m) => [m.audience, m]));
  for (const m of children(set, 'OofMessage')) {
    const audience = AUDIENCES.find(([, tag]) => child(m, tag))?.[0];
    if (!audience) return s('Oof', [status(SettingsStatus.ProtocolError)]);
    const enabled = childText(m, 'Enabled');
    const bodyType = normalizeBodyType(childText(m, 'BodyType')) ?? messages.get(audience)?.bodyType ?? 'Text';
    messages.set(audience, {
      audience,
      enabled: enabled === undefined ? (messages.get(audience)?.enabled ?? false) : enabled === '1',
      replyMessage: childText(m, 'ReplyMessage') ?? messages.get(audience)?.replyMessage ?? '',
      bodyType,
    });
  }

  const next: OofSettings = {
    state,
    ...(state === 2 ? { startTime: startTime!, endTime: endTime! } : {}),
    messages: AUDIENCES.flatMap(([audience]) => messages.get(audience) ?? []),
    applied: false,
  };
  const autoReplies = context.backends.autoReplies(context.user);
  if (autoReplies) {
    try {
      const domain = primaryAddress(context.user.login, context.config.mailDomain)?.split('@')[1];
      await autoReplies.apply(next, {
        subject: OOF_SUBJECT,
        ...(domain ? { internalDomain: domain } : {}),
        toText: (m) => convertBody(m.replyMessage, m.bodyType, 'Text'),
      });
    } catch (err) {
      // Stored as asked but not in effect; the device may try again.
      context.note?.({ oofSieveError: (err as Error).message });
      await context.state.putUserSettings(scope, { ...previous, oof: next, updatedAt: Date.now() });
      return s('Oof', [status(SettingsStatus.ServerUnavailable)]);
    }
    await context.state.putUserSettings(scope, { ...previous, oof: { ...next, applied: true }, updatedAt: Date.now() });
    return s('Oof', [status(SettingsStatus.Success)]);
  }
  await context.state.putUserSettings(scope, { ...previous, oof: next, updatedAt: Date.now() });
  // Turning automatic replies off is what is in effect anyway; turning them on cannot be carried out here.
  return s('Oof', [status(state === 0 ? SettingsStatus.Success : SettingsStatus.DeniedByPolicy)]);
}

function normalizeBodyType(value: string | undefined): 'Text' | 'HTML' | undefined {
  const v = value?.trim().toLowerCase();
  return v === 'text' ? 'Text' : v === 'html' ? 'HTML' : undefined;
}

/** A reply as the device asks for it: HTML to text drops the markup, text to HTML escapes it. */
function convertBody(text: string, from: string, to: 'Text' | 'HTML'): string {
  if (from === to) return text;
  if (to === 'HTML') {
    const escaped = text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/\r?\n/g, '<br>');
    return `<html><body>${escaped}</body></html>`;
  }
  return text
    .replace(/<br\s*\/?>/gi, '\n')
    .replace(/<\/p>/gi, '\n')
    .replace(/<[^>]*>/g, '')
    .replace(/&nbsp;/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .trim();
}

registerCommand({
  name: 'Settings',
  responseRoot: { ns: 'Settings', tag: 'Settings' },
  serverErrorStatus: SettingsStatus.ServerUnavailable,
  handle: settings,
});
