/** The user's primary SMTP address (Settings UserInformation, Autodiscover). */

/** The login when it is an address, else login@MAIL_DOMAIN; undefined when neither gives one. */
export function primaryAddress(login: string, mailDomain: string | undefined): string | undefined {
  const lower = login.toLowerCase();
  if (lower.includes('@')) return lower;
  return mailDomain ? `${lower}@${mailDomain}` : undefined;
}
