/**
 * The mail Exchange leaves in the user's Inbox when one of their devices becomes blocked or quarantined by the
 * access rules ("Your device is temporarily blocked from accessing content via Exchange ActiveSync because the device
 * has been quarantined…", with the device's model, type, ID, OS, user agent and access state). It is appended to the
 * Inbox over IMAP once per change of state (access-rules.ts records the state, so a refused device's retries do not
 * add more), so that the user sees why in any mail client, and admins find the device by what it lists.
 */
import { withBackends, type BackendUser } from '../backends/open.ts';
import { FolderType } from '../backends/types.ts';
import type { ServerConfig } from '../config.ts';
import { newMessageId, rfc5322Date } from '../items/outgoing.ts';
import { primaryAddress } from '../items/address.ts';
import type { DeviceRecord } from '../state/types.ts';
import { toBase64 } from '../util/base64.ts';
import type { AccessDecision } from './access-rules.ts';

/** The notice as a message (RFC 5322, UTF-8 text in base64), addressed to the user. */
export function accessNoticeMessage(
  decision: AccessDecision,
  device: DeviceRecord,
  user: string,
  now = new Date(),
): Uint8Array {
  const quarantined = decision.state === 'quarantined';
  const lines = [
    quarantined
      ? "Your device is temporarily blocked from accessing content via Exchange ActiveSync because the device has been quarantined. You don't need to take any action. Content will be downloaded as soon as your administrator grants access."
      : "Your device can't synchronize via Exchange ActiveSync because of an access rule set by your administrator.",
    '',
    'Information about your device:',
    `Device model: ${device.model ?? ''}`,
    `Device type: ${device.deviceType}`,
    `Device ID: ${device.deviceId}`,
    `Device OS: ${device.os ?? ''}`,
    `Device user agent: ${device.userAgent ?? ''}`,
    `Exchange ActiveSync version: ${device.protocolVersion ?? ''}`,
    `Device access state: ${quarantined ? 'Quarantined' : 'Blocked'}`,
    `Device access state reason: ${decision.reason}`,
  ];
  const subject = quarantined ? 'Your device is quarantined' : 'Your device is blocked';
  const header = [
    `From: <${user}>`,
    `To: <${user}>`,
    `Subject: ${subject}`,
    `Date: ${rfc5322Date(now)}`,
    `Message-ID: ${newMessageId(user)}`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: base64',
  ];
  // Device fields come from the device: one line each, whatever it sent.
  const text = lines.map((l) => l.replace(/[\r\n]+/g, ' ')).join('\r\n');
  const body = (toBase64(new TextEncoder().encode(text)).match(/.{1,76}/g) ?? []).join('\r\n');
  return new TextEncoder().encode(`${header.join('\r\n')}\r\n\r\n${body}\r\n`);
}

/** Appends the notice to the user's Inbox (unread). Throws when IMAP fails; the caller only logs that. */
export async function deliverAccessNotice(
  context: BackendUser & { config: Pick<ServerConfig, 'mailDomain'> },
  decision: AccessDecision,
  device: DeviceRecord,
): Promise<void> {
  await withBackends(context, async ({ mail }) => {
    const inbox = (await mail.listFolders()).find((f) => f.backend === 'imap' && f.type === FolderType.Inbox);
    const address = primaryAddress(context.user.login, context.config.mailDomain) ?? context.user.login;
    if (inbox) await mail.appendMessage(inbox.ref, accessNoticeMessage(decision, device, address), []);
  });
}
