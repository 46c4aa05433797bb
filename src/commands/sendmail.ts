/**
 * SendMail (MS-ASCMD §2.2.1.17): sends a message the device composed, and keeps a copy in Sent Items when asked.
 * The work is compose.ts'; this file registers the command.
 */
import { CommonStatus } from '../protocol/status.ts';
import { composeHandler } from '../sending/compose.ts';
import { registerCommand } from './registry.ts';

registerCommand({
  name: 'SendMail',
  responseRoot: { ns: 'ComposeMail', tag: 'SendMail' },
  serverErrorStatus: CommonStatus.ServerError,
  handle: composeHandler('SendMail'),
});
