/** The user's primary SMTP address (Settings UserInformation, Autodiscover). */

/** The login when it is an address, else login@MAIL_DOMAIN; undefined when neither gives one. */
export function primaryAddress(login: string, mailDomain: string | undefined): string | undefined {
  const lower = login.toLowerCase();
  if (lower.includes('@')) return lower;
  return mailDomain ? `${lower}@${mailDomain}` : undefined;
}

/**
 * The address when it is a plain addr-spec (local@domain, no spaces, controls, quotes or brackets), else undefined.
 * Addresses from devices go into MIME headers, SMTP envelopes and iCalendar lines only through this: a CR/LF or a
 * `>` in one would otherwise start a header, a command or a property of its own.
 */
export function plainAddress(text: string | undefined): string | undefined {
  const address = text?.trim() ?? '';
  return address.length <= 254 &&
    /^[^\s\u0000-\u001f\u007f<>()[\]\\,;:"@]+@[^\s\u0000-\u001f\u007f<>()[\]\\,;:"@]+$/.test(address)
    ? address
    : undefined;
}

/** A display name for a header or an iCalendar parameter: line breaks and other controls become spaces. */
export function plainName(text: string | undefined): string | undefined {
  const name = text?.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return name || undefined;
}
