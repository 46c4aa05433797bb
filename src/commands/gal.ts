/**
 * The GAL lookups Search (Store GAL) and ResolveRecipients share: the tenant's directory (GAL_URL) under the user's
 * login, and a GAL entry as the Gal code page's Properties.
 */
import { searchDirectory, type GalEntry } from '../backends/dav/directory.ts';
import { el, type WbxmlElement } from '../wbxml/tree.ts';
import type { CommandContext } from '../protocol/command.ts';

/** The directory entries matching `text`; empty when the tenant has no GAL_URL. */
export async function findInGal(context: Pick<CommandContext, 'config' | 'user'>, text: string): Promise<GalEntry[]> {
  const galUrl = context.config.galUrl;
  if (!galUrl || !text.trim()) return [];
  return searchDirectory(galUrl, { user: context.user.login, password: context.user.password }, text.trim());
}

/** Search's Properties of one entry, in the Gal page's order (MS-ASCMD §2.2.3.137.3). */
export function galProperties(entry: GalEntry): WbxmlElement[] {
  const fields: [Parameters<typeof el<'Gal'>>[1], string | undefined][] = [
    ['DisplayName', entry.displayName],
    ['Phone', entry.phone],
    ['Office', entry.office],
    ['Title', entry.title],
    ['Company', entry.company],
    ['Alias', entry.alias],
    ['FirstName', entry.firstName],
    ['LastName', entry.lastName],
    ['HomePhone', entry.homePhone],
    ['MobilePhone', entry.mobilePhone],
    ['EmailAddress', entry.emails[0]],
  ];
  return fields.flatMap(([tag, value]) => (value ? [el('Gal', tag, value)] : []));
}
