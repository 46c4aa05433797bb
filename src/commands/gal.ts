/**
 * The GAL lookups Search (Store GAL) and ResolveRecipients share: the tenant's directory (GAL_URL) under the user's
 * login, and a GAL entry as the Gal code page's Properties.
 */
import type { GalEntry } from '../backends/types.ts';
import { el, type WbxmlElement } from '../wbxml/tree.ts';
import type { CommandContext } from '../protocol/command.ts';

/** The directory entries matching `text`; empty when the tenant has no GAL_URL. */
export async function findInGal(context: Pick<CommandContext, 'backends' | 'user'>, text: string): Promise<GalEntry[]> {
  const directory = context.backends.directory(context.user);
  if (!directory || !text.trim()) return [];
  return directory.search(text.trim());
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
