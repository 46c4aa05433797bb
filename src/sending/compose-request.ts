/**
 * One SendMail, SmartReply or SmartForward as the sending code sees it (MS-ASCMD §2.2.1.17, §2.2.1.20, §2.2.1.19), and
 * the failure that ends such a request with a Status.
 */
import type { Mailbox } from '../items/outgoing.ts';

export type ComposeCommand = 'SendMail' | 'SmartReply' | 'SmartForward';

/** One SendMail, SmartReply or SmartForward, whichever form it came in. */
export interface ComposeRequest {
  command: ComposeCommand;
  clientId: string | undefined;
  saveInSent: boolean;
  replaceMime: boolean;
  mime: Uint8Array;
  /** SmartReply/SmartForward: where the original is. */
  source: { folderId?: string; itemId?: string; longId?: string; instanceId?: string } | undefined;
  forwardees: Mailbox[];
}

/** A request that ends with a Status (14.0+) or HTTP 500 (12.x). */
export class ComposeFailure extends Error {
  override readonly name = 'ComposeFailure';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
