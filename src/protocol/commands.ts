/**
 * The ActiveSync command names and their codes in the base64 query (MS-ASHTTP §2.2.1.1.1.1.2). Whether a command is
 * implemented is the command registry's business (src/commands/registry.ts); this is the protocol's list.
 */
export const COMMAND_CODES = {
  Sync: 0,
  SendMail: 1,
  SmartForward: 2,
  SmartReply: 3,
  GetAttachment: 4,
  GetHierarchy: 5,
  CreateCollection: 6,
  DeleteCollection: 7,
  MoveCollection: 8,
  FolderSync: 9,
  FolderCreate: 10,
  FolderDelete: 11,
  FolderUpdate: 12,
  MoveItems: 13,
  GetItemEstimate: 14,
  MeetingResponse: 15,
  Search: 16,
  Settings: 17,
  Ping: 18,
  ItemOperations: 19,
  Provision: 20,
  ResolveRecipients: 21,
  ValidateCert: 22,
  Find: 23,
} as const;

export type CommandName = keyof typeof COMMAND_CODES;

const byLowerName = new Map(Object.keys(COMMAND_CODES).map((n) => [n.toLowerCase(), n as CommandName]));
const byCode = new Map(Object.entries(COMMAND_CODES).map(([n, code]) => [code as number, n as CommandName]));

/** The canonical spelling of a command name, matched case-insensitively; undefined when it is not a command. */
export function commandByName(name: string): CommandName | undefined {
  return byLowerName.get(name.toLowerCase());
}

export function commandByCode(code: number): CommandName | undefined {
  return byCode.get(code);
}
