/**
 * SmartForward (MS-ASCMD §2.2.1.19): forwards a message on the server; the server includes the original and its
 * attachments below the device's text (unless ReplaceMime), adds 16.x Forwardees as recipients and marks the
 * original $Forwarded. The work is compose.ts'; this file registers the command.
 */
import { CommonStatus } from '../protocol/status.ts';
import { composeHandler } from '../sending/compose.ts';
import { registerCommand } from './registry.ts';

registerCommand({
  name: 'SmartForward',
  responseRoot: { ns: 'ComposeMail', tag: 'SmartForward' },
  serverErrorStatus: CommonStatus.ServerError,
  handle: composeHandler('SmartForward'),
});
