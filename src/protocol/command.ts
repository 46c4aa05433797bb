/**
 * The contract between the request pipeline (src/app/activesync.ts) and the commands (src/commands/): what a command
 * gets for one request, what it answers, and how it is defined. It lives below both, so neither imports the other.
 */
import type { ServerConfig } from '../config.ts';
import type { RequestSlot } from './request-slots.ts';
import type { LogEntry } from '../log.ts';
import type { AuthenticatedUser } from '../backends/auth.ts';
import type { CommandName } from './commands.ts';
import type { ActiveSyncRequest } from './request.ts';
import type { BackendFactory } from '../backends/types.ts';
import type { DeviceReadsAhead } from '../state/read-ahead.ts';
import type { DeviceScope, StateStore } from '../state/types.ts';
import type { Namespace } from '../wbxml/codepages.ts';
import type { WbxmlElement } from '../wbxml/tree.ts';

/** Everything a command handler gets for one request. */
export interface CommandContext {
  request: ActiveSyncRequest;
  user: AuthenticatedUser;
  /** Tenant, user and device: the scope of everything this request reads and writes in `state`. */
  device: DeviceScope;
  state: StateStore;
  /**
   * Opens this user's backends (backends/open.ts withBackends), submits mail, reads the GAL: the tenant's, injected.
   */
  backends: BackendFactory;
  /** The decoded WBXML body; undefined when the body was empty (an empty Sync or Ping) or not WBXML. */
  body: WbxmlElement | undefined;
  /** The body as received, for the `message/rfc822` form of SendMail, SmartReply and SmartForward (≤ 12.1). */
  rawBody: Uint8Array;
  contentType: string;
  config: ServerConfig;
  /** Aborted when the client goes away or a newer request from the device supersedes this one. */
  signal: AbortSignal;
  /** Adds fields to this request's log line: what went wrong without changing the answer. Never secrets. */
  note?(fields: LogEntry): void;
  /** The request's place under its user's cap (protocol/request-slots.ts): given back while it only waits. */
  slot?: RequestSlot;
}

export type CommandResult =
  | { kind: 'wbxml'; body: WbxmlElement }
  /** HTTP 200 with no body: SendMail success, an unchanged hanging Sync (MS-ASCMD). */
  | { kind: 'empty' }
  /** Non-WBXML content, e.g. an attachment for GetAttachment or a multipart ItemOperations answer. */
  | { kind: 'raw'; contentType: string; bytes: Uint8Array };

export interface CommandDefinition {
  name: CommandName;
  /** The root element of the command's response, used to answer with a bare Status when the handler fails. */
  responseRoot?: { ns: Namespace; tag: string };
  /** The command's "server error, try again" Status; without one a failure is HTTP 500. */
  serverErrorStatus?: number;
  /**
   * Typed errors that end the whole command with a Status of its own, answered under `responseRoot` (the first match
   * wins), e.g. `[[FolderNotFoundError, 7]]` for Ping. They are answers, not failures: the log line has no error. An
   * error that fails one collection or item of an answer is caught where it happens, so the rest still goes out.
   */
  errors?: readonly ErrorStatus[];
  /**
   * The state reads `handle` will make, named from the request's body (undefined when empty or not decodable): the
   * pipeline issues them together with the device's own, in one turn (state/read-ahead.ts), so that where the store
   * is across a network they cost one round trip together. A command with this gets its body decoded before the
   * access and policy checks (a malformed one is still answered only after them).
   */
  readAhead?(body: WbxmlElement | undefined, reads: DeviceReadsAhead): void;
  handle(context: CommandContext): Promise<CommandResult>;
}

/** An error class and the command's top-level Status for it. */
export type ErrorStatus = readonly [error: abstract new (...args: never[]) => Error, status: number];
