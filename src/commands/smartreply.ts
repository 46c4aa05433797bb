/**
 * SmartReply (MS-ASCMD §2.2.1.20): sends a reply to a message on the server; the server quotes the original below
 * the device's text (unless ReplaceMime), threads it (In-Reply-To, References) and marks the original \Answered.
 * The work is compose.ts'; this file registers the command.
 */
import { CommonStatus } from '../protocol/status.ts';
import { composeHandler } from '../sending/compose.ts';
import { registerCommand } from './registry.ts';

registerCommand({
  name: 'SmartReply',
  responseRoot: { ns: 'ComposeMail', tag: 'SmartReply' },
  serverErrorStatus: CommonStatus.ServerError,
  handle: composeHandler('SmartReply'),
});
