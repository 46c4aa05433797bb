/**
 * Imports every command module, each of which registers itself with the default registry.
 * Add one import per new command (one file per command, named after it).
 */
export { defaultRegistry } from './registry.ts';
import './foldersync.ts';
import './sync.ts';
import './getitemestimate.ts';
import './foldercreate.ts';
import './folderupdate.ts';
import './folderdelete.ts';
import './moveitems.ts';
import './itemoperations.ts';
import './getattachment.ts';
import './search.ts';
import './find.ts';
import './provision.ts';
import './settings.ts';
import './sendmail.ts';
import './smartreply.ts';
import './smartforward.ts';
import './ping.ts';
import './meetingresponse.ts';
import './resolverecipients.ts';
import './validatecert.ts';
