/**
 * Names every command and its module (one file per command, named after it), which registers itself with the default
 * registry when imported: on the command's first request (CommandRegistry.registerModule). Add one line per new
 * command; the import must stay a literal so that the bundlers (scripts/build.mjs, wrangler) find the module.
 */
import { defaultRegistry } from './registry.ts';

export { defaultRegistry };

defaultRegistry.registerModule('FolderSync', () => import('./foldersync.ts'));
defaultRegistry.registerModule('Sync', () => import('./sync.ts'));
defaultRegistry.registerModule('GetItemEstimate', () => import('./getitemestimate.ts'));
defaultRegistry.registerModule('FolderCreate', () => import('./foldercreate.ts'));
defaultRegistry.registerModule('FolderUpdate', () => import('./folderupdate.ts'));
defaultRegistry.registerModule('FolderDelete', () => import('./folderdelete.ts'));
defaultRegistry.registerModule('MoveItems', () => import('./moveitems.ts'));
defaultRegistry.registerModule('ItemOperations', () => import('./itemoperations.ts'));
defaultRegistry.registerModule('GetAttachment', () => import('./getattachment.ts'));
defaultRegistry.registerModule('Search', () => import('./search.ts'));
defaultRegistry.registerModule('Find', () => import('./find.ts'));
defaultRegistry.registerModule('Provision', () => import('./provision.ts'));
defaultRegistry.registerModule('Settings', () => import('./settings.ts'));
defaultRegistry.registerModule('SendMail', () => import('./sendmail.ts'));
defaultRegistry.registerModule('SmartReply', () => import('./smartreply.ts'));
defaultRegistry.registerModule('SmartForward', () => import('./smartforward.ts'));
defaultRegistry.registerModule('Ping', () => import('./ping.ts'));
defaultRegistry.registerModule('MeetingResponse', () => import('./meetingresponse.ts'));
defaultRegistry.registerModule('ResolveRecipients', () => import('./resolverecipients.ts'));
defaultRegistry.registerModule('ValidateCert', () => import('./validatecert.ts'));
